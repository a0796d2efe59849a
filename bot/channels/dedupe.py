"""Platform-retry dedupe shared by every worker process: one `callback_receipts` row per callback.

WeChat and WeCom re-send a callback (same MsgId) up to three times when the first answer is late.
With several `safeduty serve` processes behind one URL the retry can reach another process, so the
in-memory set of one process is not enough. The first process to insert the key wins (primary
key); the others find the key taken and drop the retry. A small in-memory set in front saves the
round trip for retries that come back to the same process. Receipts are written by group commit
(bot.storage.group_commit): under load one INSERT … ON CONFLICT DO NOTHING carries every callback
that arrived while the previous batch was written.

If the database cannot be reached the message is processed (a rare duplicate answer beats a lost
question) and the failure is logged.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.wx_common import TTLSet
from bot.storage.group_commit import GroupCommit, insert_ignoring_conflicts
from bot.storage.models import CallbackReceipt

log = logging.getLogger(__name__)

RETENTION = timedelta(hours=1)  # retries come within a minute; an hour is ample
PRUNE_EVERY = 1000  # inserts between deletions of expired receipts
KEY_LENGTH = 200  # the column's size


class DatabaseDedupe:
    def __init__(self, sessions, clock: Callable[[], datetime] = datetime.now,
                 retention: timedelta = RETENTION, local: TTLSet | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.retention = retention
        self.local = local or TTLSet(ttl=retention.total_seconds(), clock=time.monotonic)
        self._inserts = 0
        self._writer: GroupCommit[str, bool] = GroupCommit(self.taken_in_database)

    async def seen(self, key: str) -> bool:
        """True when another delivery of this callback was already taken (by any process)."""
        if self.local.seen(key):
            return True
        return await self._writer.submit(key)

    def seen_in_database(self, key: str) -> bool:
        return self.taken_in_database([key])[0]

    def taken_in_database(self, keys: list[str]) -> list[bool]:
        """Insert a receipt per key in one transaction; True for each key that was already there
        (or repeats an earlier key of the same batch)."""
        now = self.clock()
        short = [key[:KEY_LENGTH] for key in keys]
        try:
            with self.sessions() as session:
                rows = [{"key": key, "seen_at": now} for key in dict.fromkeys(short)]
                inserted = insert_ignoring_conflicts(session, CallbackReceipt, rows, "key")
                session.commit()
                before, self._inserts = self._inserts, self._inserts + len(inserted)
                if self._inserts // PRUNE_EVERY != before // PRUNE_EVERY:
                    session.execute(delete(CallbackReceipt).where(CallbackReceipt.seen_at < now - self.retention))
                    session.commit()
        except SQLAlchemyError as exc:
            named = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
            log.error("callback dedupe store unavailable, processing %s anyway: %s", named, exc)
            return [False] * len(keys)
        taken = []
        for key in short:
            taken.append(key not in inserted)
            inserted.discard(key)  # a second copy in the same batch is a retry
        return taken
