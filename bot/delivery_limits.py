"""Delivery errors and rate limits for the outbox sender (bot.delivery).

Channel adapters raise these errors from `send(chat, text, key=...)`; `classify` also maps
common network exceptions (timeouts, connection errors, HTTP status codes) onto them, so an
adapter that lets a raw error escape is still retried rather than lost.

Rate limits work on the injected clock and never sleep: `RateLimiter.try_acquire` answers
whether a message to (channel, chat) may go *now* and, if so, books it.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import ChannelLimits


class DeliveryError(Exception):
    """A channel could not deliver a push."""


class RateLimited(DeliveryError):
    """The platform said 429 / 'too many requests'; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float | None = None, message: str = "") -> None:
        super().__init__(message or f"rate limited (retry after {retry_after}s)")
        self.retry_after = retry_after


class TransientError(DeliveryError):
    """5xx, timeout, connection reset: worth retrying with back-off."""


class PermanentError(DeliveryError):
    """4xx other than 429 (blocked bot, unknown chat, bad request): retrying cannot help."""


@dataclass(frozen=True)
class Failure:
    kind: str  # rate_limited | transient | permanent
    retry_after: float | None
    message: str


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def classify(exc: BaseException) -> Failure:
    """Which kind of failure a channel's exception is; unknown errors count as transient (they
    are retried, and dead-lettered after max_attempts, so nothing is lost or retried forever)."""
    message = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, RateLimited):
        return Failure("rate_limited", exc.retry_after, message)
    if isinstance(exc, PermanentError):
        return Failure("permanent", None, message)
    if isinstance(exc, TransientError | asyncio.TimeoutError | TimeoutError | ConnectionError):
        return Failure("transient", None, message)
    status = _status_of(exc)
    if status == 429:
        return Failure("rate_limited", getattr(exc, "retry_after", None), message)
    if status is not None and 400 <= status < 500:
        return Failure("permanent", None, message)
    return Failure("transient", None, message)


class RateLimiter:
    """Per channel: a token bucket refilled at `per_second` (burst of at most one second's worth).
    Per (channel, chat): a sliding 60-second window of at most `per_chat_per_minute` sends.

    State is in memory, per sender process; `seed` fills the windows from recently sent rows so a
    restart does not reset them. Several sender processes on one channel each apply the limits,
    so run one sender per channel (the intended deployment) or divide the limits among them.
    """

    WINDOW = timedelta(seconds=60)

    def __init__(self, limits: dict[str, ChannelLimits], default: ChannelLimits | None = None) -> None:
        self.limits = limits
        self.default = default or ChannelLimits()
        self._buckets: dict[str, tuple[float, datetime]] = {}
        self._windows: dict[tuple[str, str], deque[datetime]] = {}

    def _limit(self, channel: str) -> ChannelLimits:
        return self.limits.get(channel, self.default)

    def _tokens(self, channel: str, now: datetime) -> float:
        rate = self._limit(channel).per_second
        capacity = max(1.0, rate)
        tokens, last = self._buckets.get(channel, (capacity, now))
        elapsed = max(0.0, (now - last).total_seconds())
        tokens = min(capacity, tokens + elapsed * rate)
        self._buckets[channel] = (tokens, now)
        return tokens

    def _window(self, channel: str, chat: str, now: datetime) -> deque[datetime]:
        window = self._windows.setdefault((channel, chat), deque())
        while window and window[0] <= now - self.WINDOW:
            window.popleft()
        return window

    def try_acquire(self, channel: str, chat: str, now: datetime) -> bool:
        """Book one send to (channel, chat) at `now` if both limits allow it."""
        if self._tokens(channel, now) < 1.0:
            return False
        window = self._window(channel, chat, now)
        if len(window) >= self._limit(channel).per_chat_per_minute:
            return False
        tokens, last = self._buckets[channel]
        self._buckets[channel] = (tokens - 1.0, last)
        window.append(now)
        return True

    def release(self, channel: str, chat: str, now: datetime) -> None:
        """Give back a booking that was not used (the row was claimed by another sender)."""
        tokens, last = self._buckets.get(channel, (0.0, now))
        self._buckets[channel] = (min(max(1.0, self._limit(channel).per_second), tokens + 1.0), last)
        window = self._windows.get((channel, chat))
        if window:
            window.pop()

    def seed(self, channel: str, chat: str, sent_at: datetime, now: datetime) -> None:
        if sent_at > now - self.WINDOW:
            self._window(channel, chat, now).append(sent_at)

    def wait_hint(self, channels: list[str]) -> float:
        """A short pause before the next drain when limits held rows back (seconds)."""
        rates = [self._limit(c).per_second for c in channels] or [1.0]
        return min(1.0, max(0.005, 1.0 / max(rates)))
