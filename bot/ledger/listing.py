"""Selecting hazards for the ledger's exports and listings, with the usual filters.

A LedgerRow carries the ledger's public columns only: the reporter's identity and contact, the
receipt secret and internal notes never leave the database through here.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, aliased

from bot.ledger.columns import late, match_category, match_severity, match_state, nfkc, overdue_now
from bot.storage.models import Hazard, Unit
from bot.storage.workflow import OPEN_STATES, STATES


class LedgerError(ValueError):
    """A problem with the user's request (unknown unit, bad filter value), phrased in Chinese."""


@dataclass
class LedgerFilter:
    states: tuple[str, ...] = ()  # labels (待核实) or keys (reported)
    open_only: bool = False
    overdue: bool = False  # open and past the 整改时限
    categories: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    unit: str = ""  # 行业主管部门, 属地 or 责任单位, by name
    reported_from: date | None = None
    reported_to: date | None = None  # inclusive


@dataclass
class LedgerRow:
    code: str
    description: str
    category: str
    severity: str
    place: str
    territorial: str
    department: str
    reported_at: datetime
    source: str
    responsible_unit: str
    responsible_person: str
    measures: str
    funds: str
    deadline: date | None
    state_key: str
    closed_at: datetime | None
    today: date = field(repr=False, default_factory=date.today)

    @property
    def state(self) -> str:
        return STATES[self.state_key].label if self.state_key in STATES else self.state_key

    @property
    def overdue(self) -> bool:
        return overdue_now(self.state_key, self.deadline, self.today)

    @property
    def late(self) -> bool:
        return late(self.state_key, self.deadline, self.closed_at, self.today)

    def as_json(self) -> dict:
        return {
            "code": self.code,
            "state": self.state,
            "state_key": self.state_key,
            "category": self.category,
            "severity": self.severity,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "overdue": self.overdue,
            "description": self.description,
            "place": self.place,
            "territorial_unit": self.territorial or None,
            "department": self.department or None,
            "reported_at": self.reported_at.isoformat(timespec="seconds"),
            "source": self.source,
            "responsible_unit": self.responsible_unit,
            "responsible_person": self.responsible_person,
            "measures": self.measures,
            "funds": self.funds,
            "closed_at": self.closed_at.isoformat(timespec="seconds") if self.closed_at else None,
        }


def _resolve_values(values: tuple[str, ...], matcher) -> list[str]:
    try:
        return sorted({matcher(v) for v in values})
    except ValueError as exc:
        raise LedgerError(str(exc)) from None


def find_unit(session: Session, name: str) -> Unit | None:
    """A unit by name, tolerant to full-width characters and spaces."""
    unit = session.scalar(select(Unit).where(Unit.name == name.strip()))
    if unit is not None:
        return unit
    wanted = nfkc(name).replace(" ", "")
    return next((u for u in session.scalars(select(Unit)) if nfkc(u.name).replace(" ", "") == wanted), None)


def build_query(session: Session, filters: LedgerFilter, today: date) -> Select:
    dept, terr = aliased(Unit), aliased(Unit)
    stmt = (
        select(
            Hazard.code, Hazard.description, Hazard.category, Hazard.severity, Hazard.place,
            terr.name, dept.name, Hazard.reported_at, Hazard.source, Hazard.responsible_unit,
            Hazard.responsible_person, Hazard.measures, Hazard.funds, Hazard.deadline, Hazard.state,
            Hazard.closed_at,
        )
        .outerjoin(dept, dept.id == Hazard.department_id)
        .outerjoin(terr, terr.id == Hazard.territorial_id)
        .order_by(Hazard.reported_at, Hazard.id)
    )
    if filters.states:
        stmt = stmt.where(Hazard.state.in_(_resolve_values(filters.states, match_state)))
    if filters.open_only or filters.overdue:
        stmt = stmt.where(Hazard.state.in_(OPEN_STATES))
    if filters.overdue:
        stmt = stmt.where(Hazard.deadline.is_not(None), Hazard.deadline < today)
    if filters.categories:
        stmt = stmt.where(Hazard.category.in_(_resolve_values(filters.categories, match_category)))
    if filters.severities:
        stmt = stmt.where(Hazard.severity.in_(_resolve_values(filters.severities, match_severity)))
    if filters.unit:
        unit = find_unit(session, filters.unit)
        if unit is None:
            raise LedgerError(f"没有名为“{filters.unit}”的单位")
        stmt = stmt.where(
            or_(Hazard.department_id == unit.id, Hazard.territorial_id == unit.id,
                Hazard.responsible_unit == unit.name)
        )
    if filters.reported_from:
        stmt = stmt.where(Hazard.reported_at >= datetime.combine(filters.reported_from, time()))
    if filters.reported_to:
        until = datetime.combine(filters.reported_to + timedelta(days=1), time())
        stmt = stmt.where(Hazard.reported_at < until)
    return stmt


def iter_rows(session: Session, filters: LedgerFilter | None, today: date) -> Iterator[LedgerRow]:
    """The filtered hazards in report order, streamed from the database."""
    # built now, so a bad filter fails before the caller starts writing anything
    stmt = build_query(session, filters or LedgerFilter(), today)

    def rows() -> Iterator[LedgerRow]:
        for r in session.execute(stmt.execution_options(yield_per=2000)):
            yield LedgerRow(
                code=r[0], description=r[1], category=r[2], severity=r[3], place=r[4] or "",
                territorial=r[5] or "", department=r[6] or "", reported_at=r[7], source=r[8] or "",
                responsible_unit=r[9] or "", responsible_person=r[10] or "", measures=r[11] or "",
                funds=r[12] or "", deadline=r[13], state_key=r[14], closed_at=r[15], today=today,
            )

    return rows()
