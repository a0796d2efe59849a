"""督办事项 in chat: /sv add (admins and leaders), /sv done, /sv list (own items; admins see all open).

    /sv add 排查城关街道沿街商铺消防通道 负责人=赵干部 时限=2026-12-10 [单位=测试消防大队]
    /sv done DB-20261122-0001 已全部排查完毕
    /sv          (= /sv list)
"""
from __future__ import annotations

import re

from bot.ledger import supervision as sv
from bot.ledger.people import PeopleError, find_person, unit_by_name
from bot.storage.db import transaction
from bot.storage.models import Person
from bot.types import Incoming, Reply
from handlers.ledger import NO_DB, _staff
from handlers.ledger_text import _KEY_RE, ParseError, parse_date, parse_fields

USAGE = ("督办事项命令：\n/sv add 事项内容 负责人=姓名 时限=2026-12-10（安委办、领导）\n"
         "/sv done 编号 [办理情况]\n/sv list 查看我的督办事项")
# spellings of /sv add's keys mapped onto the ledger's field names (parse_fields)
_SYNONYMS = [(re.compile(r"(?:^|(?<=[\s,，;；]))(负责人|责任人)\s*[=＝:：]"), "责任人="),
             (re.compile(r"(?:^|(?<=[\s,，;；]))(办结时限|完成时限|时限|期限)\s*[=＝:：]"), "时限="),
             (re.compile(r"(?:^|(?<=[\s,，;；]))(单位|责任单位)\s*[=＝:：]"), "责任单位=")]
_ALLOWED = {"responsible_person", "deadline", "responsible_unit"}


def _parse_add(rest: str, today) -> tuple[str, dict]:
    text = rest.strip()
    for pattern, canonical in _SYNONYMS:
        text = pattern.sub(canonical, text)
    first = _KEY_RE.search(text)
    if first is None:
        raise ParseError("请写明负责人和时限。\n用法：/sv add 事项内容 负责人=姓名 时限=2026-12-10")
    task = text[: first.start()].strip()
    fields = parse_fields(text[first.start():])
    extra = set(fields) - _ALLOWED
    if extra:
        raise ParseError("/sv add 只能填写 负责人=、时限=、单位=。")
    if not task:
        raise ParseError("督办事项内容不能为空，请写在“负责人=”前面。")
    if not fields.get("responsible_person") or not fields.get("deadline"):
        raise ParseError("请写明负责人和时限，如：负责人=张三 时限=2026-12-10")
    try:
        fields["deadline"] = parse_date(fields["deadline"], today)
    except ParseError as exc:
        raise ParseError(str(exc).replace("整改时限", "办结时限")) from None
    if fields["deadline"] < today:
        raise ParseError(f"办结时限 {fields['deadline']:%Y-%m-%d} 已过，请给出今天或以后的日期。")
    return task, fields


def _add(incoming: Incoming, services, rest: str) -> list[Reply]:
    now = services.clock()
    try:
        task, fields = _parse_add(rest, now.date())
    except ParseError as exc:
        return [Reply(str(exc))]

    def work(session) -> str:
        actor = _staff(session, incoming)
        if isinstance(actor, str):
            return actor
        if not sv.can_create(actor):
            return "只有安委办管理员和领导可以交办督办事项。"
        try:
            owner = find_person(session, fields["responsible_person"])
        except PeopleError as exc:
            return str(exc)
        unit = None
        if fields.get("responsible_unit"):
            unit = unit_by_name(session, fields["responsible_unit"])
            if unit is None:
                return f"没有名为「{fields['responsible_unit']}」的单位。"
        item = sv.create_item(session, task, owner, fields["deadline"], actor, now, unit=unit)
        return (f"已交办督办事项 {item.code}\n事项：{item.task}\n负责人：{owner.name}；办结时限：{item.deadline:%Y-%m-%d}\n"
                "已通知负责人。")

    try:
        return [Reply(sv.run_with_code_retry(services.db, work))]
    except sv.SupervisionError as exc:
        return [Reply(str(exc))]


def _done(incoming: Incoming, services, rest: str) -> list[Reply]:
    parts = rest.split(None, 1)
    if not parts:
        return [Reply("用法：/sv done 编号 [办理情况]")]
    code, note = parts[0], (parts[1] if len(parts) > 1 else "")
    now = services.clock()
    try:
        with transaction(services.db) as session:
            actor = _staff(session, incoming)
            if isinstance(actor, str):
                return [Reply(actor)]
            outcome = sv.mark_done(session, code, actor, now, note)
            item = outcome.item
            if not outcome.changed:
                return [Reply(f"督办事项 {item.code} 已于 {item.done_at:%Y-%m-%d %H:%M} 办结，无需重复操作。")]
            return [Reply(f"督办事项 {item.code} 已办结。")]
    except sv.SupervisionError as exc:
        return [Reply(str(exc))]


def _list(incoming: Incoming, services) -> list[Reply]:
    today = services.clock().date()
    with transaction(services.db) as session:
        actor = _staff(session, incoming)
        if isinstance(actor, str):
            return [Reply(actor)]
        everyone = actor.has_role("admin")
        items = sv.list_items(session, owner=None if everyone else actor)
        title = "全区未办结督办事项" if everyone else "我的督办事项"
        if not items:
            return [Reply(f"{title}：暂无。")]
        names = {p.id: p.name for p in session.query(Person).filter(Person.id.in_({i.owner_id for i in items}))}
        lines = [f"{title}：共 {len(items)} 条"]
        for n, item in enumerate(items, 1):
            task = item.task if len(item.task) <= 30 else item.task[:30] + "…"
            who = f"｜{names.get(item.owner_id, '')}" if everyone else ""
            lines.append(f"{n}. {item.code}｜{sv.deadline_text(item, today)}{who}\n   {task}")
        lines.append("办结后发送：/sv done 编号 办理情况")
        return [Reply("\n".join(lines))]


def handle(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    parts = args.strip().split(None, 1)
    sub, rest = (parts[0].lower() if parts else ""), (parts[1] if len(parts) > 1 else "")
    if sub in ("", "list", "ls", "列表"):
        return _list(incoming, services)
    if sub in ("add", "new", "交办"):
        return _add(incoming, services, rest)
    if sub in ("done", "finish", "办结"):
        return _done(incoming, services, rest.strip())
    return [Reply(USAGE)]


COMMANDS = {"sv": handle}
