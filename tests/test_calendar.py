"""The duty calendar with real 2026 dates, a config override year and an unknown year."""
from __future__ import annotations

from datetime import date

import pytest

from bot.config import HolidayOverride, SchedulesSettings, SpecialPeriod
from schedules.calendar import CalendarYearUnknown, HolidayCalendar


@pytest.fixture
def cal() -> HolidayCalendar:
    return HolidayCalendar(SchedulesSettings())


def test_spring_festival_2026_with_makeup_workdays(cal):
    assert cal.is_workday(date(2026, 2, 13))
    assert cal.is_workday(date(2026, 2, 14))  # Saturday, 调休
    assert cal.is_workday(date(2026, 2, 28))  # Saturday, 调休
    for d in range(15, 24):
        day = date(2026, 2, d)
        assert cal.is_holiday(day) and not cal.is_workday(day)
        assert cal.holiday_name(day) == "春节"
    assert cal.is_workday(date(2026, 2, 24))
    [spring] = cal.holidays_between(date(2026, 2, 1), date(2026, 2, 28))
    assert (spring.name, spring.first_day, spring.last_day, spring.days) == ("春节", date(2026, 2, 15), date(2026, 2, 23), 9)
    assert spring.makeup_workdays == (date(2026, 2, 14), date(2026, 2, 28))
    assert cal.makeup_name(date(2026, 2, 14)) == "春节"
    assert cal.day_label(date(2026, 2, 14)) == "2月14日（周六·调休上班）"


def test_national_day_2026(cal):
    [national] = cal.holidays_between(date(2026, 10, 3), date(2026, 10, 3))  # whole block although asked one day
    assert (national.name, national.first_day, national.last_day) == ("国庆节", date(2026, 10, 1), date(2026, 10, 7))
    assert date(2026, 10, 10) in national.makeup_workdays and cal.is_workday(date(2026, 10, 10))
    assert cal.holiday_name(date(2026, 10, 8)) is None and cal.is_workday(date(2026, 10, 8))
    assert cal.find_holiday("国庆", date(2026, 9, 1)) == national
    assert cal.find_holiday("国庆节", date(2026, 10, 5)) == national  # in progress
    names = [h.name for h in cal.holidays_between(date(2026, 1, 1), date(2026, 12, 31))]
    assert names == ["元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"]


def test_weekend_is_off_but_not_a_holiday(cal):
    saturday = date(2026, 11, 21)
    assert cal.is_off_day(saturday) and not cal.is_workday(saturday)
    assert not cal.is_holiday(saturday) and cal.holiday_name(saturday) is None


def test_override_year_2027():
    settings = SchedulesSettings(holidays=[
        HolidayOverride(name="元旦", days=["2027-01-01", "2027-01-02", "2027-01-03"]),
        HolidayOverride(name="国庆节", days=[f"2027-10-0{d}" for d in range(1, 8)], workdays=["2027-09-26", "2027-10-09"]),
    ])
    cal = HolidayCalendar(settings)
    assert cal.knows_year(2027)
    assert cal.is_holiday(date(2027, 10, 3)) and cal.holiday_name(date(2027, 10, 3)) == "国庆节"
    assert cal.is_workday(date(2027, 10, 9))  # Saturday 调休
    assert not cal.is_workday(date(2027, 10, 16))  # an ordinary Saturday
    assert cal.is_workday(date(2027, 10, 11))
    [national] = cal.holidays_between(date(2027, 10, 1), date(2027, 10, 31))
    assert national.days == 7 and national.makeup_workdays == (date(2027, 9, 26), date(2027, 10, 9))
    # a holiday search from late 2026 runs into 2027 and finds the entered 元旦
    assert cal.find_holiday("元旦", date(2026, 11, 22)).first_day == date(2027, 1, 1)
    assert cal.warning_for(date(2026, 12, 1), date(2027, 1, 31)) is None


def test_unknown_year_warns_never_guesses(cal):
    with pytest.raises(CalendarYearUnknown) as exc:
        cal.is_workday(date(2027, 1, 1))
    assert exc.value.year == 2027
    assert "2027 年节假日安排尚未录入" in str(exc.value) and "schedules.holidays" in exc.value.warning
    with pytest.raises(CalendarYearUnknown):
        cal.holidays_between(date(2026, 12, 1), date(2027, 1, 31))
    with pytest.raises(CalendarYearUnknown):
        cal.find_holiday("春节", date(2026, 11, 22))  # 2026's is past, 2027's is not known
    with pytest.raises(CalendarYearUnknown):
        cal.next_workday(date(2027, 1, 2))
    assert "2027" in cal.warning_for(date(2026, 12, 1), date(2027, 1, 31))
    assert cal.day_label(date(2027, 1, 1)) == "1月1日（周五）"  # labels never raise


def test_special_periods():
    cal = HolidayCalendar(SchedulesSettings(special_periods=[
        SpecialPeriod(name="汛期", start="2026-06-01", end="2026-09-30"),
        SpecialPeriod(name="森林防火期", start="2026-09-15", end="2027-04-30"),
    ]))
    assert cal.special_period(date(2026, 5, 31)) is None
    assert cal.special_period(date(2026, 6, 1)).name == "汛期"
    assert [p.name for p in cal.special_periods(date(2026, 9, 20))] == ["汛期", "森林防火期"]
    assert cal.special_period(date(2026, 9, 30)).name == "汛期"
    assert cal.special_period(date(2026, 10, 1)).name == "森林防火期"
    assert "国庆节·森林防火期" in cal.day_label(date(2026, 10, 1))
