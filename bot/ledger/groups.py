"""Group chats bound to group names: where group pushes (安委办工作群, a township's group ...) go.

A name in config.yaml `schedules.targets` is fixed by the operator; any other name is resolved
here, from bindings an admin makes by sending `/bindgroup 名称` inside the group (or with
`safeduty groups bind`), so nobody has to dig a raw chat id out of a platform. One chat per name
and channel; binding a chat again moves it to the new name.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.ledger.people import PeopleError
from bot.storage.models import GroupChat

MAX_NAME = 60


def clean_name(name: str) -> str:
    name = name.strip().strip("「」“”\"'")
    if not name:
        raise PeopleError("请写上群名称，例如：/bindgroup 安委办工作群")
    if len(name) > MAX_NAME:
        raise PeopleError(f"群名称太长（最多 {MAX_NAME} 字）。")
    return name


def bind_group(session: Session, name: str, channel: str, chat: str, now: datetime,
               by: int | None = None) -> tuple[GroupChat, str | None]:
    """Bind (channel, chat) to `name`; returns the binding and the name it had before, if any."""
    name = clean_name(name)
    previous = session.scalar(select(GroupChat).where(GroupChat.channel == channel, GroupChat.chat == chat))
    old_name = previous.name if previous is not None else None
    if previous is not None:
        session.delete(previous)
    session.execute(delete(GroupChat).where(GroupChat.name == name, GroupChat.channel == channel))
    session.flush()
    row = GroupChat(name=name, channel=channel, chat=chat, bound_by=by, bound_at=now)
    session.add(row)
    session.flush()
    return row, (old_name if old_name != name else None)


def unbind_chat(session: Session, channel: str, chat: str) -> str | None:
    row = session.scalar(select(GroupChat).where(GroupChat.channel == channel, GroupChat.chat == chat))
    if row is None:
        return None
    session.delete(row)
    return row.name


def unbind_name(session: Session, name: str, channel: str | None = None) -> int:
    query = delete(GroupChat).where(GroupChat.name == name.strip())
    if channel:
        query = query.where(GroupChat.channel == channel)
    return session.execute(query).rowcount or 0


def group_of_chat(session: Session, channel: str, chat: str) -> str | None:
    return session.scalar(select(GroupChat.name).where(GroupChat.channel == channel, GroupChat.chat == chat))


def list_groups(session: Session) -> list[GroupChat]:
    return list(session.scalars(select(GroupChat).order_by(GroupChat.name, GroupChat.channel)))


def resolve_group(session: Session, name: str, served: list[str] | None = None) -> GroupChat | None:
    """The chat a push to group `name` goes to: one on a channel this sender serves if there is
    one, else the most recent binding (another process may serve it)."""
    rows = list(session.scalars(select(GroupChat).where(GroupChat.name == name)
                                .order_by(GroupChat.bound_at.desc(), GroupChat.id.desc())))
    if served is not None:
        mine = [r for r in rows if r.channel in served]
        if mine:
            return mine[0]
    return rows[0] if rows else None
