"""Every push the bot should make in a time window, derived from rosters, hazards, supervision items,
the holiday calendar and config — a pure function of the database state it reads.

The idempotency keys are the contract with the outbox and the job store: the same push always gets
the same key, and a push whose cause has gone (hazard rectified, deadline moved, shift checked in)
is simply no longer planned. Times are naive local times in the configured zone.

Each kind is read with one query for the whole window (no per-day queries), so a whole year for a
district plans in well under the 2 s target (bench/schedule_preview.py).
"""
from __future__ import annotations

import bisect
from json.encoder import encode_basestring  # the C string encoder behind json.dumps(ensure_ascii=False)
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.storage.models import DutyShift, Hazard, Person, SupervisionItem, Unit
from bot.storage.workflow import OPEN_STATES, label

from schedules.calendar import CalendarYearUnknown

NUDGE_STATES = tuple(s for s in OPEN_STATES if s != "awaiting_acceptance")
WEEKDAYS = "一二三四五六日"
LONGEST_OVERDUE = 5  # items listed in a digest


class Push(NamedTuple):
    time: datetime
    kind: str
    recipient: str  # "person:17" | "group:安委办工作群"
    person_id: int | None
    target: str | None  # the PushTarget name for group pushes
    key: str  # idempotency key
    text: str

    def as_json(self) -> dict:
        return {"time": self.time.isoformat(), "kind": self.kind, "recipient": self.recipient,
                "person_id": self.person_id, "target": self.target, "key": self.key, "text": self.text}

    def json_line(self) -> str:
        """The same object as as_json(), serialised directly: a year's preview is ~130k lines."""
        q = encode_basestring
        person = "null" if self.person_id is None else str(self.person_id)
        target = "null" if self.target is None else q(self.target)
        return (f'{{"time": "{self.time.isoformat()}", "kind": {q(self.kind)}, "recipient": {q(self.recipient)}, '
                f'"person_id": {person}, "target": {target}, "key": {q(self.key)}, "text": {q(self.text)}}}\n')


def _hm(value: str) -> time:
    hour, minute = value.split(":")
    return time(int(hour), int(minute))


def _md(d: date) -> str:
    return f"{d.month}月{d.day}日（周{WEEKDAYS[d.weekday()]}）"


class _Recipients:
    """Group and person recipients; several recipients of one logical push get suffixed keys."""

    def __init__(self, session: Session, config: Config) -> None:
        s = config.schedules
        self.duty = [("group:" + g, None, g) for g in s.duty_groups]
        office = [("group:" + g, None, g) for g in s.office_groups]
        if not office:  # no 安委办 group configured: the admins personally
            rows = session.execute(select(Person.id, Person.roles).where(Person.active.is_(True))).all()
            office = [(f"person:{pid}", pid, None) for pid, roles in rows if "admin" in roles.split(",")]
        self.office = office

    @staticmethod
    def fan_out(out: list, when: datetime, kind: str, base_key: str, recipients: list, text: str) -> None:
        many = len(recipients) > 1
        for recipient, person_id, target in recipients:
            key = f"{base_key}:{recipient}" if many else base_key
            out.append(Push(when, kind, recipient, person_id, target, key, text))


def plan(session: Session, config: Config, calendar, start: datetime, end: datetime) -> list[Push]:
    """All pushes with start <= time <= end, sorted by time."""
    if end < start:
        return []
    ctx = _Context(session, config, calendar, start, end)
    out: list[Push] = []
    ctx.calendar_pushes(out)
    ctx.duty_pushes(out)
    ctx.deadline_pushes(out)
    ctx.supervision_pushes(out)
    ctx.digest_pushes(out)
    out.sort(key=attrgetter("time"))  # stable: within one instant, the (deterministic) derivation order
    return out


class _Context:
    def __init__(self, session: Session, config: Config, calendar, start: datetime, end: datetime) -> None:
        self.session, self.config, self.calendar = session, config, calendar
        self.s = config.schedules
        self.start, self.end = start, end
        self.recipients = _Recipients(session, config)
        self.holidays: list = []  # Holiday objects overlapping the window (+ lead days)
        self.holiday_days: dict[date, str] = {}
        self.unknown_years: set[int] = set()
        self._shifts: dict[date, list] | None = None
        self._people: dict[int, tuple[str, str]] | None = None

    def in_window(self, when: datetime) -> bool:
        return self.start <= when <= self.end

    # ------------------------------------------------------------ shared reads (one query each)

    def people(self) -> dict[int, tuple[str, str]]:
        if self._people is None:
            rows = self.session.execute(select(Person.id, Person.name, Person.phone)).all()
            self._people = {pid: (name, phone) for pid, name, phone in rows}
        return self._people

    def shifts(self) -> dict[date, list]:
        """Duty shifts from the day before the window to the last holiday the window announces."""
        if self._shifts is None:
            first = self.start.date() - timedelta(days=1)
            last = self.end.date() + timedelta(days=1)
            for h in self.holidays:
                last = max(last, h.last_day)
            rows = self.session.execute(
                select(DutyShift.id, DutyShift.day, DutyShift.starts_at, DutyShift.ends_at, DutyShift.role,
                       DutyShift.person_id, DutyShift.phone, DutyShift.checked_in_at)
                .where(DutyShift.day >= first, DutyShift.day <= last)
                .order_by(DutyShift.day, DutyShift.starts_at, DutyShift.id)
            ).all()
            by_day: dict[date, list] = defaultdict(list)
            for row in rows:
                by_day[row.day].append(row)
            self._shifts = by_day
        return self._shifts

    def roster_text(self, day: date) -> str:
        people = self.people()
        leaders, staff = [], []
        for row in self.shifts().get(day, []):
            name, phone = people.get(row.person_id, ("?", ""))
            entry = f"{name}（{row.phone or phone}）" if (row.phone or phone) else name
            (leaders if row.role == "leader" else staff).append(entry)
        if not leaders and not staff:
            return f"{_md(day)}：未排班"
        return (f"{_md(day)}：带班领导 {'、'.join(leaders) or '未安排'}；"
                f"值班员 {'、'.join(staff) or '未安排'}")

    # ------------------------------------------------------------ calendar

    def calendar_pushes(self, out: list) -> None:
        lead = self.s.holiday_lead_days
        first, last = self.start.date(), self.end.date() + timedelta(days=lead)
        for year in range(first.year, last.year + 1):
            lo, hi = max(first, date(year, 1, 1)), min(last, date(year, 12, 31))
            try:
                found = self.calendar.holidays_between(lo, hi)
            except CalendarYearUnknown:
                self.unknown_years.add(year)
                continue
            for h in found:
                if all(h.first_day != seen.first_day for seen in self.holidays):
                    self.holidays.append(h)
        for h in self.holidays:
            d = h.first_day
            while d <= h.last_day:
                self.holiday_days[d] = h.name
                d += timedelta(days=1)
        for year in sorted(self.unknown_years):
            text = (f"【日历缺失】节假日安排中没有 {year} 年的数据（国务院通知可能尚未发布或未录入）。"
                    f"请在 config.yaml 的 schedules.holidays 中补充 {year} 年的节假日和调休上班日；"
                    "补充前该年不会发送节前提醒。")
            self.recipients.fan_out(out, self.start, "calendar-unknown", f"calendar-unknown:{year}",
                                    self.recipients.office, text)
        eve_time = _hm(self.s.duty_morning_time)
        for h in self.holidays:
            when = datetime.combine(h.first_day - timedelta(days=lead), eve_time)
            if not self.in_window(when):
                continue
            days = (h.last_day - h.first_day).days + 1
            lines = []
            d = h.first_day
            while d <= h.last_day:
                lines.append(self.roster_text(d))
                d += timedelta(days=1)
            text = (f"【节前安全提醒】{h.name}假期（{_md(h.first_day)}至{_md(h.last_day)}，共{days}天）将至。"
                    "请严格执行领导干部到岗带班和关键岗位24小时值班制度，做好隐患排查和应急准备。\n"
                    "值班安排：\n" + "\n".join(lines))
            for group in self.s.duty_groups:
                out.append(Push(when, "holiday-eve", f"group:{group}", None, group,
                                f"holiday-eve:{h.first_day}:{group}", text))

    def special_name(self, day: date) -> str | None:
        sp = self.calendar.special_period(day)
        if not sp:
            return None
        return getattr(sp, "name", None) or str(sp)

    # ------------------------------------------------------------ duty

    def duty_pushes(self, out: list) -> None:
        shifts, people = self.shifts(), self.people()
        eve_t, morning_t = _hm(self.s.duty_eve_time), _hm(self.s.duty_morning_time)
        checkin_t = _hm(self.s.checkin_deadline)
        to_leader = timedelta(minutes=self.s.escalate_to_leader_after_minutes)
        to_office = timedelta(minutes=self.s.escalate_to_office_after_minutes)
        day = self.start.date() - timedelta(days=1)
        while day <= self.end.date() + timedelta(days=1):
            rows = shifts.get(day, [])
            occasion = self.holiday_days.get(day) or self._special(day)
            # the evening before: each person on duty, once per day
            eve = datetime.combine(day - timedelta(days=1), eve_t)
            if rows and self.in_window(eve):
                mine: dict[int, list] = defaultdict(list)
                for row in rows:
                    mine[row.person_id].append(row)
                for pid, own in mine.items():
                    role = "带班领导" if any(r.role == "leader" for r in own) else "值班员"
                    times = "、".join(f"{r.starts_at:%H:%M}—{r.ends_at:%m-%d %H:%M}" for r in own)
                    extra = f"（{occasion}）" if occasion else ""
                    text = (f"【值班提醒】{people.get(pid, ('', ''))[0]}您好，明天{_md(day)}{extra}由您担任{role}，"
                            f"时间 {times}。请于 {self.s.checkin_deadline} 前回复“到岗”确认。")
                    out.append(Push(eve, "duty-eve", f"person:{pid}", pid, None, f"duty-eve:{day}:person:{pid}", text))
            # holiday / special-period mornings: 今日值班 to the groups
            morning = datetime.combine(day, morning_t)
            if occasion and self.in_window(morning):
                text = f"【今日值班】{occasion}\n{self.roster_text(day)}"
                for group in self.s.duty_groups:
                    out.append(Push(morning, "duty-morning", f"group:{group}", None, group,
                                    f"duty-morning:{day}:{group}", text))
            # check-in escalation for shifts without 到岗
            leaders = [r for r in rows if r.role == "leader"]
            for row in rows:
                if row.checked_in_at is not None:
                    continue
                deadline = max(datetime.combine(day, checkin_t), row.starts_at)
                name, phone = people.get(row.person_id, ("?", ""))
                who = f"{name}（{row.phone or phone}）"
                role = "带班领导" if row.role == "leader" else "值班员"
                when = deadline + to_leader
                if self.in_window(when):
                    for lead in leaders:
                        if lead.person_id == row.person_id:
                            continue
                        text = (f"【到岗提醒】{_md(day)}{role}{who}截至 {when:%H:%M} 仍未确认到岗，"
                                "请带班领导督促落实。")
                        out.append(Push(when, "checkin-escalation", f"person:{lead.person_id}", lead.person_id,
                                        None, f"checkin-late:{day}:{row.id}:leader", text))
                        break
                when = deadline + to_office
                if self.in_window(when):
                    text = f"【到岗提醒】{_md(day)}{role}{who}截至 {when:%H:%M} 仍未确认到岗，请安委办核实。"
                    self.recipients.fan_out(out, when, "checkin-escalation", f"checkin-late:{day}:{row.id}:office",
                                            self.recipients.office, text)
            day += timedelta(days=1)

    def _special(self, day: date) -> str | None:
        try:  # special periods come from config, so they work even in unknown years
            return self.special_name(day)
        except CalendarYearUnknown:
            return None

    # ------------------------------------------------------------ deadlines

    def _days(self) -> tuple[date, date, time]:
        at = _hm(self.s.nudge_time)
        first = self.start.date() if self.start.time() <= at else self.start.date() + timedelta(days=1)
        last = self.end.date() if self.end.time() >= at else self.end.date() - timedelta(days=1)
        return first, last, at

    def _deadline_nudges(self, out: list, items: list, prefix: str, what: str) -> None:
        """items: (code, deadline, person_id, leader_id, title) sorted by deadline."""
        first, last, at = self._days()
        if first > last:
            return
        for code, deadline, pid, _leader, title in items:
            if pid is None:
                continue
            for n in self.s.nudge_days_before:
                day = deadline - timedelta(days=n)
                if first <= day <= last:
                    when = datetime.combine(day, at)
                    due = "今天到期" if n == 0 else f"还有{n}天到期"
                    text = f"【整改提醒】{what}{code}（{title}）整改时限 {deadline}，{due}，请按时完成并提交验收。"
                    out.append(Push(when, f"{prefix}nudge", f"person:{pid}", pid, None,
                                    f"{prefix}nudge:{code}:{deadline}:T-{n}", text))
        self._overdue_digests(out, items, prefix, what, first, last, at)

    def _overdue_digests(self, out: list, items: list, prefix: str, what: str, first: date, last: date,
                         at: time) -> None:
        """Once overdue: ONE daily reminder per 责任人 listing their overdue items, and after
        overdue_escalate_after_days one daily 挂牌督办 message per unit leader — not one message per
        hazard per day (a cadre with 40 overdue items would get 40 messages every morning, and a
        year of them is millions of pushes)."""
        by_person: dict[int, list] = defaultdict(list)
        by_leader: dict[int, list] = defaultdict(list)
        for code, deadline, pid, leader, title in items:  # items are sorted by deadline
            if pid is not None:
                by_person[pid].append((deadline, code, title))
            if leader is not None:
                by_leader[leader].append((deadline, code, title))
        lag = timedelta(days=self.s.overdue_escalate_after_days)
        self._daily_lists(out, by_person, first, last, at, timedelta(days=1), f"{prefix}nudge-overdue",
                          f"【逾期提醒】您负责的{what}", "已超过整改时限，请立即整改：")
        self._daily_lists(out, by_leader, first, last, at, lag, f"{prefix}nudge-escalate",
                          f"【挂牌督办】本单位{what}", f"逾期超过{self.s.overdue_escalate_after_days}天，请督促整改：")

    @staticmethod
    def _daily_lists(out: list, grouped: dict[int, list], first: date, last: date, at: time,
                     lag: timedelta, kind: str, head: str, tail: str) -> None:
        """For each person and day: the items whose deadline is at least `lag` before that day.
        The longest-overdue items are the earliest deadlines, i.e. the head of the sorted list."""
        for pid, rows in grouped.items():
            deadlines = [r[0] for r in rows]
            # the listed items are always the first (longest overdue) ones: prepare the 3 variants
            listed = ["；".join(f"{code}（{title}，时限 {deadline}）" for deadline, code, title in rows[:k])
                      for k in range(4)]
            recipient = f"person:{pid}"
            key_head = f"{kind}:person:{pid}:"
            day = max(first, deadlines[0] + lag)
            while day <= last:
                count = bisect.bisect_right(deadlines, day - lag)
                more = f"等 {count} 项" if count > 3 else f"共 {count} 项"
                text = f"{head}{more}{tail}{listed[min(count, 3)]}（最长已逾期{(day - deadlines[0]).days}天）"
                out.append(Push(datetime.combine(day, at), kind, recipient, pid, None, key_head + day.isoformat(), text))
                day += timedelta(days=1)

    def _units(self) -> tuple[dict[int, int | None], dict[str, int | None], dict[int, str]]:
        rows = self.session.execute(select(Unit.id, Unit.name, Unit.leader_id)).all()
        return ({uid: leader for uid, _n, leader in rows}, {n: leader for _u, n, leader in rows},
                {uid: n for uid, n, _l in rows})

    def deadline_pushes(self, out: list) -> None:
        horizon = self.end.date() + timedelta(days=max(self.s.nudge_days_before, default=0))
        rows = self.session.execute(
            select(Hazard.code, Hazard.deadline, Hazard.responsible_person_id, Hazard.grid_person_id,
                   Hazard.supervising_leader_id, Hazard.responsible_unit, Hazard.department_id,
                   Hazard.territorial_id, Hazard.description)
            .where(Hazard.state.in_(NUDGE_STATES), Hazard.deadline.is_not(None), Hazard.deadline <= horizon)
            .order_by(Hazard.deadline, Hazard.code)
        ).all()
        by_id, by_name, _names = self._units()
        items = []
        for r in rows:
            leader = (r.supervising_leader_id or by_name.get(r.responsible_unit)
                      or by_id.get(r.department_id) or by_id.get(r.territorial_id))
            title = r.description if len(r.description) <= 20 else r.description[:20] + "…"
            items.append((r.code, r.deadline, r.responsible_person_id or r.grid_person_id, leader, title))
        self._deadline_nudges(out, items, "", "隐患 ")

    def supervision_pushes(self, out: list) -> None:
        horizon = self.end.date() + timedelta(days=max(self.s.nudge_days_before, default=0))
        rows = self.session.execute(
            select(SupervisionItem.code, SupervisionItem.deadline, SupervisionItem.owner_id,
                   SupervisionItem.unit_id, SupervisionItem.task)
            .where(SupervisionItem.state == "open", SupervisionItem.deadline <= horizon)
            .order_by(SupervisionItem.deadline, SupervisionItem.code)
        ).all()
        if not rows:
            return
        by_id, _by_name, _names = self._units()
        items = [(r.code, r.deadline, r.owner_id, by_id.get(r.unit_id),
                  r.task if len(r.task) <= 20 else r.task[:20] + "…") for r in rows]
        self._deadline_nudges(out, items, "sv-", "督办事项 ")

    # ------------------------------------------------------------ digests

    def _fire_times(self, expr: str) -> list[datetime]:
        from apscheduler.triggers.cron import CronTrigger

        zone = ZoneInfo(self.config.bot.timezone)
        trigger = CronTrigger.from_crontab(expr, timezone=zone)
        start = self.start.replace(tzinfo=zone)
        end = self.end.replace(tzinfo=zone)
        times, previous = [], None
        current = trigger.get_next_fire_time(None, start)
        while current is not None and current <= end:
            times.append(current.replace(tzinfo=None))
            previous = current
            current = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        return times

    def digest_pushes(self, out: list) -> None:
        weekly = self._fire_times(self.s.weekly_digest_cron)
        monthly = self._fire_times(self.s.monthly_digest_cron)
        if not weekly and not monthly:
            return
        rows = self.session.execute(
            select(Hazard.code, Hazard.state, Hazard.reported_at, Hazard.closed_at, Hazard.deadline,
                   Hazard.department_id, Hazard.territorial_id, Hazard.description)
        ).all()
        _by_id, _by_name, names = self._units()
        index = _DigestIndex(rows, names)
        for when in weekly:
            text = index.text("周", when, when - timedelta(days=7))
            self.recipients.fan_out(out, when, "digest-weekly", f"digest-weekly:{when.date()}",
                                    self.recipients.office, text)
        for when in monthly:
            since = (when.replace(day=1) - timedelta(days=1)).replace(day=min(when.day, 28))
            text = index.text("月", when, since)
            self.recipients.fan_out(out, when, "digest-monthly", f"digest-monthly:{when:%Y-%m}",
                                    self.recipients.office, text)


class _DigestIndex:
    """The rows of 隐患整改进度通报 indexed once, so each of a year's ~64 digests costs a few
    bisections per unit instead of a pass over every hazard."""

    def __init__(self, rows, names: dict[int, str]) -> None:
        per_unit: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        self.states: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # accepted, rectifying (current)
        open_rows = []
        for r in rows:
            unit = names.get(r.department_id) or names.get(r.territorial_id) or "未分派"
            u = per_unit[unit]
            u["reported"].append(r.reported_at)
            if r.state == "accepted":
                self.states[unit][0] += 1
            elif r.state == "rectifying":
                self.states[unit][1] += 1
            if r.state in OPEN_STATES and r.deadline is not None:
                u["deadlines"].append(r.deadline)
                open_rows.append((r.deadline, r.code, unit, r.state))
            if r.state == "closed" and r.closed_at is not None:
                u["closed"].append(r.closed_at)
        for u in per_unit.values():
            for values in u.values():
                values.sort()
        self.per_unit = per_unit
        self.open_rows = sorted(open_rows)  # earliest deadline first = longest overdue first

    @staticmethod
    def _between(values: list, low, high) -> int:
        return bisect.bisect_left(values, high) - bisect.bisect_left(values, low)

    def text(self, period: str, when: datetime, since: datetime) -> str:
        today = when.date()
        counts = {}
        for unit, u in self.per_unit.items():
            accepted, rectifying = self.states[unit]
            counts[unit] = (
                self._between(u["reported"], since, when), accepted, rectifying,
                bisect.bisect_left(u["deadlines"], today), self._between(u["closed"], since, when),
            )
        lines = [f"【隐患整改进度通报·本{period}】截至 {when:%Y-%m-%d %H:%M}",
                 "单位：新增/已受理/整改中/逾期/本期销号"]
        for unit in sorted(counts, key=lambda u: (-counts[u][3], u)):
            n = counts[unit]
            if any(n):
                lines.append(f"{unit}：{n[0]}/{n[1]}/{n[2]}/{n[3]}/{n[4]}")
        if len(lines) == 2:
            lines.append("本期无隐患记录。")
        longest = [r for r in self.open_rows[:LONGEST_OVERDUE] if r[0] < today]
        if longest:
            lines.append("逾期最久：")
            lines += [f"{code}（{unit}，{label(state)}）逾期{(today - deadline).days}天"
                      for deadline, code, unit, state in longest]
        return "\n".join(lines)
