"""Read side of the ledger: cadre lists ("mine", "my unit"), one hazard, and what a viewer may see of
the reporter.

The lists must stay fast on 100,000 hazards (bench/ledger_queries.py). Each scope is written as a
UNION of index-friendly branches — (responsible_person_id, state), (department_id, state),
(territorial_id, state) — rather than an OR, which would make the planner scan the table.
"""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import Select, case, func, select, union
from sqlalchemy.orm import Session

from bot.config import Config
from bot.ledger.people import role_set, unit_and_descendants
from bot.storage import workflow
from bot.storage.models import Hazard, HazardHistory, Person

ANONYMOUS = "匿名"


def hazard_by_code(session: Session, code: str) -> Hazard | None:
    code = (code or "").strip().upper()
    if not code or len(code) > 30:
        return None
    return session.scalar(select(Hazard).where(Hazard.code == code))


def is_overdue(hazard: Hazard, today: date) -> bool:
    return hazard.deadline is not None and hazard.deadline < today and workflow.is_open(hazard.state)


def _state_conditions(state, open_only, overdue) -> list:
    if state:
        return [Hazard.state == state]
    if open_only or overdue:
        return [Hazard.state.in_(workflow.OPEN_STATES)]
    return []


def _filtered(session: Session, *, person, unit_id, state, open_only, overdue, severity, category, today) -> list:
    """WHERE conditions for the given filters (scope as `id IN (UNION …)`)."""
    state_conds = _state_conditions(state, open_only, overdue)
    conds = []
    if overdue:
        if today is None:
            raise ValueError("overdue needs today")
        # outside the scope branches: inside, SQLite (without ANALYZE statistics) would prefer
        # (state, deadline) over the far more selective (unit, state) index
        conds.append(Hazard.deadline < today)
    branches: list[Select] = []
    if person is not None:
        pid = person.id if isinstance(person, Person) else int(person)
        branches += [
            select(Hazard.id).where(Hazard.responsible_person_id == pid, *state_conds),
            select(Hazard.id).where(Hazard.grid_person_id == pid, *state_conds),
        ]
    if unit_id is not None:
        units = sorted(unit_and_descendants(session, unit_id))
        branches += [
            select(Hazard.id).where(Hazard.department_id.in_(units), *state_conds),
            select(Hazard.id).where(Hazard.territorial_id.in_(units), *state_conds),
        ]
    if branches:  # the state conditions are inside each branch, next to their index
        conds.append(Hazard.id.in_(union(*branches).scalar_subquery()))
    else:
        conds += state_conds
    if severity:
        conds.append(Hazard.severity == severity)
    if category:
        conds.append(Hazard.category == category)
    return conds


def list_hazards(
    session: Session,
    *,
    person: Person | int | None = None,
    unit_id: int | None = None,
    state: str | None = None,
    open_only: bool = False,
    overdue: bool = False,
    severity: str | None = None,
    category: str | None = None,
    today: date | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[Hazard]:
    """Hazards matching every filter given.

    person: the person's own (responsible person or grid member); unit_id: the unit's (行业 or 属地,
    including units below it); both given: either. Open lists come most urgent first (earliest
    deadline, no deadline last); others newest first.
    """
    conds = _filtered(session, person=person, unit_id=unit_id, state=state, open_only=open_only,
                      overdue=overdue, severity=severity, category=category, today=today)
    urgent = overdue or open_only or (state is not None and workflow.is_open(state))
    order = ([case((Hazard.deadline.is_(None), 1), else_=0), Hazard.deadline] if urgent else [])
    order += [Hazard.reported_at.desc(), Hazard.id.desc()]
    stmt = select(Hazard).where(*conds).order_by(*order).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def count_hazards(session: Session, **filters) -> int:
    """How many hazards list_hazards would find without limit/offset."""
    filters.pop("limit", None), filters.pop("offset", None)
    keys = ("person", "unit_id", "state", "open_only", "overdue", "severity", "category", "today")
    conds = _filtered(session, **{k: filters.get(k) for k in keys})
    return session.scalar(select(func.count()).select_from(Hazard).where(*conds)) or 0


def history(session: Session, hazard: Hazard, public_only: bool = False) -> list[HazardHistory]:
    stmt = select(HazardHistory).where(HazardHistory.hazard_id == hazard.id)
    if public_only:
        stmt = stmt.where(HazardHistory.public.is_(True))
    return list(session.scalars(stmt.order_by(HazardHistory.at, HazardHistory.id)))


def reports_of(session: Session, channel: str, user: str, limit: int = 20) -> list[Hazard]:
    """A citizen's own reports, matched by the chat account that filed them."""
    return list(session.scalars(
        select(Hazard)
        .where(Hazard.reporter_channel == channel, Hazard.reporter_user == user)
        .order_by(Hazard.reported_at.desc(), Hazard.id.desc())
        .limit(limit)
    ))


# ---------------------------------------------------------------- reporter identity


def mask_name(name: str) -> str:
    name = (name or "").strip()
    return f"{name[0]}**" if name else ""


def mask_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 11:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) >= 7:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "****" if digits or phone else ""


def may_see_identity(viewer: Person | None, config: Config) -> bool:
    return bool(role_set(viewer) & set(config.ledger.identity_visible_to))


def visible_reporter(hazard: Hazard, viewer: Person | None, config: Config) -> str:
    """The reporter as this viewer may see them: in full for roles in ledger.identity_visible_to,
    otherwise "匿名" or masked ("张**", "138****1234")."""
    name, contact = (hazard.reporter_name or "").strip(), (hazard.reporter_contact or "").strip()
    if hazard.anonymous or not (name or contact):
        return ANONYMOUS
    if may_see_identity(viewer, config):
        return " ".join(p for p in (name, contact) if p)
    return " ".join(p for p in (mask_name(name), mask_phone(contact)) if p)
