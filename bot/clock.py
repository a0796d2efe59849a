"""Time as a dependency: everything that needs 'now' takes a Clock, so tests inject one.

Stored times are naive local times in the configured zone (a district works in one zone, and the
ledger's dates — deadlines, report days — are local dates)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]


def system_clock(timezone: str = "Asia/Shanghai") -> Clock:
    zone = ZoneInfo(timezone)
    return lambda: datetime.now(zone).replace(tzinfo=None, microsecond=0)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
