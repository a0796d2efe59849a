"""Platform-retry dedupe shared by every worker process: one `callback_receipts` row per callback.

WeChat and WeCom re-send a callback (same MsgId) up to three times when the first answer is late.
With several `safeduty serve` processes behind one URL the retry can reach another process, so the
in-memory set of one process is not enough. The first process to insert the key wins (primary
key); the others see the IntegrityError and drop the retry. A small in-memory set in front saves
the round trip for retries that come back to the same process.

If the database cannot be reached the message is processed (a rare duplicate answer beats a lost
question) and the failure is logged.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.channels.wx_common import TTLSet
from bot.storage.models import CallbackReceipt

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=1)  # retries come within a minute; an hour is ample
PRUNE_EVERY = 1000  # inserts between deletions of expired receipts


class DatabaseDedupe:
    def __init__(self, sessions, clock: Callable[[], datetime] = datetime.now,
                 retention: timedelta = RETENTION, local: TTLSet | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.retention = retention
        self.local = local or TTLSet(ttl=retention.total_seconds(), clock=time.monotonic)
        self._inserts = 0

    async def seen(self, key: str) -> bool:
        """True when another delivery of this callback was already taken (by any process)."""
        if self.local.seen(key):
            return True
        return await asyncio.to_thread(self.seen_in_database, key)

    def seen_in_database(self, key: str) -> bool:
        now = self.clock()
        try:
            with self.sessions() as session:
                session.add(CallbackReceipt(key=key[:200], seen_at=now))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return True
                self._inserts += 1
                if self._inserts % PRUNE_EVERY == 0:
                    session.execute(delete(CallbackReceipt).where(CallbackReceipt.seen_at < now - self.retention))
                    session.commit()
        except SQLAlchemyError as exc:
            log.error("callback dedupe store unavailable, processing %s anyway: %s", key, exc)
        return False
