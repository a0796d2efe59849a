"""Answering new questions in worker processes, for `safeduty serve` under heavy traffic.

A question the knowledge base has not answered before costs 20–40 ms (embedding + retrieval),
partly Python that holds the GIL the event loop needs to accept webhooks and keep the 5-second
rule. With `channels.server.answer_processes: N` those questions (bot.app.make_dispatch's slow
lane) are routed in N spawned worker processes, each with its own Services on the same data
directory and database (conversation state is in the database, so any worker can take any
message); repeated questions and commands stay in the server's threads, where they cost well
under a millisecond. Workers run at a lower CPU priority (WORKER_NICE), so when the
machine is short of CPU the server keeps answering webhooks — a late answer still goes out through
the outbox — and each answer a worker computes is handed back to the server's answer cache.

Workers open the knowledge base read-only (no ingest: the server process did that at start) and
use the system clock. A worker that dies breaks the pool; the next message rebuilds it and is
retried once.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

log = logging.getLogger(__name__)

WARM_UP_TIMEOUT = 120.0  # seconds for every worker to load the knowledge base
WORKER_NICE = 10  # CPU weight ~1/9 of the server's when both want the same core

_services = None  # this worker's Services (set by _start_worker)
_barrier = None  # shared by the pool's workers: one warm-up call each


def _start_worker(config, data_dir: str, parent: int, barrier) -> None:
    global _services, _barrier
    from bot.app import build_services, setup_logging

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()
    try:
        os.nice(WORKER_NICE)
    except OSError:  # not permitted here: run at normal priority
        pass

    _barrier = barrier
    config = config.model_copy(deep=True)
    config.knowledge.embedding.threads = 1  # parallelism comes from the processes (EmbeddingSettings.threads)
    _services = build_services(config, data_dir, ingest=False)
    setup_logging(config, _services.data_dir)


def _exit_with_parent(parent: int) -> None:
    """A worker whose server was killed (SIGKILL leaves no time to shut the pool down) exits too."""
    while os.getppid() == parent:
        time.sleep(2)
    os._exit(0)


def _route(incoming, question: str | None = None):
    """The replies, and the answer this worker now caches for `question` (for the server's cache)."""
    from bot.router import safe_route

    replies = safe_route(incoming, _services)
    answer = _services.kb.answers.peek(question) if question and _services.kb is not None else None
    return replies, answer


def _warm() -> int:
    from bot.router import safe_route
    from bot.types import Incoming

    _services.kb.warm_up()
    safe_route(Incoming(channel="warm-up", chat="warm-up", user="warm-up", text="/help"), _services)  # router, DB
    _barrier.wait(WARM_UP_TIMEOUT)  # held until every worker has one: no worker takes two
    return os.getpid()


class ProcessAnswerer:
    """An awaitable `safe_route` that runs in a pool of worker processes."""

    def __init__(self, config, data_dir: Path, processes: int, cache=None) -> None:
        self.config, self.data_dir, self.processes = config, Path(data_dir), processes
        self.cache = cache  # the server's knowledge.base.AnswerCache, filled with workers' answers
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process has threads and an event loop that must not be copied
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                   initargs=(self.config, str(self.data_dir), os.getpid(),
                                             context.Barrier(self.processes)))

    async def warm_up(self) -> None:
        """Start and warm every worker now (knowledge base, embedding model, router), not on the
        first questions: one call per worker, held at a barrier until all have theirs."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, _warm) for _ in range(self.processes)))

    async def __call__(self, incoming, question: str | None = None):
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            pool = self.pool
            try:
                replies, answer = await loop.run_in_executor(pool, _route, incoming, question)
                if answer is not None and self.cache is not None:
                    self.cache.put(question, answer)
                return replies
            except BrokenProcessPool:
                if attempt:
                    raise
                log.error("an answer worker died; restarting the pool of %d", self.processes)
                if self.pool is pool:
                    self.pool = self._new_pool()
                    pool.shutdown(wait=False, cancel_futures=True)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
