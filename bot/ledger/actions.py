"""Workflow actions on a hazard: one transition of bot.storage.workflow.TRANSITIONS, with role and
unit-scope checks, the 五落实 on acceptance, evidence on submission, a history row, and the
reporter's notification in the outbox — all in the caller's transaction.

Two cadres acting on the same hazard at once: the hazard is re-read FOR UPDATE (PostgreSQL) and the
state change is a guarded UPDATE (… WHERE state = <the state we saw>), so the second one fails with
a clear message instead of both succeeding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.config import LedgerSettings
from bot.ledger import outbox
from bot.ledger.people import ROLE_LABELS, actor_label, people_named, role_set, unit_and_descendants
from bot.storage import workflow
from bot.storage.models import Attachment, Hazard, HazardHistory, Person, Unit

# A note's internal part follows this marker; only the part before it is ever shown to the reporter.
INTERNAL_MARK = "〔内部〕"
_INTERNAL_RE = re.compile(r"(?:〔内部〕|【内部】|\[内部\]|内部[:：])")
SEVERITIES = ("一般", "重大")


class ActionError(ValueError):
    """Why an action was refused, phrased for the user (Chinese)."""


class MissingFields(ActionError):
    """Acceptance without the whole 五落实."""


@dataclass(frozen=True)
class Outcome:
    hazard: Hazard
    history: HazardHistory
    transition: workflow.Transition
    reporter_notified: bool = False  # an outbox row to the reporter was written


def split_note(note: str) -> tuple[str, str]:
    """(public part, internal part) of a note."""
    parts = _INTERNAL_RE.split(note or "", maxsplit=1)
    public = parts[0].strip()
    internal = parts[1].strip() if len(parts) > 1 else ""
    return public, internal


def join_note(public: str, internal: str = "") -> str:
    public, internal = public.strip(), internal.strip()
    if internal:
        return f"{public}\n{INTERNAL_MARK}{internal}" if public else f"{INTERNAL_MARK}{internal}"
    return public


def public_part(note: str) -> str:
    return split_note(note)[0]


# ---------------------------------------------------------------- scope


def in_scope(session: Session, hazard: Hazard, person: Person | None) -> bool:
    """May this person see and act on this hazard at all (roles aside)?

    安委办 admins: everywhere. Others: hazards whose 行业 or 属地 unit is their unit or a unit
    below it, and hazards where they are the responsible person, grid member or supervising leader.
    """
    if person is None:
        return False
    if "admin" in role_set(person):
        return True
    if person.id in (hazard.responsible_person_id, hazard.grid_person_id, hazard.supervising_leader_id):
        return True
    if person.unit_id is None:
        return False
    units = unit_and_descendants(session, person.unit_id)
    return hazard.department_id in units or hazard.territorial_id in units


def allowed_labels(state: str) -> str:
    options = workflow.allowed_from(state)
    return "、".join(f"「{t.label}」" for t in options) if options else "无（已是终态）"


def check_allowed(session: Session, hazard: Hazard, action: str, actor: Person) -> workflow.Transition:
    """The transition, or ActionError saying why this actor may not take it on this hazard."""
    t = workflow.BY_ACTION.get(action)
    if t is None:
        raise ActionError(f"未知操作「{action}」。")
    if hazard.state not in t.source:
        raise ActionError(
            f"隐患 {hazard.code} 当前为「{workflow.label(hazard.state)}」，不能「{t.label}」。"
            f"当前可以：{allowed_labels(hazard.state)}。"
        )
    if not role_set(actor) & set(t.roles):
        need = "、".join(ROLE_LABELS[r] for r in t.roles)
        raise ActionError(f"「{t.label}」需要以下角色之一：{need}。")
    if not in_scope(session, hazard, actor):
        raise ActionError(f"隐患 {hazard.code} 不属于您的单位或您负责的范围，不能操作。")
    return t


# ---------------------------------------------------------------- apply


def apply(session: Session, hazard: Hazard, action: str, actor: Person, now: datetime, *,
          settings: LedgerSettings | None = None, **fields) -> Outcome:
    """Perform `action` on `hazard` as `actor`. Raises ActionError when refused: roll the
    transaction back then (bot.storage.db.transaction() does when the error leaves its block).

    Fields: note (all; '内部：' starts the part the reporter never sees), public (override whether
    the note is shown to the reporter); accept: responsible_unit, responsible_person (name or
    Person), measures, funds, deadline (date), emergency_plan, severity, supervising_leader (name or
    Person); submit: note = the rectification evidence, attachment_ids; duplicate: duplicate_of (code).
    """
    settings = settings or LedgerSettings()
    # re-read under a row lock where the database has one, refreshing what this session holds
    hazard = session.execute(
        select(Hazard).where(Hazard.id == hazard.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    t = check_allowed(session, hazard, action, actor)
    source_state = hazard.state
    public, internal = split_note(str(fields.get("note") or ""))
    notify: list[tuple[str, Person, str]] = []  # (key suffix, person, text) for staff pushes

    if t.needs_note and not (public or internal) and action != "duplicate":
        raise ActionError(f"「{t.label}」需要说明原因。")
    if action == "accept":
        public, notify = _accept(session, hazard, actor, now, settings, fields, public)
    elif action == "submit":
        if not (public or internal) and not fields.get("attachment_ids"):
            raise ActionError("提交验收需要整改情况说明（文字，可附照片）。")
        _attach_evidence(session, hazard, fields.get("attachment_ids") or ())
    elif action == "duplicate":
        original = _duplicate_target(session, hazard, str(fields.get("duplicate_of") or ""))
        hazard.duplicate_of_id = original.id
        internal = join_note(f"与 {original.code} 重复", join_note(public, internal))
        public = ""

    changed = session.execute(
        update(Hazard)
        .where(Hazard.id == hazard.id, Hazard.state == source_state)
        .values(state=t.target, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise ActionError(f"隐患 {hazard.code} 的状态刚被他人更新，请发送 /hazard {hazard.code} 查看后重试。")
    hazard.state = t.target
    hazard.updated_at = now
    if action == "close":  # 销号时间
        hazard.closed_at = now
    elif workflow.is_open(t.target):
        hazard.closed_at = None

    shown = bool(fields.get("public", t.tells_reporter)) and bool(public)
    if shown:
        hazard.public_note = public
    history = HazardHistory(hazard_id=hazard.id, at=now, actor_id=actor.id, actor_label=actor_label(actor),
                            from_state=source_state, to_state=t.target, note=join_note(public, internal),
                            public=shown)
    session.add(history)
    session.flush()

    notified = False
    if t.tells_reporter and hazard.reporter_channel and hazard.reporter_user:
        text = f"您反映的隐患（回执码 {hazard.code}）状态更新为「{workflow.label(t.target)}」。"
        if shown:
            text += f"\n说明：{public}"
        notified = outbox.enqueue(session, f"hazard:{hazard.code}:{t.target}:{history.id}", text, now,
                                  person_id=hazard.reporter_person_id, channel=hazard.reporter_channel,
                                  recipient=hazard.reporter_user)
    for suffix, person, text in notify:
        if person.id != actor.id:
            outbox.enqueue(session, f"hazard:{hazard.code}:{suffix}:{history.id}", text, now, person_id=person.id)
    return Outcome(hazard, history, t, notified)


def default_deadline(severity: str, today: date, settings: LedgerSettings) -> date:
    days = settings.deadline_days.get(severity, settings.deadline_days.get("一般", 7))
    return today + timedelta(days=days)


def _accept(session: Session, hazard: Hazard, actor: Person, now: datetime, settings: LedgerSettings,
            fields: dict, public: str) -> tuple[str, list]:
    """Fill the 五落实 (and 挂牌督办 for 重大); returns the public note and staff notifications."""
    severity = str(fields.get("severity") or hazard.severity or "一般").strip()
    if severity not in SEVERITIES:
        raise ActionError(f"隐患等级只能是：{'、'.join(SEVERITIES)}。")
    responsible = fields.get("responsible_person") or hazard.responsible_person
    responsible_name = responsible.name if isinstance(responsible, Person) else str(responsible or "").strip()
    values = {
        "责任人": responsible_name,
        "整改措施": str(fields.get("measures") or hazard.measures or "").strip(),
        "整改资金": str(fields.get("funds") or hazard.funds or "").strip(),
        "应急预案": str(fields.get("emergency_plan") or hazard.emergency_plan or "").strip(),
    }
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise MissingFields(f"受理需落实“五落实”，还缺：{'、'.join(missing)}。")
    deadline = fields.get("deadline") or default_deadline(severity, now.date(), settings)
    if not isinstance(deadline, date) or isinstance(deadline, datetime):
        raise ActionError("整改时限应为日期，如 2026-12-01。")
    if deadline < now.date():
        raise ActionError(f"整改时限 {deadline:%Y-%m-%d} 早于今天，请重新填写。")

    person = responsible if isinstance(responsible, Person) else _resolve_person(session, hazard, responsible_name)
    leader = (_supervising_leader(session, hazard, actor, fields.get("supervising_leader"))
              if severity == "重大" else None)
    # everything checked: only now touch the hazard
    hazard.severity = severity
    hazard.responsible_unit = str(fields.get("responsible_unit") or "").strip() or _default_unit_name(
        session, hazard, actor)
    hazard.responsible_person = responsible_name
    hazard.responsible_person_id = person.id if person else None
    hazard.measures, hazard.funds = values["整改措施"], values["整改资金"]
    hazard.emergency_plan, hazard.deadline = values["应急预案"], deadline
    hazard.supervising_leader_id = leader.id if leader else None

    notify = []
    note = f"整改时限：{deadline:%Y-%m-%d}"
    if person is not None:
        notify.append(("responsible", person,
                       (f"隐患 {hazard.code}（{hazard.category}，{hazard.place}）已受理，由您负责整改，"
                        f"整改时限 {deadline:%Y-%m-%d}。发送 /hazard {hazard.code} 查看。")))
    if leader is not None:
        note += "；已列为重大隐患挂牌督办"
        notify.append(("supervise", leader,
                       (f"重大隐患挂牌督办：{hazard.code}（{hazard.category}，{hazard.place}），"
                        f"整改时限 {deadline:%Y-%m-%d}，请您督办。发送 /hazard {hazard.code} 查看。")))
    return (f"{note}。{public}" if public else note + "。"), notify


def _default_unit_name(session: Session, hazard: Hazard, actor: Person) -> str:
    for uid in (hazard.department_id, hazard.territorial_id, actor.unit_id):
        unit = session.get(Unit, uid) if uid else None
        if unit is not None:
            return unit.name
    return ""


def _resolve_person(session: Session, hazard: Hazard, name: str) -> Person | None:
    """Link the responsible person's row when the name is unambiguous (preferring the hazard's units)."""
    matches = people_named(session, name)
    if len(matches) > 1:
        units = {hazard.department_id, hazard.territorial_id} - {None}
        matches = [p for p in matches if p.unit_id in units]
    return matches[0] if len(matches) == 1 else None


def _supervising_leader(session: Session, hazard: Hazard, actor: Person, given) -> Person:
    if isinstance(given, Person):
        return given
    if given:
        matches = [p for p in people_named(session, str(given)) if "leader" in role_set(p) or "admin" in role_set(p)]
        if len(matches) != 1:
            raise ActionError(f"找不到唯一的督办领导「{given}」（须为已登记的领导）。")
        return matches[0]
    for uid in (hazard.department_id, hazard.territorial_id, actor.unit_id):
        unit = session.get(Unit, uid) if uid else None
        if unit is not None and unit.leader_id:
            leader = session.get(Person, unit.leader_id)
            if leader is not None and leader.active:
                return leader
    if "leader" in role_set(actor):
        return actor
    raise ActionError("重大隐患须挂牌督办，但相关单位未登记领导。请用“督办=姓名”指定督办领导。")


def _attach_evidence(session: Session, hazard: Hazard, ids) -> None:
    ids = {int(i) for i in ids}
    if not ids:
        return
    rows = list(session.scalars(select(Attachment).where(Attachment.id.in_(ids))))
    if len(rows) != len(ids) or any(a.hazard_id not in (None, hazard.id) for a in rows):
        raise ActionError("整改照片无效，请重新上传。")
    for a in rows:
        a.hazard_id, a.purpose = hazard.id, "evidence"


def _duplicate_target(session: Session, hazard: Hazard, code: str) -> Hazard:
    code = code.strip().upper()
    if not code:
        raise ActionError("标记重复需要给出原隐患编号，如：/dup YH-20261122-0007 YH-20261120-0003")
    original = session.scalar(select(Hazard).where(Hazard.code == code))
    if original is None:
        raise ActionError(f"找不到原隐患 {code}。")
    if original.id == hazard.id:
        raise ActionError("不能把隐患标记为与自身重复。")
    if original.duplicate_of_id == hazard.id:
        raise ActionError(f"{code} 已被标记为与本隐患重复，不能互相标记。")
    return original
