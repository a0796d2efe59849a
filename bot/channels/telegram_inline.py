"""Answering a Telegram webhook update in the webhook's own HTTP response.

The Bot API lets a webhook answer with one method call as its JSON body ("Making requests when
getting updates", https://core.telegram.org/bots/api#making-requests-when-getting-updates). For an
ordinary question that saves the separate sendMessage request: one round trip instead of two,
and no outgoing connection per answer. The trade-off Telegram documents: the result of that call is
not reported back, so only a plain reply that fits one message goes this way, and only while the
webhook request is still open (a short wait); everything else — split replies, replies to other
chats, answers that take longer — is sent through the API as before, with its error handling and
the outbox for failures.
"""
from __future__ import annotations

import asyncio
from typing import Any

INLINE_WAIT = 2.0  # seconds a webhook request stays open for its answer (Telegram waits far longer)
# ... and never past this many seconds after the message was sent (its `date`): when the server is
# behind, an open request only ties up one of Telegram's connections; the answer goes by the API.
INLINE_AGE_LIMIT = 3.0


class InlineReplies:
    """Webhook requests waiting for the first reply to their update, keyed by update_id."""

    def __init__(self, wait: float = INLINE_WAIT, age_limit: float = INLINE_AGE_LIMIT) -> None:
        self.wait, self.age_limit = wait, age_limit
        self._waiting: dict[int, asyncio.Future] = {}
        self.answered = 0  # replies that went out in a webhook response (tests, benchmarks)

    def open(self, update_id: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiting[update_id] = future
        return future

    async def response_for(self, update_id: int, future: asyncio.Future,
                           age: float = 0.0) -> dict[str, Any] | None:
        """The method call to answer the webhook with, or None when the reply did not come in time
        (it is then sent through the API by whoever produces it). `age`: seconds since the
        message was sent."""
        wait = min(self.wait, self.age_limit - age)
        try:
            if wait <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiting.pop(update_id, None)  # from now on the reply goes through the API
        # the reply may have been handed over in the same loop iteration as the timeout
        return future.result() if future.done() else None

    def offer(self, update_id: int | None, payload: dict[str, Any]) -> bool:
        """Hand a sendMessage call to the webhook request of `update_id` if it is still waiting;
        False means the caller sends it itself."""
        if update_id is None:
            return False
        future = self._waiting.pop(update_id, None)
        if future is None or future.done():
            return False
        future.set_result(payload)
        self.answered += 1
        return True
