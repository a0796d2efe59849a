"""Cadre commands on the hazard ledger: lists (/mine, /unit), one hazard (/hazard), and the workflow
actions (/accept /start /submit /close /return /reject /dup /reopen).

Only bound staff (grid members, cadres, leaders, 安委办 admins) may use them; what each may do is
decided by bot.ledger.actions (roles and unit scope), never here.
"""
from __future__ import annotations

from sqlalchemy import func, select

from bot.ledger import queries
from bot.ledger.actions import ActionError, MissingFields, apply, check_allowed, in_scope
from bot.ledger.people import is_staff, person_for
from bot.media import MediaError, store_photo
from bot.storage import workflow
from bot.storage.db import transaction
from bot.storage.models import Attachment, Hazard, Person, Unit
from bot.types import Incoming, Reply
from handlers import help as help_handler
from handlers.ledger_text import (
    BIND_HINT,
    PAGE_SIZE,
    STAFF_ONLY,
    ParseError,
    accept_template,
    hazard_detail,
    hazard_list,
    parse_date,
    parse_fields,
    parse_filters,
    split_code,
)

NO_DB = "隐患台账未启用。"


def _staff(session, incoming: Incoming) -> Person | str:
    """The bound staff member sending this message, or the reply explaining why not."""
    person = person_for(session, incoming.channel, incoming.user)
    if person is None:
        return BIND_HINT
    if not is_staff(person):
        return STAFF_ONLY
    return person


# ---------------------------------------------------------------- lists


def _listing(incoming: Incoming, services, args: str, scope: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    try:
        filters = parse_filters(args)
    except ParseError as exc:
        return [Reply(str(exc))]
    page = filters.pop("page")
    district = filters.pop("district", False)
    with transaction(services.db) as session:
        person = _staff(session, incoming)
        if isinstance(person, str):
            return [Reply(person)]
        today = services.clock().date()
        if scope == "mine":
            where, title = {"person": person}, "我负责的隐患"
        elif person.has_role("admin") and (district or person.unit_id is None):
            where, title = {}, "全区隐患"
        elif district:
            return [Reply("“全区”仅限安委办管理员查看。")]
        elif person.unit_id is not None:
            where, title = {"unit_id": person.unit_id}, f"{person.unit.name}的隐患"
        else:
            return [Reply("您的账号没有登记所属单位，请联系安委办补充。")]
        if filters.get("overdue"):
            title += "（逾期）"
        elif filters.get("open_only"):
            title += "（未办结）"
        rows = queries.list_hazards(session, **where, **filters, today=today, limit=PAGE_SIZE,
                                    offset=(page - 1) * PAGE_SIZE)
        total = queries.count_hazards(session, **where, **filters, today=today)
        again = f"/{scope} {args}".strip()
        again = " ".join(t for t in again.split() if not t.isdigit())
        return [Reply(hazard_list(title, rows, total, page, today, again))]


def mine(incoming: Incoming, services, args: str) -> list[Reply]:
    return _listing(incoming, services, args, "mine")


def unit(incoming: Incoming, services, args: str) -> list[Reply]:
    return _listing(incoming, services, args, "unit")


# ---------------------------------------------------------------- one hazard


def _find(session, person: Person, code: str) -> Hazard | str:
    if not code:
        return "请给出隐患编号，如 YH-20261122-0007。"
    hazard = queries.hazard_by_code(session, code)
    if hazard is None:
        return f"没有找到隐患 {code}。"
    if not in_scope(session, hazard, person):
        return f"隐患 {code} 不属于您的单位或您负责的范围。"
    return hazard


def _name(session, model, key) -> str:
    row = session.get(model, key) if key else None
    return row.name if row is not None else ""


def view(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    code, _ = split_code(args)
    with transaction(services.db) as session:
        person = _staff(session, incoming)
        if isinstance(person, str):
            return [Reply(person)]
        hazard = _find(session, person, code or args.strip()[:30])
        if isinstance(hazard, str):
            return [Reply(hazard)]
        original = session.get(Hazard, hazard.duplicate_of_id) if hazard.duplicate_of_id else None
        names = {
            "department": _name(session, Unit, hazard.department_id),
            "territorial": _name(session, Unit, hazard.territorial_id),
            "grid": _name(session, Person, hazard.grid_person_id),
            "supervisor": _name(session, Person, hazard.supervising_leader_id),
            "duplicate_of": original.code if original else "",
        }
        counts = dict(session.execute(
            select(Attachment.purpose, func.count()).where(Attachment.hazard_id == hazard.id)
            .group_by(Attachment.purpose)).all())
        text = hazard_detail(hazard, viewer=person, config=services.config, today=services.clock().date(),
                             names=names, history=queries.history(session, hazard),
                             photos=(counts.get("report", 0), counts.get("evidence", 0)))
        return [Reply(text)]


# ---------------------------------------------------------------- actions

USAGE = {
    "accept": "/accept 编号 责任人=… 措施=… 资金=… 预案=… [时限=2026-12-01]",
    "start": "/start 编号",
    "submit": "/submit 编号 整改情况说明（可附照片）",
    "close": "/close 编号 [验收意见]",
    "return": "/return 编号 原因",
    "reject": "/reject 编号 原因",
    "duplicate": "/dup 编号 原隐患编号 [说明]",
    "reopen": "/reopen 编号 原因",
}


def _done_text(session, outcome, fields: dict) -> str:
    h, t = outcome.hazard, outcome.transition
    text = f"{h.code}：已{t.label}，当前状态「{workflow.label(h.state)}」。"
    if t.action == "accept":
        text += f"\n责任人：{h.responsible_person}；整改时限：{h.deadline:%Y-%m-%d}"
        if not fields.get("deadline"):
            text += f"（{h.severity}隐患默认期限）"
        if h.supervising_leader_id:
            text += f"\n已挂牌督办，督办领导：{_name(session, Person, h.supervising_leader_id)}"
    if t.action == "duplicate" and fields.get("duplicate_of"):
        text += f"\n已关联原隐患 {fields['duplicate_of']}。"
    if outcome.reporter_notified:
        text += "\n已通知举报人。"
    return text


def _store_evidence(session, incoming: Incoming, services, now) -> list[int]:
    photos = [a for a in incoming.attachments if a.kind == "photo" and a.path]
    return [store_photo(session, services.data_dir, a.path, services.config.ledger, now, purpose="evidence").id
            for a in photos]


def _fields(action: str, rest: str, now) -> dict:
    if action == "accept":
        fields = parse_fields(rest)
        if fields.get("deadline"):
            fields["deadline"] = parse_date(fields["deadline"], now.date())
        return fields
    if action == "duplicate":
        original, note = (rest.split(None, 1) + ["", ""])[:2]
        return {"duplicate_of": split_code(original)[0] or original, "note": note.strip()}
    return {"note": rest}


def _act(incoming: Incoming, services, args: str, action: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    code, rest = split_code(args)
    if not code:
        return [Reply(f"用法：{USAGE[action]}")]
    template = ""
    try:
        with transaction(services.db) as session:
            person = _staff(session, incoming)
            if isinstance(person, str):
                return [Reply(person)]
            hazard = _find(session, person, code)
            if isinstance(hazard, str):
                return [Reply(hazard)]
            now = services.clock()
            if action == "accept":
                template = accept_template(hazard, services.config.ledger,
                                           _name(session, Unit, hazard.department_id))
                if not rest:
                    check_allowed(session, hazard, action, person)
                    return [Reply("受理需落实“五落实”（责任单位、责任人、整改措施、整改资金、整改时限）和应急预案。"
                                  + template)]
            fields = _fields(action, rest, now)
            if action == "submit":
                fields["attachment_ids"] = _store_evidence(session, incoming, services, now)
            outcome = apply(session, hazard, action, person, now, settings=services.config.ledger, **fields)
            return [Reply(_done_text(session, outcome, fields))]
    except MissingFields as exc:
        return [Reply(f"{exc}\n{template}")]
    except (ActionError, ParseError, MediaError) as exc:
        return [Reply(str(exc))]


def _command(action: str):
    def handler(incoming: Incoming, services, args: str) -> list[Reply]:
        return _act(incoming, services, args, action)

    handler.__name__ = f"{action}_command"
    return handler


def start(incoming: Incoming, services, args: str) -> list[Reply]:
    """/start 编号 begins rectification; a bare /start (a platform's first message) is the greeting."""
    if not split_code(args)[0]:
        return help_handler.handle(incoming, services, args)
    return _act(incoming, services, args, "start")


COMMANDS = {
    "mine": mine,
    "unit": unit,
    "hazard": view,
    "accept": _command("accept"),
    "start": start,
    "submit": _command("submit"),
    "close": _command("close"),
    "return": _command("return"),
    "reject": _command("reject"),
    "dup": _command("duplicate"),
    "reopen": _command("reopen"),
}
