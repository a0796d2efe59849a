"""schedules.plan: which pushes are derived, when, to whom, under which idempotency key."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from bot.storage.db import session_factory
from schedules.calendar import HolidayCalendar
from schedules.plan import plan
from tests.schedule_world import DUTY_GROUP, OFFICE_GROUP, district, hazard, schedule_config, shift, supervision


@pytest.fixture
def session(db_engine):
    with session_factory(db_engine)() as s:
        yield s


@pytest.fixture
def config():
    return schedule_config()


def run(session, config, start, end):
    return plan(session, config, HolidayCalendar(config.schedules), start, end)


def by_key(pushes):
    return {p.key: p for p in pushes}


def test_national_day_2026_holiday_eve_duty_eve_and_mornings(session, config):
    d = district(session)
    shift(session, date(2026, 10, 1), d.leader, role="leader")
    shift(session, date(2026, 10, 1), d.staff)
    shift(session, date(2026, 10, 2), d.staff2, checked_in_at=datetime(2026, 10, 2, 7, 55))
    pushes = run(session, config, datetime(2026, 9, 26), datetime(2026, 10, 2, 23, 59))
    assert [p.time for p in pushes] == sorted(p.time for p in pushes)
    keys = by_key(pushes)

    eve = keys[f"holiday-eve:2026-10-01:{DUTY_GROUP}"]  # 3 days' lead
    assert eve.time == datetime(2026, 9, 28, 8, 0) and eve.kind == "holiday-eve"
    assert eve.recipient == f"group:{DUTY_GROUP}" and eve.target == DUTY_GROUP
    assert "节前安全提醒" in eve.text and "国庆节" in eve.text and "共7天" in eve.text
    assert "王领导（13900000001）" in eve.text and "李值班" in eve.text and "10月7日（周三）：未排班" in eve.text
    assert not any(k.startswith("holiday-eve:2026-09-25") for k in keys)  # 中秋's eve (9-22) is outside

    duty_eve = keys[f"duty-eve:2026-10-01:person:{d.staff.id}"]
    assert duty_eve.time == datetime(2026, 9, 30, 18, 0) and duty_eve.person_id == d.staff.id
    assert "国庆节" in duty_eve.text and "值班员" in duty_eve.text and "到岗" in duty_eve.text
    assert "带班领导" in keys[f"duty-eve:2026-10-01:person:{d.leader.id}"].text
    assert f"duty-eve:2026-10-02:person:{d.staff2.id}" in keys

    morning = keys[f"duty-morning:2026-10-01:{DUTY_GROUP}"]
    assert morning.time == datetime(2026, 10, 1, 8, 0) and "今日值班" in morning.text and "王领导" in morning.text
    assert f"duty-morning:2026-09-27:{DUTY_GROUP}" in keys  # 中秋 holiday morning
    assert f"duty-morning:2026-09-28:{DUTY_GROUP}" not in keys  # an ordinary workday


def test_special_period_morning(session, config):
    district(session)
    keys = by_key(run(session, config, datetime(2026, 11, 19), datetime(2026, 11, 23)))
    assert "森林防火期" in keys[f"duty-morning:2026-11-20:{DUTY_GROUP}"].text
    assert f"duty-morning:2026-11-23:{DUTY_GROUP}" not in keys


def test_checkin_escalates_to_leader_then_office_and_stops_after_checkin(session, config):
    d = district(session)
    shift(session, date(2026, 10, 1), d.leader, role="leader", checked_in_at=datetime(2026, 10, 1, 7, 50))
    late = shift(session, date(2026, 10, 1), d.staff)
    window = (datetime(2026, 10, 1), datetime(2026, 10, 1, 23, 59))
    escalations = [p for p in run(session, config, *window) if p.kind == "checkin-escalation"]
    assert [(p.time, p.recipient, p.key) for p in escalations] == [
        (datetime(2026, 10, 1, 9, 30), f"person:{d.leader.id}", f"checkin-late:2026-10-01:{late.id}:leader"),
        (datetime(2026, 10, 1, 10, 0), f"group:{OFFICE_GROUP}", f"checkin-late:2026-10-01:{late.id}:office"),
    ]
    assert "李值班" in escalations[0].text and "未确认到岗" in escalations[1].text

    late.checked_in_at = datetime(2026, 10, 1, 9, 40)  # 到岗
    session.flush()
    assert not [p for p in run(session, config, *window) if p.kind == "checkin-escalation"]


def test_hazard_nudges_before_on_and_after_deadline(session, config):
    d = district(session)
    h = hazard(session, "YH-20261101-0001", date(2026, 12, 1), d.owner, d.town)
    pushes = [p for p in run(session, config, datetime(2026, 11, 25), datetime(2026, 12, 5, 23, 0))
              if p.key.startswith(("nudge", "nudge-"))]
    keys = by_key(pushes)
    code = h.code
    for n, day in ((3, 28), (1, 30)):
        p = keys[f"nudge:{code}:2026-12-01:T-{n}"]
        assert p.time == datetime(2026, 11, day, 9, 0) and p.person_id == d.owner.id and f"还有{n}天" in p.text
    assert "今天到期" in keys[f"nudge:{code}:2026-12-01:T-0"].text
    # once overdue: one daily list per person (not one message per hazard per day)
    overdue = sorted(k for k in keys if k.startswith("nudge-overdue"))
    assert overdue == [f"nudge-overdue:person:{d.owner.id}:2026-12-0{n}" for n in range(2, 6)]
    assert all(code in keys[k].text for k in overdue)
    escalate = sorted(k for k in keys if k.startswith("nudge-escalate"))
    assert escalate == [f"nudge-escalate:person:{d.leader.id}:2026-12-0{n}" for n in (4, 5)]
    esc = keys[f"nudge-escalate:person:{d.leader.id}:2026-12-04"]
    assert esc.person_id == d.leader.id and "挂牌督办" in esc.text and "逾期3天" in esc.text and code in esc.text


def test_overdue_items_of_one_person_come_in_one_daily_message(session, config):
    d = district(session)
    for n in range(1, 6):
        hazard(session, f"YH-20261101-010{n}", date(2026, 12, n), d.owner, d.town)
    pushes = run(session, config, datetime(2026, 12, 10), datetime(2026, 12, 10, 23))
    overdue = [p for p in pushes if p.kind == "nudge-overdue"]
    assert len(overdue) == 1 and "等 5 项" in overdue[0].text
    assert "YH-20261101-0101" in overdue[0].text  # the longest-overdue items are listed first


@pytest.mark.parametrize("state", ["awaiting_acceptance", "closed", "rejected"])
def test_nudges_stop_when_rectified_or_closed(session, config, state):
    d = district(session)
    h = hazard(session, "YH-20261101-0002", date(2026, 12, 1), d.owner, d.town)
    window = (datetime(2026, 11, 25), datetime(2026, 12, 10))
    assert any(p.key.startswith(f"nudge:{h.code}") for p in run(session, config, *window))
    h.state = state
    session.flush()
    assert not [p for p in run(session, config, *window) if "nudge" in p.kind and h.code in p.key + p.text]


def test_moving_the_deadline_changes_the_keys(session, config):
    d = district(session)
    h = hazard(session, "YH-20261101-0003", date(2026, 12, 1), d.owner, d.town)
    window = (datetime(2026, 11, 25), datetime(2026, 12, 10))
    before = {p.key for p in run(session, config, *window) if h.code in p.key}
    h.deadline = date(2026, 12, 8)
    session.flush()
    moved = [p for p in run(session, config, *window) if h.code in p.key or h.code in p.text]
    after = {p.key for p in moved}
    assert f"nudge:{h.code}:2026-12-01:T-1" in before and f"nudge:{h.code}:2026-12-08:T-1" in after
    assert not any(":2026-12-01:" in k for k in after)
    assert not any(p.kind == "nudge-overdue" and p.time.date() <= date(2026, 12, 8) for p in moved)


def test_supervision_items_are_nudged_until_done(session, config):
    d = district(session)
    item = supervision(session, "DB-20261101-0001", date(2026, 12, 1), d.owner, d.town)
    window = (datetime(2026, 11, 28), datetime(2026, 12, 5, 12))
    keys = by_key(run(session, config, *window))
    assert keys[f"sv-nudge:{item.code}:2026-12-01:T-3"].person_id == d.owner.id
    assert "督办事项" in keys[f"sv-nudge:{item.code}:2026-12-01:T-0"].text
    assert item.code in keys[f"sv-nudge-overdue:person:{d.owner.id}:2026-12-02"].text
    assert keys[f"sv-nudge-escalate:person:{d.leader.id}:2026-12-04"].person_id == d.leader.id
    item.state = "done"
    session.flush()
    assert not [p for p in run(session, config, *window) if "nudge" in p.kind and item.code in p.key + p.text]


def test_weekly_and_monthly_digests(session, config):
    d = district(session)
    hazard(session, "YH-20261101-0004", date(2026, 11, 20), d.owner, d.town)  # overdue
    hazard(session, "YH-20261125-0005", date(2026, 12, 20), d.owner, d.town, state="accepted",
           reported_at=datetime(2026, 11, 25, 10))
    pushes = run(session, config, datetime(2026, 11, 23), datetime(2026, 12, 1, 23))
    keys = by_key(pushes)
    weekly = keys["digest-weekly:2026-11-27"]  # Friday 17:00
    assert weekly.time == datetime(2026, 11, 27, 17, 0) and weekly.recipient == f"group:{OFFICE_GROUP}"
    assert "隐患整改进度通报" in weekly.text and "城关街道：1/1/1/1/0" in weekly.text
    assert "YH-20261101-0004（城关街道，整改中）逾期7天" in weekly.text
    monthly = keys["digest-monthly:2026-12"]
    assert monthly.time == datetime(2026, 12, 1, 9, 0) and "本月" in monthly.text


def test_unknown_calendar_year_warns_once_and_keeps_duty_reminders(session, config):
    d = district(session)
    shift(session, date(2027, 1, 2), d.staff)
    pushes = run(session, config, datetime(2026, 12, 20), datetime(2027, 1, 10))
    warnings = [p for p in pushes if p.kind == "calendar-unknown"]
    assert [p.key for p in warnings] == ["calendar-unknown:2027"]
    assert warnings[0].recipient == f"group:{OFFICE_GROUP}" and "2027" in warnings[0].text
    assert f"duty-eve:2027-01-02:person:{d.staff.id}" in by_key(pushes)
    # without office groups the admins are told personally
    admin_config = schedule_config(office_groups=[])
    from bot.storage.models import Person

    admin = Person(name="管理员", phone="", roles="cadre,admin", active=True)
    session.add(admin)
    session.flush()
    warnings = [p for p in run(session, admin_config, datetime(2026, 12, 20), datetime(2027, 1, 10))
                if p.kind == "calendar-unknown"]
    assert [(p.key, p.person_id) for p in warnings] == [("calendar-unknown:2027", admin.id)]


def test_window_bounds_are_inclusive_and_empty_when_reversed(session, config):
    d = district(session)
    shift(session, date(2026, 10, 1), d.staff)
    at = datetime(2026, 9, 30, 18, 0)
    assert [p.key for p in run(session, config, at, at)] == [f"duty-eve:2026-10-01:person:{d.staff.id}"]
    assert run(session, config, at, datetime(2026, 9, 30)) == []


def test_json_line_is_the_same_object_as_as_json(session, config):
    import json

    d = district(session)
    hazard(session, "YH-20261101-0201", date(2026, 12, 1), d.owner, d.town)
    for p in run(session, config, datetime(2026, 11, 25), datetime(2026, 12, 8)):
        assert json.loads(p.json_line()) == p.as_json()
