"""Editing the routing table (category -> 行业主管部门, place -> 属地 unit and grid member), shared by
the admin chat commands and the `safeduty routing` CLI. Matching reports against it is
bot.ledger.routing's job."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from bot.ledger.people import PeopleError, find_person, require_unit
from bot.ledger.routing import CATEGORIES, canonical_category
from bot.storage.models import Person, RoutingRule, Unit


@dataclass(frozen=True)
class RouteRow:
    kind: str  # category | place
    key: str
    unit: str
    grid: str = ""


def _upsert(session: Session, kind: str, key: str, unit: Unit, grid: Person | None) -> RoutingRule:
    rule = session.scalar(select(RoutingRule).where(RoutingRule.kind == kind, RoutingRule.key == key))
    if rule is None:
        rule = RoutingRule(kind=kind, key=key, unit_id=unit.id, grid_person_id=grid.id if grid else None)
        session.add(rule)
    else:
        rule.unit_id, rule.grid_person_id = unit.id, grid.id if grid else None
    session.flush()
    return rule


def set_category_route(session: Session, category: str, unit_name: str) -> tuple[str, Unit]:
    """Route a category to a department; returns (canonical category, unit). PeopleError when the
    category or the unit is unknown."""
    name = canonical_category(category)
    if not name:
        raise PeopleError(f"未知类别「{category.strip()}」。可选：{'、'.join(CATEGORIES)}")
    unit = require_unit(session, unit_name)
    _upsert(session, "category", name, unit, None)
    return name, unit


def set_place_route(session: Session, place: str, unit_name: str, grid_name: str = "") -> tuple[Unit, Person | None]:
    """Route reports whose place text contains `place` to a 属地 unit (and its grid member)."""
    place = place.strip()
    if not place or len(place) > 100:
        raise PeopleError("地点名称不能为空，且不超过 100 字。")
    unit = require_unit(session, unit_name)
    grid = find_person(session, grid_name) if grid_name.strip() else None
    _upsert(session, "place", place, unit, grid)
    return unit, grid


def list_routes(session: Session) -> list[RouteRow]:
    grid = aliased(Person)
    rows = session.execute(
        select(RoutingRule.kind, RoutingRule.key, Unit.name, grid.name)
        .join(Unit, Unit.id == RoutingRule.unit_id)
        .outerjoin(grid, grid.id == RoutingRule.grid_person_id)
        .order_by(RoutingRule.kind, RoutingRule.key)
    ).all()
    order = {c: i for i, c in enumerate(CATEGORIES)}
    out = [RouteRow(kind, key, unit, g or "") for kind, key, unit, g in rows]
    return sorted(out, key=lambda r: (r.kind != "category", order.get(r.key, len(order)), r.key))
