"""A small district for ledger tests, built directly with the models (not through the intake flow):
units A (a department) and B (a township), a township with a community, people with each role,
bound chat accounts, and a factory for hazards in any state."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.ledger.receipts import hash_secret
from bot.storage.models import ChatIdentity, Hazard, HazardHistory, Person, Unit

REPORTER = ("console", "citizen-1")  # the chat account that filed the world's hazards
SECRET = "K7P3QX"
_seq = itertools.count(1)


def unit(session: Session, name: str, kind: str, parent: Unit | None = None) -> Unit:
    """Get or create (the default routing migration seeds some departments already)."""
    found = session.scalar(select(Unit).where(Unit.name == name))
    if found is None:
        found = Unit(name=name, kind=kind, parent_id=parent.id if parent else None)
        session.add(found)
        session.flush()
    return found


def person(session: Session, name: str, u: Unit | None, roles: str, account: str | None = None,
           now: datetime | None = None) -> Person:
    p = Person(name=name, phone="13800001234", unit_id=u.id if u else None, roles=roles, active=True)
    session.add(p)
    session.flush()
    if account:
        session.add(ChatIdentity(channel="console", platform_user_id=account, person_id=p.id,
                                 bound_at=now or datetime(2026, 11, 1)))
        session.flush()
    return p


def hazard(session: Session, now: datetime, *, state: str = "reported", department: Unit | None = None,
           territorial: Unit | None = None, grid: Person | None = None, responsible: Person | None = None,
           severity: str = "一般", category: str = "消防", deadline: date | None = None,
           reporter: tuple[str, str] | None = REPORTER, secret: str = SECRET, anonymous: bool = True,
           reporter_name: str = "", reporter_contact: str = "", code: str | None = None,
           reported_at: datetime | None = None) -> Hazard:
    n = next(_seq)
    h = Hazard(
        code=code or f"YH-{now:%Y%m%d}-{n:04d}", secret_hash=hash_secret(secret) if secret else "",
        description=f"楼道内电动车充电 {n}", category=category, severity=severity, place="幸福小区3栋",
        state=state, source="随手拍", reported_at=reported_at or now,
        department_id=department.id if department else None, territorial_id=territorial.id if territorial else None,
        grid_person_id=grid.id if grid else None,
        reporter_channel=reporter[0] if reporter else "", reporter_user=reporter[1] if reporter else "",
        anonymous=anonymous, reporter_name=reporter_name, reporter_contact=reporter_contact,
        responsible_person_id=responsible.id if responsible else None,
        responsible_person=responsible.name if responsible else "", deadline=deadline, updated_at=now,
    )
    session.add(h)
    session.flush()
    session.add(HazardHistory(hazard_id=h.id, at=now, actor_label="匿名举报人", from_state=None, to_state=state,
                              note="", public=False))
    session.flush()
    return h


@dataclass
class World:
    office: Unit
    dept_a: Unit  # 行业主管部门 A
    town: Unit  # 属地 township with a community
    community: Unit
    town_b: Unit  # another township (unit B)
    admin: Person
    cadre_a: Person
    leader_a: Person
    town_cadre: Person
    cadre_b: Person
    grid: Person
    citizen: Person  # bound, but only a citizen

    def hazard(self, session: Session, now: datetime, **kw) -> Hazard:
        kw.setdefault("department", self.dept_a)
        kw.setdefault("territorial", self.community)
        kw.setdefault("grid", self.grid)
        return hazard(session, now, **kw)


def build_world(session: Session, now: datetime) -> World:
    office = unit(session, "区安委办", "office")
    dept_a = unit(session, "测试消防大队", "department")
    town = unit(session, "城关街道", "township")
    community = unit(session, "幸福社区", "community", town)
    town_b = unit(session, "东城街道", "township")
    w = World(
        office=office, dept_a=dept_a, town=town, community=community, town_b=town_b,
        admin=person(session, "王安委", office, "admin", "admin-1", now),
        cadre_a=person(session, "赵干部", dept_a, "cadre", "cadre-a", now),
        leader_a=person(session, "钱领导", dept_a, "leader", "leader-a", now),
        town_cadre=person(session, "孙干部", town, "cadre", "town-cadre", now),
        cadre_b=person(session, "周干部", town_b, "cadre", "cadre-b", now),
        grid=person(session, "李网格", community, "grid", "grid-1", now),
        citizen=person(session, "吴群众", None, "citizen", "citizen-bound", now),
    )
    dept_a.leader_id = w.leader_a.id
    session.flush()
    return w


def new_hazard(services, world, clock, **kw) -> Hazard:
    """A hazard committed in its own transaction (as another user's earlier report would be)."""
    from bot.storage.db import transaction

    with transaction(services.db) as s:
        return world.hazard(s, clock(), **kw)
