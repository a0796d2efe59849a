"""Group commit: concurrent writes share transactions, each caller still gets its own outcome."""
from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from bot.channels.dedupe import DatabaseDedupe
from bot.storage.db import session_factory
from bot.storage.group_commit import GroupCommit
from bot.storage.models import CallbackReceipt, Outbox


class GatedWriter:
    """Records each batch; the first batch waits until released, so others pile up behind it."""

    def __init__(self, fail_on: str = "") -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[str]) -> list[str]:
        if not self.batches:
            self.gate.wait(5)
        self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"refused {self.fail_on}")
        return [item.upper() for item in items]


async def submit_all(writer: GroupCommit, items: list[str]) -> list:
    first = asyncio.ensure_future(writer.submit(items[0]))
    await asyncio.sleep(0.05)  # the first batch is now being written (and held at the gate)
    rest = [asyncio.ensure_future(writer.submit(item)) for item in items[1:]]
    await asyncio.sleep(0.01)
    writer.write.gate.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_items_arriving_during_a_write_share_the_next_transaction():
    writer = GroupCommit(GatedWriter())
    results = asyncio.run(submit_all(writer, ["a", "b", "c", "d"]))
    assert results == ["A", "B", "C", "D"]
    assert writer.write.batches == [["a"], ["b", "c", "d"]]


def test_one_failing_item_does_not_fail_its_neighbours():
    writer = GroupCommit(GatedWriter(fail_on="c"))
    results = asyncio.run(submit_all(writer, ["a", "b", "c", "d"]))
    assert results[:2] == ["A", "B"] and results[3] == "D"
    assert isinstance(results[2], ValueError)


def test_a_caller_giving_up_does_not_cancel_the_others_batch():
    async def scenario():
        writer = GroupCommit(GatedWriter())
        first = asyncio.ensure_future(writer.submit("a"))
        await asyncio.sleep(0.05)
        impatient = asyncio.ensure_future(writer.submit("b"))
        patient = asyncio.ensure_future(writer.submit("c"))
        await asyncio.sleep(0.01)
        impatient.cancel()
        writer.write.gate.set()
        return writer, await first, await patient

    writer, first, patient = asyncio.run(scenario())
    assert (first, patient) == ("A", "C")
    assert writer.write.batches[1] == ["b", "c"]  # the cancelled caller's item was still written


def test_concurrent_copies_of_one_callback_are_taken_once(any_db_engine):
    dedupe = DatabaseDedupe(session_factory(any_db_engine))

    async def scenario():
        return await asyncio.gather(*(dedupe.seen(f"wechat_mp:id:{n % 3}") for n in range(30)))

    seen = asyncio.run(scenario())
    assert seen.count(False) == 3  # one first delivery per distinct MsgId, however they were batched
    with any_db_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(CallbackReceipt)) == 3


def test_a_receipt_taken_by_another_process_is_seen(any_db_engine):
    sessions = session_factory(any_db_engine)
    other, this = DatabaseDedupe(sessions), DatabaseDedupe(sessions)
    assert other.taken_in_database(["wechat_mp:id:9", "wechat_mp:id:10"]) == [False, False]
    assert this.taken_in_database(["wechat_mp:id:10", "wechat_mp:id:11", "wechat_mp:id:11"]) == [True, False, True]


def test_late_replies_written_together_all_reach_the_outbox(ledger_services):
    from bot.serve import late_reply_hook

    late = late_reply_hook(ledger_services, "wechat_mp")

    async def scenario():
        await asyncio.gather(*(late(f"user{n}", f"答复{n}", f"id:{n}:0") for n in range(50)))
        await late("user0", "答复0", "id:0:0")  # the same late reply again is not a second push

    asyncio.run(scenario())
    with ledger_services.db() as session:
        rows = session.scalars(select(Outbox).where(Outbox.channel == "wechat_mp")).all()
    assert sorted(r.recipient for r in rows) == sorted(f"user{n}" for n in range(50))
    assert {r.idempotency_key for r in rows} == {f"late:id:{n}:0" for n in range(50)}


@pytest.mark.parametrize("size", [1, 401])
def test_batches_larger_than_one_statement_are_split(db_engine, size):
    dedupe = DatabaseDedupe(session_factory(db_engine))
    keys = [f"wecom:id:{n}" for n in range(size)]
    assert dedupe.taken_in_database(keys) == [False] * size
    assert dedupe.taken_in_database(keys) == [True] * size
