"""Group chats as push targets, managed in chat by 安委办 admins:

    /bindgroup 安委办工作群   (in the group) group pushes for that name now go to this chat
    /unbindgroup             (in the group) stop sending group pushes here
    /groups                  which chats receive which group's pushes
"""
from __future__ import annotations

from bot.ledger.groups import bind_group, group_of_chat, list_groups, unbind_chat
from bot.ledger.people import PeopleError
from bot.storage.db import transaction
from bot.types import Incoming, Reply
from handlers.admin import ADMIN_ONLY, NO_DB, acting_admin

IN_GROUP_ONLY = "请在要接收推送的群里发送这个命令。"


def _configured(services, name: str) -> bool:
    return name in set(services.config.schedules.office_groups) | set(services.config.schedules.duty_groups)


def bindgroup_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    if not incoming.is_group:
        return [Reply(IN_GROUP_ONLY)]
    try:
        with transaction(services.db) as session:
            admin = acting_admin(session, incoming)
            if admin is None:
                return [Reply(ADMIN_ONLY)]
            if not args.strip():
                current = group_of_chat(session, incoming.channel, incoming.chat)
                now = f"本群当前绑定为「{current}」。" if current else "本群尚未绑定。"
                return [Reply(now + "用法：/bindgroup 群名称，如 /bindgroup 安委办工作群")]
            row, old = bind_group(session, args, incoming.channel, incoming.chat, services.clock(), by=admin.id)
            name = row.name
    except PeopleError as exc:
        return [Reply(str(exc))]
    text = f"已绑定：发给「{name}」的群推送今后发到本群。" + (f"（原绑定「{old}」已解除）" if old else "")
    if not _configured(services, name):
        text += (f"\n提示：config.yaml 的 schedules.office_groups / duty_groups 中还没有「{name}」，"
                 "请管理员加入后才会有定时推送。")
    return [Reply(text)]


def unbindgroup_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    if not incoming.is_group:
        return [Reply(IN_GROUP_ONLY)]
    with transaction(services.db) as session:
        if acting_admin(session, incoming) is None:
            return [Reply(ADMIN_ONLY)]
        name = unbind_chat(session, incoming.channel, incoming.chat)
    return [Reply(f"已解除：本群不再接收「{name}」的群推送。" if name else "本群没有绑定任何群推送。")]


def groups_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    with transaction(services.db) as session:
        if acting_admin(session, incoming) is None:
            return [Reply(ADMIN_ONLY)]
        rows = [(r.name, r.channel) for r in list_groups(session)]
    fixed = [(t.name, t.channel) for t in services.config.schedules.targets]
    lines = ["群推送去向："]
    lines += [f"· {name} → {channel}（config.yaml 指定）" for name, channel in fixed]
    lines += [f"· {name} → {channel}（群内绑定）" for name, channel in rows]
    if len(lines) == 1:
        lines.append("（还没有。在目标群里发送 /bindgroup 群名称 即可绑定。）")
    wanted = list(dict.fromkeys(services.config.schedules.office_groups + services.config.schedules.duty_groups))
    missing = [g for g in wanted if g not in {n for n, _ in fixed + rows}]
    if missing:
        lines.append("尚未绑定（推送会无法送达）：" + "、".join(missing))
    return [Reply("\n".join(lines))]


COMMANDS = {
    "bindgroup": bindgroup_command,
    "unbindgroup": unbindgroup_command,
    "groups": groups_command,
}
