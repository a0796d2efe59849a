"""The small interface every channel adapter implements (console, web, telegram, wechat, wecom).

A channel turns platform events into `Incoming`, hands them to `dispatch`, and renders the
`Reply` objects it gets back; it never holds feature logic and never imports a handler.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.types import Incoming, Reply

Dispatch = Callable[[Incoming], Awaitable[list[Reply]]]


class Channel(Protocol):
    name: str

    async def run(self, dispatch: Dispatch) -> None:
        """Receive messages until stopped, passing each to `dispatch` and delivering the replies."""

    async def send(self, chat: str, reply: Reply) -> None:
        """Deliver a push (not a reply) to a chat."""


class WebhookChannel(Channel, Protocol):
    """A channel the platform calls: it contributes routes to the one ASGI server of `safeduty serve`
    (Starlette), and `run` only does background work (token refresh, polling when no URL is public)."""

    def routes(self) -> list:  # list[starlette.routing.Route]
        ...

    async def push(self, chat: str, text: str, *, key: str) -> None:
        """Deliver an outbox row (bot.delivery's PushChannel); `key` is the idempotency key."""
