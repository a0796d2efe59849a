"""Flood limits for the webhook channels: per sender, and per source address for refused requests.

Counters are fixed one-minute windows in memory (per process): they protect this process's CPU
and the answering threads from one noisy sender; they are not an accounting record.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

OK, FIRST_OVER, OVER = "ok", "first_over", "over"
TOO_FAST = "您发送得太频繁了，请稍等一分钟再发。"


class FloodGuard:
    """At most `limit` events per `window` seconds per key. `hit` answers OK, FIRST_OVER (the
    first refused event of the window: tell the sender once, log once) or OVER (drop silently)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limit, self.window, self.clock, self.max_keys = limit, window, clock, max_keys
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def _current(self, key: str, now: float) -> int:
        started, count = self._counts.get(key, (now, 0))
        if now - started >= self.window:
            self._counts.pop(key, None)
            return 0
        return count

    def hit(self, key: str) -> str:
        if self.limit <= 0:
            return OK
        now = self.clock()
        count = self._current(key, now) + 1
        started = self._counts[key][0] if key in self._counts else now
        self._counts[key] = (started, count)
        self._counts.move_to_end(key)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        if count <= self.limit:
            return OK
        return FIRST_OVER if count == self.limit + 1 else OVER

    def blocked(self, key: str) -> bool:
        """Over the limit in the current window (without counting this look)."""
        return self.limit > 0 and self._current(key, self.clock()) > self.limit
