"""Rate limits over the rate_events table: one row per attempt, counted in a sliding window.

The caller records the attempt in its own transaction and must commit it even when the attempt
fails (catch the domain error inside the transaction block), otherwise failures would not count.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.storage.models import RateEvent


def attempts(session: Session, key: str, now: datetime, window: timedelta) -> int:
    """How many attempts under `key` fall within `window` before `now`."""
    return session.scalar(
        select(func.count()).select_from(RateEvent).where(RateEvent.key == key, RateEvent.at > now - window)
    ) or 0


def hit(session: Session, key: str, limit: int, now: datetime, window: timedelta = timedelta(hours=1)) -> bool:
    """Record one attempt; True when the key is over its limit (the attempt is refused).

    Refused attempts are recorded too, so hammering does not reset the window. Events older than
    the window are pruned for this key as a side effect.
    """
    session.execute(delete(RateEvent).where(RateEvent.key == key, RateEvent.at <= now - window))
    over = attempts(session, key, now, window) >= limit
    session.add(RateEvent(key=key, at=now))
    session.flush()
    return over
