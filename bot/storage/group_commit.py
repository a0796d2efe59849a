"""Group commit: many small writes from the event loop become one transaction in one worker thread.

Under webhook load every callback wants a row (its retry receipt) and every late answer another
(its outbox push). Written one transaction each from the default thread pool, up to six threads
queue on SQLite's single write lock, and SQLite's busy handler sleeps between retries (1 ms growing
to 100 ms), so a burst turns into seconds of lock waits (seen with py-spy in bench/webhook_load.py).
Here only one batch is written at a time; whatever arrives while it is being written waits for the
next batch, so the batch size follows the load and an idle system writes each item at once.

Each `submit` resolves when its own batch has committed (or raises the batch's error): callers keep
their durability guarantee — nothing is acknowledged before it is in the database.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 400  # rows per transaction: a burst is written in several commits, not one huge one


class GroupCommit(Generic[T, R]):
    """`write(items) -> results` (one result per item, in order) runs in a worker thread."""

    def __init__(self, write: Callable[[list[T]], Sequence[R]], max_batch: int = MAX_BATCH) -> None:
        self.write = write
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # transactions written (for tests and benchmarks)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests, restarts): nothing carries over
            self._loop, self._pending, self._writer = loop, [], None
        future: asyncio.Future = loop.create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())
        # shield: a caller that gives up (timeout, cancelled request) must not cancel a batch that
        # carries other callers' items
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            try:
                results = await asyncio.to_thread(self._write_isolating_failures, [item for item, _ in batch])
            except Exception as exc:  # every caller of this batch hears of the failure
                results = [exc] * len(batch)
            self.batches += 1
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _write_isolating_failures(self, items: list[T]) -> list[R | BaseException]:
        """The batch in one transaction; if it fails, each item alone, so one bad row (a key
        another process took meanwhile, a value the column refuses) cannot fail its neighbours."""
        try:
            return list(self.write(items))
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        results: list[R | BaseException] = []
        for item in items:
            try:
                results.extend(self.write([item]))
            except Exception as exc:
                results.append(exc)
        return results


def insert_ignoring_conflicts(session: Any, model: Any, rows: list[dict], key: str) -> set[Any]:
    """INSERT rows, skipping those whose `key` already exists; returns the keys actually inserted.

    On SQLite (≥ 3.35) and PostgreSQL one cached INSERT … ON CONFLICT DO NOTHING RETURNING statement,
    executed for all rows at once on the session's connection (SQLAlchemy sends them as multi-row
    VALUES). Building a fresh `insert().values(rows)` per batch and running it through the ORM cost
    ~1.4 ms of CPU per batch, under the GIL the event loop needs; this costs ~0.3 ms
    (docs/benchmarks.md). On other databases, one savepoint per row."""
    from sqlalchemy.exc import IntegrityError

    if not rows:
        return set()
    name = session.get_bind().dialect.name
    if name in ("sqlite", "postgresql"):
        connection = session.connection()
        stmt = _insert_ignoring(name, model, key)
        return set(connection.execute(stmt, rows if len(rows) > 1 else rows[0]).scalars())
    inserted = set()
    for row in rows:
        try:
            with session.begin_nested():
                session.add(model(**row))
            inserted.add(row[key])
        except IntegrityError:
            pass
    return inserted


@functools.cache
def _insert_ignoring(dialect: str, model: Any, key: str) -> Any:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(model).on_conflict_do_nothing(index_elements=[key]).returning(getattr(model, key))
