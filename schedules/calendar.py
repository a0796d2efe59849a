"""The duty calendar: statutory holidays and 调休 make-up workdays (chinese-calendar), admin-entered
overrides for years the package does not know yet, and special duty periods (两会, 汛期 …).

A year that is neither in the package nor in the overrides is never guessed: every question about
it raises CalendarYearUnknown, whose message is a warning for the admins.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar

from bot.config import SchedulesSettings, SpecialPeriod

# chinese-calendar names its holidays in English
CHINESE_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}
# what people type -> the canonical name
NAME_ALIASES = {
    "元旦": "元旦", "春节": "春节", "过年": "春节", "清明": "清明节", "清明节": "清明节",
    "五一": "劳动节", "劳动节": "劳动节", "端午": "端午节", "端午节": "端午节",
    "中秋": "中秋节", "中秋节": "中秋节", "国庆": "国庆节", "国庆节": "国庆节", "十一": "国庆节",
}
WEEKDAYS = "一二三四五六日"
MAKEUP_WINDOW_DAYS = 30  # 调休 workdays lie within this many days of their holiday


class CalendarYearUnknown(Exception):
    """The holiday schedule of a year is unknown: neither chinese-calendar nor config has it."""

    def __init__(self, year: int) -> None:
        self.year = year
        super().__init__(
            f"{year} 年节假日安排尚未录入，无法判断节假日和调休。"
            f"请在 config.yaml 的 schedules.holidays 中补充 {year} 年的放假和调休日期"
            "（依据国务院办公厅放假通知），或升级 chinese-calendar。"
        )

    @property
    def warning(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Holiday:
    name: str  # 春节, 国庆节 …
    first_day: date
    last_day: date
    days: int
    makeup_workdays: tuple[date, ...] = ()

    def __contains__(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


def canonical_holiday(text: str) -> str | None:
    """'国庆' -> '国庆节'; None when the text names no holiday."""
    return NAME_ALIASES.get(text.strip())


def weekday_label(day: date) -> str:
    return "周" + WEEKDAYS[day.weekday()]


class HolidayCalendar:
    def __init__(self, settings: SchedulesSettings | None = None) -> None:
        settings = settings or SchedulesSettings()
        self._off: dict[date, str] = {}
        self._work: dict[date, str] = {}
        self._override_years: set[int] = set()
        for item in settings.holidays:
            for raw in item.days:
                day = date.fromisoformat(raw)
                self._off[day] = item.name
                self._override_years.add(day.year)
            for raw in item.workdays:
                day = date.fromisoformat(raw)
                self._work[day] = item.name
                self._override_years.add(day.year)
        self._periods: list[SpecialPeriod] = list(settings.special_periods)

    # ------------------------------------------------------------ year coverage

    def knows_year(self, year: int) -> bool:
        if year in self._override_years:
            return True
        try:
            chinese_calendar.get_holiday_detail(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def check_year(self, year: int) -> None:
        if not self.knows_year(year):
            raise CalendarYearUnknown(year)

    def warning_for(self, start: date, end: date) -> str | None:
        """The admins' warning when a year in [start, end] is unknown, else None."""
        for year in range(start.year, end.year + 1):
            if not self.knows_year(year):
                return CalendarYearUnknown(year).warning
        return None

    # ------------------------------------------------------------ one day

    def _detail(self, day: date) -> tuple[bool, str | None]:
        """(is_workday, statutory holiday name or None) for one day."""
        if day in self._off:
            return False, self._off[day]
        if day in self._work:
            return True, None
        if day.year in self._override_years:
            return day.weekday() < 5, None
        try:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            raise CalendarYearUnknown(day.year) from None
        if on_holiday:
            return False, CHINESE_NAMES.get(name, name) if name else None
        return True, None

    def is_workday(self, day: date) -> bool:
        return self._detail(day)[0]

    def is_off_day(self, day: date) -> bool:
        """A weekend or a statutory holiday, 调休 workdays excluded."""
        return not self._detail(day)[0]

    def is_holiday(self, day: date) -> bool:
        """A statutory holiday off-day (including weekend days inside the holiday block)."""
        return self.holiday_name(day) is not None

    def holiday_name(self, day: date) -> str | None:
        return self._detail(day)[1]

    def makeup_name(self, day: date) -> str | None:
        """The holiday a 调休 make-up workday belongs to, else None."""
        if day in self._work:
            return self._work[day]
        if day.year in self._override_years:
            return None
        try:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            raise CalendarYearUnknown(day.year) from None
        if not on_holiday and name and day.weekday() >= 5:
            return CHINESE_NAMES.get(name, name)
        return None

    def next_workday(self, day: date) -> date:
        """The first workday on or after day (CalendarYearUnknown past the known years)."""
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    # ------------------------------------------------------------ holidays

    def holidays_between(self, start: date, end: date) -> list[Holiday]:
        """Statutory holidays overlapping [start, end], each with its whole block of off-days."""
        self.check_year(start.year)
        self.check_year(end.year)
        blocks: list[list] = []  # [name, first, last]
        day = start - timedelta(days=15)
        stop = end + timedelta(days=15)
        while day <= stop:
            try:
                name = self.holiday_name(day)
            except CalendarYearUnknown:
                name = None  # the margins may reach into an unknown year
            if name:
                if blocks and blocks[-1][0] == name and blocks[-1][2] == day - timedelta(days=1):
                    blocks[-1][2] = day
                else:
                    blocks.append([name, day, day])
            day += timedelta(days=1)
        found = []
        for name, first, last in blocks:
            if last < start or first > end:
                continue
            found.append(Holiday(name=name, first_day=first, last_day=last, days=(last - first).days + 1,
                                 makeup_workdays=self._makeups(name, first, last)))
        return found

    def _makeups(self, name: str, first: date, last: date) -> tuple[date, ...]:
        days = []
        day = first - timedelta(days=MAKEUP_WINDOW_DAYS)
        while day <= last + timedelta(days=MAKEUP_WINDOW_DAYS):
            try:
                if self.makeup_name(day) == name:
                    days.append(day)
            except CalendarYearUnknown:
                pass
            day += timedelta(days=1)
        return tuple(days)

    def holiday_of(self, day: date) -> Holiday | None:
        """The statutory holiday block containing day, if any."""
        if not self.is_holiday(day):
            return None
        return next((h for h in self.holidays_between(day, day) if day in h), None)

    def find_holiday(self, name: str, today: date, horizon_days: int = 400) -> Holiday | None:
        """The holiday called name (or an alias) in progress on today or the next one after it."""
        canonical = canonical_holiday(name) or name
        end = today + timedelta(days=horizon_days)
        for year in range(today.year, end.year + 1):
            self.check_year(year)
            lo, hi = max(today, date(year, 1, 1)), min(end, date(year, 12, 31))
            for holiday in self.holidays_between(lo, hi):
                if holiday.name == canonical and holiday.last_day >= today:
                    return holiday
        return None

    # ------------------------------------------------------------ special periods

    def special_periods(self, day: date) -> list[SpecialPeriod]:
        iso = day.isoformat()
        return [p for p in self._periods if p.start <= iso <= p.end]

    def special_period(self, day: date) -> SpecialPeriod | None:
        periods = self.special_periods(day)
        return periods[0] if periods else None

    def day_label(self, day: date) -> str:
        """'10月1日（周四·国庆节）' for messages; never raises for an unknown year."""
        tags = [weekday_label(day)]
        try:
            name = self.holiday_name(day)
            if name:
                tags.append(name)
            elif self.makeup_name(day):
                tags.append("调休上班")
        except CalendarYearUnknown:
            pass
        tags += [p.name for p in self.special_periods(day)]
        return f"{day.month}月{day.day}日（{'·'.join(tags)}）"
