"""Platform-independent message types: every channel turns its events into `Incoming` and renders
`Reply`; handlers only ever see these."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attachment:
    kind: str  # photo | document | location | ...
    path: str = ""  # local file once downloaded
    mime: str = ""
    name: str = ""
    data: dict = field(default_factory=dict)  # e.g. {"lat": .., "lon": ..} for a location


@dataclass(frozen=True)
class Incoming:
    channel: str  # console | web | telegram | wechat_mp | wecom
    chat: str  # chat id on that channel (a private chat or a group)
    user: str  # platform user id of the sender
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    mentioned: bool = True  # in groups: was the bot addressed (@mention, reply, command)?
    is_group: bool = False


@dataclass(frozen=True)
class Reply:
    text: str
    chat: str = ""  # empty: the chat the message came from
    choices: tuple[str, ...] = ()  # quick replies; channels render buttons or a numbered list
