"""Bot API specifics that hold no channel state: splitting at the 4,096-character limit, mapping
Bot API errors onto bot.delivery_limits errors, and the update processor that keeps each chat's
updates in order while chats run concurrently."""
from __future__ import annotations

import asyncio
import warnings
from collections import defaultdict
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from telegram.error import (BadRequest, ChatMigrated, Conflict, Forbidden, InvalidToken, NetworkError,
                            RetryAfter, TelegramError, TimedOut)
from telegram.ext import BaseUpdateProcessor

from bot.delivery_limits import PermanentError, RateLimited, TransientError

MAX_TEXT = 4096  # Bot API limit per message (counted here in UTF-16 code units, the stricter measure)
# Updates handled at once. An update waiting for a new question's retrieval is only a suspended
# coroutine; a small limit (it was 64) let a burst of new questions hold every slot, so repeated
# questions and commands queued behind them (seen in bench/webhook_load.py).
MAX_CONCURRENT_UPDATES = 2000


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split `text` into chunks of at most `limit` UTF-16 units, at line boundaries when possible
    (a single over-long line is cut hard). Never returns an empty list."""
    if utf16_len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if utf16_len(current) + utf16_len(line) <= limit:
            current += line
            continue
        if current:
            chunks.append(current)
            current = ""
        while utf16_len(line) > limit:  # one line longer than a message: hard cut
            head, size = [], 0
            for ch in line:
                width = utf16_len(ch)
                if size + width > limit:
                    break
                head.append(ch)
                size += width
            chunks.append("".join(head))
            line = line[len(head):]
        current = line
    if current:
        chunks.append(current)
    # line breaks at a cut are noise on their own
    return [c.rstrip("\n") or c for c in chunks]


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def map_error(exc: TelegramError) -> Exception:
    """A Bot API error as a bot.delivery_limits error."""
    if isinstance(exc, RetryAfter):
        return RateLimited(retry_after_seconds(exc), f"telegram: {exc}")
    if isinstance(exc, (Forbidden, BadRequest, InvalidToken, ChatMigrated, Conflict)):
        return PermanentError(f"telegram: {type(exc).__name__}: {exc}")
    if isinstance(exc, (NetworkError, TimedOut)):
        return TransientError(f"telegram: {type(exc).__name__}: {exc}")
    return TransientError(f"telegram: {type(exc).__name__}: {exc}")


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Runs updates of different chats concurrently and those of one chat in arrival order
    (asyncio.Lock and the application's semaphore are FIFO)."""

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[Any, asyncio.Lock] = {}
        self._users: defaultdict[Any, int] = defaultdict(int)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = getattr(getattr(update, "effective_chat", None), "id", None)
        if chat is None:
            await coroutine
            return
        lock = self._locks.setdefault(chat, asyncio.Lock())
        self._users[chat] += 1
        try:
            async with lock:
                await coroutine
        finally:
            self._users[chat] -= 1
            if not self._users[chat]:
                del self._users[chat]
                self._locks.pop(chat, None)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
