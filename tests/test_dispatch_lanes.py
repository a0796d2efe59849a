"""New questions (retrieval + embedding) are answered in their own lane of threads, so a burst of
them does not hold up repeated questions, commands and report steps."""
from __future__ import annotations

import asyncio
import threading
import uuid

from bot.app import make_dispatch
from tests.conftest import make_incoming

KNOWN = "安全生产法第二十一条讲什么"


def test_a_repeated_question_is_answered_while_new_ones_are_still_being_retrieved(ledger_services, monkeypatch):
    kb = ledger_services.kb
    kb.ask(KNOWN)  # now in the answer cache
    tag = uuid.uuid4().hex[:6]
    new = [f"仓库灭火器多久检查一次{tag}{n}" for n in range(3)]
    release, started = threading.Event(), threading.Event()
    real_search = kb.search

    def slow_search(question, k=10):
        if question in new:
            started.set()
            release.wait(10)
        return real_search(question, k)

    monkeypatch.setattr(kb, "search", slow_search)
    dispatch = make_dispatch(ledger_services)

    async def scenario():
        pending = [asyncio.ensure_future(dispatch(make_incoming(q, user=f"n{i}"))) for i, q in enumerate(new)]
        await asyncio.to_thread(started.wait, 5)
        try:
            quick = await asyncio.wait_for(dispatch(make_incoming(KNOWN, user="u2")), 3)
            help_reply = await asyncio.wait_for(dispatch(make_incoming("/help", user="u3")), 3)
            waiting = sum(not p.done() for p in pending)
        finally:
            release.set()
        return quick, help_reply, waiting, await asyncio.gather(*pending)

    quick, help_reply, waiting, late = asyncio.run(scenario())
    assert "第二十一条" in quick[0].text
    assert "/ask" in help_reply[0].text
    assert waiting == 3  # the new questions were still in retrieval meanwhile
    assert all(replies for replies in late)  # and were answered once released


def test_lane_choice_follows_the_answer_cache(ledger_services):
    ledger_services.kb.ask(KNOWN)
    dispatch = make_dispatch(ledger_services)
    assert dispatch.lane(KNOWN) == "quick"
    assert dispatch.lane(f"/ask {KNOWN}") == "quick"
    assert dispatch.lane("/help") == "quick" and dispatch.lane("/report") == "quick"
    assert dispatch.lane(f"没问过的问题{uuid.uuid4().hex}") == "slow"
    assert dispatch.lane(f"/ask 没问过的问题{uuid.uuid4().hex}") == "slow"


def test_server_answer_threads_embed_with_one_cpu_thread_each():
    """OpenMP keeps its thread count per calling thread: after use_one_thread_here a thread runs
    its parallel regions alone, other threads keep the configured count."""
    import threading

    from knowledge.embeddings import E5SmallEmbedder, _bundled_openmp

    embedder = E5SmallEmbedder(threads=2)
    gomp = _bundled_openmp()
    assert gomp is not None
    seen = {}
    before = gomp.omp_get_max_threads()

    def worker():
        embedder.use_one_thread_here()
        seen["worker"] = gomp.omp_get_max_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["worker"] == 1
    assert gomp.omp_get_max_threads() == before  # this (main) thread is untouched
