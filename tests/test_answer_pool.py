"""Answering in worker processes (channels.server.answer_processes): same answers, survives a dead worker."""
from __future__ import annotations

import asyncio
import os
import signal

from bot.answer_pool import ProcessAnswerer
from bot.app import make_dispatch
from tests.conftest import lexical_config, make_incoming


def test_worker_processes_answer_and_a_dead_worker_is_replaced(services, kb_dir):
    services.kb.answers.clear()
    answerer = ProcessAnswerer(lexical_config(), kb_dir, processes=1, cache=services.kb.answers)
    dispatch = make_dispatch(services, answerer=answerer)
    first_question, second_question = "安全生产法第二十一条讲什么", "消防法第十六条规定了什么"

    async def scenario():
        await answerer.warm_up()
        first = await dispatch(make_incoming(first_question))
        [pid] = list(answerer.pool._processes)
        assert os.getpriority(os.PRIO_PROCESS, pid) >= os.getpriority(os.PRIO_PROCESS, 0) + 1  # yields to the server
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        second = await dispatch(make_incoming(second_question))
        return first, second, pid

    try:
        first, second, dead = asyncio.run(scenario())
        assert "《中华人民共和国安全生产法》第二十一条" in first[0].text
        assert "第十六条" in second[0].text
        assert dead not in answerer.pool._processes
        # the workers' answers now sit in the server's cache: asked again, they take the quick lane
        assert dispatch.lane(first_question) == "quick" and dispatch.lane(second_question) == "quick"
    finally:
        answerer.close()
