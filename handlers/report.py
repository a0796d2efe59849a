"""Hazard tip-offs (隐患举报/随手拍): the intake conversation. (Being built: issue 3.)"""
from __future__ import annotations

from bot.types import Incoming, Reply

COMMANDS: dict = {}


def intercept(incoming: Incoming, services) -> list[Reply] | None:
    """Replies when the message belongs to a report conversation (or starts one); else None."""
    return None
