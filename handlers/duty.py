"""Duty rosters in chat: /duty [日期|节日], "今天谁值班" / "国庆谁带班", /swap (admins), and 到岗 check-in.

Rosters carry phone numbers, so look-ups are for bound staff only.
"""
from __future__ import annotations

import re
from datetime import date, timedelta

from bot.ledger.people import PeopleError, find_person, is_staff, person_for
from bot.storage.db import transaction
from bot.types import Incoming, Reply
from handlers.ledger_text import BIND_HINT, STAFF_ONLY
from schedules.calendar import NAME_ALIASES, CalendarYearUnknown, HolidayCalendar
from schedules.roster import RosterError, check_in, roster_show, swap
from schedules.roster_read import normalise, parse_dates

NO_DB = "值班表功能未启用。"
RELATIVE = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "昨天": -1}
_HOLIDAY_WORDS = "|".join(sorted(NAME_ALIASES, key=len, reverse=True))
_QUESTION = re.compile(
    rf"^(?P<when>今天|今日|明天|明日|后天|昨天|{_HOLIDAY_WORDS}|\d{{1,2}}月\d{{1,2}}[日号]?)?(?:期间)?"
    r"(?:是)?(?:谁|哪位领导|哪些人)(?:在)?(?P<what>值班|带班)(?:呀|呢|啊|吗)?[?？。!！]*$")
CHECKIN_WORDS = ("到岗", "已到岗", "我已到岗", "签到")


def _calendar(services) -> HolidayCalendar:
    return HolidayCalendar(services.config.schedules)


def _staff(session, incoming: Incoming):
    person = person_for(session, incoming.channel, incoming.user)
    if person is None:
        return BIND_HINT
    if not is_staff(person):
        return "值班表仅供工作人员查看。" + STAFF_ONLY[len("该命令仅供网格员、干部和安委办使用。"):]
    return person


def resolve_days(text: str, today: date, calendar: HolidayCalendar) -> tuple[date, date, str]:
    """'' / 今天 / 明天 / 2026-10-01 / 10月1日 / 国庆 -> (first, last, title). ValueError with a Chinese
    message when unreadable; CalendarYearUnknown for a holiday in a year not yet entered."""
    text = normalise(text)
    if not text or text in RELATIVE:
        day = today + timedelta(days=RELATIVE.get(text, 0))
        return day, day, text or "今天"
    if text in NAME_ALIASES:
        holiday = calendar.find_holiday(text, today)
        if holiday is None:
            raise ValueError(f"一年内没有找到{NAME_ALIASES[text]}假期。")
        return holiday.first_day, holiday.last_day, f"{holiday.first_day.year}年{holiday.name}"
    try:
        first, last = parse_dates(text, today.year)
    except ValueError:
        raise ValueError(f"日期「{text}」无法识别。可写：/duty、/duty 明天、/duty 2026-10-01、/duty 10月1日、/duty 国庆") from None
    return first, last, ""


def _show(incoming: Incoming, services, when: str, leaders_only: bool = False) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    calendar = _calendar(services)
    today = services.clock().date()
    try:
        first, last, _ = resolve_days(when, today, calendar)
    except CalendarYearUnknown as exc:
        return [Reply(f"暂时无法查询：{exc}")]
    except ValueError as exc:
        return [Reply(str(exc))]
    with transaction(services.db) as session:
        person = _staff(session, incoming)
        if isinstance(person, str):
            return [Reply(person)]
        text = roster_show(session, first, last, calendar)
    if leaders_only:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("  值班员"))
    return [Reply(text)]


def duty(incoming: Incoming, services, args: str) -> list[Reply]:
    return _show(incoming, services, args)


def swap_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    parts = args.split()
    if len(parts) != 3:
        return [Reply("用法：/swap 日期 原值班人 新值班人，例如 /swap 10月1日 张三 李四")]
    now = services.clock()
    try:
        day, _, _ = resolve_days(parts[0], now.date(), _calendar(services))
    except (ValueError, CalendarYearUnknown) as exc:
        return [Reply(str(exc))]
    with transaction(services.db) as session:
        actor = _staff(session, incoming)
        if isinstance(actor, str):
            return [Reply(actor)]
        if not actor.has_role("admin"):
            return [Reply("只有安委办管理员可以调整值班。")]
        try:
            out_person, in_person = find_person(session, parts[1]), find_person(session, parts[2])
            moved = swap(session, day, out_person, in_person, actor, now)
        except (PeopleError, RosterError) as exc:
            return [Reply(str(exc))]
        return [Reply(f"已调整：{day.month}月{day.day}日 {out_person.name} → {in_person.name}（{len(moved)} 个班次），"
                      "已通知双方。")]


def checkin(incoming: Incoming, services, args: str = "") -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    now = services.clock()
    with transaction(services.db) as session:
        person = person_for(session, incoming.channel, incoming.user)
        if person is None:
            return [Reply("没有识别出您的身份，无法登记到岗。" + BIND_HINT)]
        result = check_in(session, person, now)
        if result is None:
            return [Reply(f"{person.name}，您今天没有值班安排，无需登记到岗。如有调整请联系安委办。")]
        shift, already = result
        if already:
            return [Reply(f"您已于 {shift.checked_in_at:%H:%M} 登记到岗，无需重复登记。")]
        return [Reply(f"已登记到岗（{now:%H:%M}）。{person.name}，值班辛苦了！")]


def intercept(incoming: Incoming, services) -> list[Reply] | None:
    """'今天谁值班', '国庆谁带班', '到岗': answered here; anything else -> None."""
    if services.db is None:
        return None
    text = re.sub(r"\s+", "", normalise(incoming.text or ""))
    if text in CHECKIN_WORDS:
        return checkin(incoming, services)
    m = _QUESTION.match(text)
    if m is None:
        return None
    return _show(incoming, services, m["when"] or "", leaders_only=m["what"] == "带班")


COMMANDS = {"duty": duty, "swap": swap_command, "checkin": checkin}
