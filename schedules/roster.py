"""Duty rosters (值班表): import with a validation report before saving, look-ups (who is on duty
when), the roster as text, swaps by an admin, and check-in (到岗).

Errors block the import (nothing is saved); warnings are reported but do not block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.ledger.outbox import enqueue
from bot.ledger.people import people_named
from bot.storage.models import DutyShift, Person, Unit
from schedules.calendar import CalendarYearUnknown, HolidayCalendar
from schedules.roster_read import RosterFileError, parse_dates, parse_shift, read_roster

ROLE_LABELS = {"leader": "带班领导", "staff": "值班员"}
__all__ = ["RosterError", "RosterFileError", "RosterReport", "import_roster", "shifts_between", "shifts_on",
           "on_duty", "OnDuty", "roster_show", "swap", "check_in"]


class RosterError(ValueError):
    """A roster operation refused, phrased for the user."""


@dataclass
class PlannedShift:
    day: date
    starts_at: datetime
    ends_at: datetime
    role: str
    person: Person
    phone: str
    unit_id: int | None
    line: int


@dataclass
class RosterReport:
    source: str
    shifts: list[PlannedShift] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    first_day: date | None = None
    last_day: date | None = None
    saved: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        lines = [f"值班表 {self.source}"]
        if self.first_day:
            days = len({s.day for s in self.shifts})
            lines.append(f"日期 {self.first_day:%Y-%m-%d} 至 {self.last_day:%Y-%m-%d}，{days} 天，{len(self.shifts)} 个班次。")
        if self.errors:
            lines.append(f"错误 {len(self.errors)} 项（未保存任何数据，请修改后重新导入）：")
            lines += [f"  ✗ {e}" for e in self.errors]
        if self.warnings:
            lines.append(f"提醒 {len(self.warnings)} 项：")
            lines += [f"  ! {w}" for w in self.warnings]
        if self.saved:
            lines.append("已保存，同日期原有排班已替换。")
        elif self.ok:
            lines.append("校验通过。")
        return "\n".join(lines)


# ---------------------------------------------------------------- import

def _resolve(session: Session, name: str, unit_name: str, cache: dict) -> Person | str:
    key = (name, unit_name)
    if key not in cache:
        matches = people_named(session, name)
        if len(matches) > 1 and unit_name:
            matches = [p for p in matches if p.unit and p.unit.name == unit_name] or matches
        if not matches:
            cache[key] = f"人员「{name}」不在人员名单中（请先用 safeduty people add 登记，或检查姓名）"
        elif len(matches) > 1:
            cache[key] = f"有 {len(matches)} 位「{name}」，请在“单位”列写明其单位"
        else:
            cache[key] = matches[0]
    return cache[key]


def _plan(session: Session, report: RosterReport, rows, year: int) -> None:
    cache: dict = {}
    seen: set = set()
    previous: date | None = None
    for row in rows:
        try:
            first, last = parse_dates(row.dates, previous.year if previous else year)
        except ValueError:
            report.errors.append(f"第 {row.line} 行：日期「{row.dates or '（空）'}」无法识别")
            continue
        if previous and first < previous - timedelta(days=180) and str(first.year) not in row.dates:
            first, last = first.replace(year=first.year + 1), last.replace(year=last.year + 1)  # Dec -> Jan
        previous = first
        unit = session.scalar(select(Unit).where(Unit.name == row.unit)) if row.unit else None
        if row.unit and unit is None:
            report.warnings.append(f"第 {row.line} 行：单位「{row.unit}」未登记，已忽略该列")
        for role, names, phones in (("leader", row.leaders, row.leader_phones), ("staff", row.staff, row.staff_phones)):
            for i, name in enumerate(names):
                person = _resolve(session, name, row.unit, cache)
                if isinstance(person, str):
                    report.errors.append(f"第 {row.line} 行：{person}")
                    continue
                phone = phones[i] if i < len(phones) else (phones[0] if len(phones) == 1 and len(names) == 1 else "")
                day = first
                while day <= last:
                    try:
                        starts, ends = parse_shift(row.shift, day)
                    except ValueError:
                        report.errors.append(f"第 {row.line} 行：班次「{row.shift}」无法识别（例：08:30-次日08:30）")
                        break
                    key = (day, person.id, starts)
                    if key not in seen:  # a leader merged over several staff rows appears once
                        seen.add(key)
                        report.shifts.append(PlannedShift(day, starts, ends, role, person, phone or person.phone,
                                                          unit.id if unit else person.unit_id, row.line))
                    day += timedelta(days=1)


def _check_overlaps(session: Session, report: RosterReport) -> None:
    days = {s.day for s in report.shifts}
    by_person: dict[int, list[tuple[datetime, datetime, str]]] = {}
    for s in report.shifts:
        by_person.setdefault(s.person.id, []).append((s.starts_at, s.ends_at, f"第 {s.line} 行"))
    if by_person:
        lo, hi = min(days) - timedelta(days=2), max(days) + timedelta(days=2)
        kept = session.scalars(select(DutyShift).where(DutyShift.day.between(lo, hi),
                                                       DutyShift.person_id.in_(list(by_person))))
        for old in kept:
            if old.day not in days:  # shifts on days the file replaces do not count
                by_person[old.person_id].append((old.starts_at, old.ends_at, f"已有排班 {old.day:%m-%d}"))
    names = {s.person.id: s.person.name for s in report.shifts}
    for pid, spans in by_person.items():
        spans.sort()
        for (s1, e1, w1), (s2, e2, w2) in zip(spans, spans[1:]):
            if s2 < e1:
                report.errors.append(f"{names[pid]} 的班次时间重叠：{w1} {s1:%m-%d %H:%M}–{e1:%m-%d %H:%M}，"
                                     f"{w2} {s2:%m-%d %H:%M}–{e2:%m-%d %H:%M}")


def _check_coverage(report: RosterReport, calendar: HolidayCalendar) -> None:
    warning = calendar.warning_for(report.first_day, report.last_day)
    if warning:
        report.warnings.append(warning)
    roles: dict[date, set[str]] = {}
    for s in report.shifts:
        roles.setdefault(s.day, set()).add(s.role)
    day = report.first_day
    while day <= report.last_day:
        try:
            off, holiday = calendar.is_off_day(day), calendar.holiday_name(day)
        except CalendarYearUnknown:
            off, holiday = day.weekday() >= 5, None
        if holiday and day not in roles:
            report.errors.append(f"{calendar.day_label(day)} 是节假日，没有安排任何人值班")
        elif holiday and "leader" not in roles[day]:
            report.errors.append(f"{calendar.day_label(day)} 是节假日，没有带班领导")
        elif off and day not in roles:
            report.warnings.append(f"{calendar.day_label(day)} 是休息日，没有安排值班")
        day += timedelta(days=1)


def import_roster(session: Session, path: Path, now: datetime, calendar: HolidayCalendar | None = None,
                  dry_run: bool = False) -> RosterReport:
    """Read, validate and (when there are no errors and not dry_run) save a roster file, replacing the
    shifts of the days it covers. RosterFileError when the file cannot be read at all."""
    path = Path(path)
    calendar = calendar or HolidayCalendar()
    rows, file_year = read_roster(path)
    report = RosterReport(source=path.name)
    if not rows:
        raise RosterFileError(f"{path.name} 中没有任何值班安排（只有表头或空行）。")
    _plan(session, report, rows, file_year or now.year)
    if report.shifts:
        report.first_day = min(s.day for s in report.shifts)
        report.last_day = max(s.day for s in report.shifts)
        _check_overlaps(session, report)
        _check_coverage(report, calendar)
    elif not report.errors:
        report.errors.append("没有读到任何有效的值班安排")
    if report.errors or dry_run:
        return report
    days = sorted({s.day for s in report.shifts})
    session.execute(delete(DutyShift).where(DutyShift.day.in_(days)))
    for s in report.shifts:
        session.add(DutyShift(day=s.day, starts_at=s.starts_at, ends_at=s.ends_at, role=s.role, person_id=s.person.id,
                              phone=s.phone, unit_id=s.unit_id, source=path.name[:200]))
    session.flush()
    report.saved = True
    return report


# ---------------------------------------------------------------- look-ups

def shifts_between(session: Session, start: date, end: date) -> list[DutyShift]:
    """Every shift whose duty day is in [start, end], by day, leaders first, then start time."""
    rows = session.scalars(select(DutyShift).where(DutyShift.day.between(start, end)))
    return sorted(rows, key=lambda s: (s.day, s.role != "leader", s.starts_at, s.id))


def shifts_on(session: Session, day: date) -> list[DutyShift]:
    return shifts_between(session, day, day)


@dataclass
class OnDuty:
    leaders: list[DutyShift]
    staff: list[DutyShift]

    def __bool__(self) -> bool:
        return bool(self.leaders or self.staff)


def on_duty(session: Session, when: datetime) -> OnDuty:
    """The shifts running at `when` (starts_at <= when < ends_at)."""
    rows = session.scalars(select(DutyShift).where(DutyShift.starts_at <= when, DutyShift.ends_at > when)
                           .order_by(DutyShift.starts_at, DutyShift.id))
    rows = list(rows)
    return OnDuty([s for s in rows if s.role == "leader"], [s for s in rows if s.role != "leader"])


def _who(session: Session, shifts: list[DutyShift]) -> str:
    parts = []
    for s in shifts:
        person = session.get(Person, s.person_id)
        phone = f" {s.phone}" if s.phone else ""
        hours = "" if (s.starts_at.time().strftime("%H:%M") == "08:30" and s.ends_at - s.starts_at == timedelta(hours=24)) \
            else f"（{s.starts_at:%H:%M}-{'次日' if s.ends_at.date() > s.day else ''}{s.ends_at:%H:%M}）"
        parts.append(f"{person.name if person else '?'}{phone}{hours}")
    return "；".join(parts) if parts else "（未安排）"


def roster_show(session: Session, start: date, end: date, calendar: HolidayCalendar | None = None) -> str:
    calendar = calendar or HolidayCalendar()
    shifts = shifts_between(session, start, end)
    if not shifts:
        return f"{start:%Y-%m-%d} 至 {end:%Y-%m-%d} 没有值班安排。"
    by_day: dict[date, list[DutyShift]] = {}
    for s in shifts:
        by_day.setdefault(s.day, []).append(s)
    lines = []
    for day, rows in sorted(by_day.items()):
        lines.append(calendar.day_label(day))
        lines.append("  带班领导：" + _who(session, [s for s in rows if s.role == "leader"]))
        lines.append("  值班员：" + _who(session, [s for s in rows if s.role != "leader"]))
    return "\n".join(lines)


# ---------------------------------------------------------------- changes

def swap(session: Session, day: date, out_person: Person, in_person: Person, actor: Person | None,
         now: datetime) -> list[DutyShift]:
    """Put in_person on out_person's shifts of `day` (admins only); both are told through the outbox."""
    if actor is not None and not actor.has_role("admin"):
        raise RosterError("只有安委办管理员可以调整值班。")
    if out_person.id == in_person.id:
        raise RosterError("原值班人和新值班人是同一人。")
    moved = [s for s in shifts_on(session, day) if s.person_id == out_person.id]
    if not moved:
        raise RosterError(f"{out_person.name} 在 {day:%Y-%m-%d} 没有值班安排。")
    theirs = session.scalars(select(DutyShift).where(DutyShift.person_id == in_person.id,
                                                     DutyShift.day.between(day - timedelta(days=2),
                                                                           day + timedelta(days=2))))
    for other in theirs:
        for s in moved:
            if other.starts_at < s.ends_at and s.starts_at < other.ends_at:
                raise RosterError(f"{in_person.name} 在 {other.day:%m月%d日} 已有重叠的值班安排。")
    for s in moved:
        s.person_id, s.phone, s.checked_in_at = in_person.id, in_person.phone, None
    session.flush()
    role = "、".join(sorted({ROLE_LABELS.get(s.role, s.role) for s in moved}))
    when = f"{day.month}月{day.day}日"
    key = f"duty-swap:{day.isoformat()}:{out_person.id}->{in_person.id}"
    enqueue(session, f"{key}:person:{in_person.id}",
            f"【值班调整】{when}的{role}由您接替 {out_person.name}，请按时到岗，到岗后回复“到岗”。", now,
            person_id=in_person.id)
    enqueue(session, f"{key}:person:{out_person.id}",
            f"【值班调整】{when}您的{role}已调整为 {in_person.name} 接替，您无需到岗。", now,
            person_id=out_person.id)
    return moved


def check_in(session: Session, person: Person, now: datetime) -> tuple[DutyShift, bool] | None:
    """Mark the person's shift of today (or the one running now) as 到岗. Returns (shift, already)
    or None when they are not on duty. Idempotent: a second check-in keeps the first time."""
    rows = session.scalars(select(DutyShift).where(DutyShift.person_id == person.id,
                                                   DutyShift.day.between(now.date() - timedelta(days=1), now.date())))
    candidates = [s for s in rows if s.day == now.date() or s.starts_at <= now < s.ends_at]
    if not candidates:
        return None
    candidates.sort(key=lambda s: (not (s.starts_at <= now < s.ends_at), s.starts_at))
    shift = candidates[0]
    if shift.checked_in_at is not None:
        return shift, True
    shift.checked_in_at = now
    session.flush()
    return shift, False
