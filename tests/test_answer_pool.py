"""Answering in worker processes (channels.server.answer_processes): same answers, survives a dead worker."""
from __future__ import annotations

import asyncio
import os
import signal

from bot.answer_pool import ProcessAnswerer
from bot.app import make_dispatch
from tests.conftest import lexical_config, make_incoming


def test_worker_processes_answer_and_a_dead_worker_is_replaced(services, kb_dir):
    answerer = ProcessAnswerer(lexical_config(), kb_dir, processes=1)
    dispatch = make_dispatch(services, answerer=answerer)

    async def scenario():
        await answerer.warm_up()
        first = await dispatch(make_incoming("安全生产法第二十一条讲什么"))
        [pid] = list(answerer.pool._processes)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        second = await dispatch(make_incoming("/help"))
        return first, second, pid

    try:
        first, second, dead = asyncio.run(scenario())
        assert "《中华人民共和国安全生产法》第二十一条" in first[0].text
        assert "/ask" in second[0].text
        assert dead not in answerer.pool._processes
    finally:
        answerer.close()
