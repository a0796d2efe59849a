"""A small district for schedule tests, built with the models directly: an office, a township with a
leader, a roster for 国庆 2026 and a few hazards / supervision items."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.orm import Session

from bot.config import Config, PushTarget, SpecialPeriod
from bot.storage.models import DutyShift, Hazard, Person, SupervisionItem, Unit

DUTY_GROUP = "值班群"
OFFICE_GROUP = "安委办工作群"


def schedule_config(**schedules) -> Config:
    config = Config()
    config.knowledge.embedding.provider = "none"
    s = config.schedules
    s.duty_groups = [DUTY_GROUP]
    s.office_groups = [OFFICE_GROUP]
    s.targets = [PushTarget(name=DUTY_GROUP, channel="console", chat="duty-chat"),
                 PushTarget(name=OFFICE_GROUP, channel="console", chat="office-chat")]
    s.special_periods = [SpecialPeriod(name="森林防火期", start="2026-11-20", end="2026-11-21")]
    for key, value in schedules.items():
        setattr(s, key, value)
    return config


@dataclass
class District:
    town: Unit
    leader: Person  # 带班领导 and the township's leader
    staff: Person
    staff2: Person
    owner: Person  # 责任人


def district(session: Session) -> District:
    town = Unit(name="城关街道", kind="township")
    session.add(town)
    session.flush()
    leader = Person(name="王领导", phone="13900000001", unit_id=town.id, roles="leader", active=True)
    staff = Person(name="李值班", phone="13900000002", unit_id=town.id, roles="cadre", active=True)
    staff2 = Person(name="赵值班", phone="13900000003", unit_id=town.id, roles="cadre", active=True)
    owner = Person(name="张责任", phone="13900000004", unit_id=town.id, roles="cadre", active=True)
    session.add_all([leader, staff, staff2, owner])
    session.flush()
    town.leader_id = leader.id
    session.flush()
    return District(town, leader, staff, staff2, owner)


def shift(session: Session, day: date, person: Person, role: str = "staff", start: str = "08:00",
          hours: int = 24, checked_in_at: datetime | None = None) -> DutyShift:
    starts = datetime.combine(day, time.fromisoformat(start))
    row = DutyShift(day=day, starts_at=starts, ends_at=starts + timedelta(hours=hours), role=role,
                    person_id=person.id, phone=person.phone, unit_id=person.unit_id, source="test",
                    checked_in_at=checked_in_at)
    session.add(row)
    session.flush()
    return row


def hazard(session: Session, code: str, deadline: date | None, owner: Person | None, unit: Unit | None,
           state: str = "rectifying", reported_at: datetime = datetime(2026, 11, 1, 10)) -> Hazard:
    h = Hazard(code=code, description="楼道内电动车充电", category="消防", state=state, reported_at=reported_at,
               territorial_id=unit.id if unit else None, responsible_unit=unit.name if unit else "",
               responsible_person_id=owner.id if owner else None, responsible_person=owner.name if owner else "",
               deadline=deadline, updated_at=reported_at)
    session.add(h)
    session.flush()
    return h


def supervision(session: Session, code: str, deadline: date, owner: Person, unit: Unit | None,
                state: str = "open") -> SupervisionItem:
    item = SupervisionItem(code=code, task="开展燃气安全专项检查", owner_id=owner.id, unit_id=unit.id if unit else None,
                           deadline=deadline, state=state, created_at=datetime(2026, 11, 1), note="")
    session.add(item)
    session.flush()
    return item
