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
