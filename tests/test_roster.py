"""Roster import: xlsx/csv with merged cells, Chinese dates, full-width digits, blank rows; the
validation report (nothing saved on errors); look-ups, swaps and check-in."""
from __future__ import annotations

import csv
from datetime import date, datetime

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from bot.storage.db import session_factory, transaction
from bot.storage.models import DutyShift, Outbox
from schedules.calendar import HolidayCalendar
from schedules.roster import (RosterError, RosterFileError, check_in, import_roster, on_duty, roster_show,
                              shifts_between, swap)
from tests.ledger_world import build_world

NOW = datetime(2026, 9, 20, 10, 0)
HEADER = ["日期", "带班领导", "联系电话", "值班员", "联系电话", "班次"]


@pytest.fixture
def factory(db_engine):
    return session_factory(db_engine)


@pytest.fixture
def world(factory):
    with transaction(factory) as session:
        w = build_world(session, NOW)
        return {name: getattr(w, name).id for name in ("admin", "cadre_a", "leader_a", "town_cadre", "cadre_b", "grid")}


def national_day_xlsx(path):
    wb = Workbook()
    ws = wb.active
    ws.append(["２０２６年国庆节值班表"])
    ws.merge_cells("A1:F1")
    ws.append(HEADER)
    ws.append(["10月1日", "钱领导", "13900000001", "赵干部", "13900000002", "08:30-次日08:30"])
    ws.append([None, None, None, "孙干部", None, None])
    ws.merge_cells("A3:A4")  # one date over two rows
    ws.append([])  # a blank row
    ws.append(["１０月２日", "钱领导", None, "赵干部、孙干部", None, None])  # full-width digits, two staff
    ws.append(["2026年10月3日", "钱领导", None, "周干部", None, ""])
    ws.append(["10月4日-10月7日", "王安委", None, "李网格", None, "８:３０－次日８:３０"])
    wb.save(path)
    return path


def write_csv(path, rows, encoding="utf-8-sig"):
    with open(path, "w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def count(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count(DutyShift.id)))


def run(factory, path, **kw):
    with transaction(factory) as session:
        return import_roster(session, path, NOW, HolidayCalendar(), **kw)


def test_national_day_xlsx_imports(factory, world, tmp_path):
    report = run(factory, national_day_xlsx(tmp_path / "国庆值班表.xlsx"))
    assert report.ok and report.saved, report.text()
    assert (report.first_day, report.last_day) == (date(2026, 10, 1), date(2026, 10, 7))
    assert count(factory) == 3 + 3 + 2 + 2 * 4
    with factory() as session:
        first = shifts_between(session, date(2026, 10, 1), date(2026, 10, 1))
        assert [(s.role, s.person_id) for s in first] == [
            ("leader", world["leader_a"]), ("staff", world["cadre_a"]), ("staff", world["town_cadre"])]
        assert first[0].phone == "13900000001" and first[1].phone == "13900000002"
        assert first[2].phone == "13800001234"  # from the people list
        assert first[0].starts_at == datetime(2026, 10, 1, 8, 30) and first[0].ends_at == datetime(2026, 10, 2, 8, 30)
        duty = on_duty(session, datetime(2026, 10, 2, 8, 0))  # the 10-01 shift still runs
        assert [s.person_id for s in duty.leaders] == [world["leader_a"]] and len(duty.staff) == 2
        duty = on_duty(session, datetime(2026, 10, 5, 12, 0))
        assert [s.person_id for s in duty.leaders] == [world["admin"]]
        assert [s.person_id for s in duty.staff] == [world["grid"]]
        assert not on_duty(session, datetime(2026, 10, 9, 12, 0))
        text = roster_show(session, date(2026, 10, 1), date(2026, 10, 2))
    assert "10月1日（周四·国庆节）" in text and "钱领导 13900000001" in text and "孙干部" in text


def test_reimport_replaces_same_days(factory, world, tmp_path):
    run(factory, national_day_xlsx(tmp_path / "a.xlsx"))
    path = write_csv(tmp_path / "2026国庆调整.csv", [["日期", "带班领导", "值班员"], ["10月3日", "王安委", "赵干部"]])
    report = run(factory, path)
    assert report.ok and report.saved, report.text()
    with factory() as session:
        third = shifts_between(session, date(2026, 10, 3), date(2026, 10, 3))
        assert sorted(s.person_id for s in third) == sorted([world["admin"], world["cadre_a"]])
    assert count(factory) == 16  # 10-03 had 2, still 2


def test_unknown_names_block_everything(factory, world, tmp_path):
    path = write_csv(tmp_path / "值班表.csv", [["值班日期", "带班领导", "值班人员"],
                                               ["2026-10-01", "钱领导", "张无名"], ["2026-10-02", "钱领导", "赵干部"]])
    report = run(factory, path)
    assert not report.ok and not report.saved
    assert any("张无名" in e and "第 2 行" in e for e in report.errors)
    assert "未保存任何数据" in report.text()
    assert count(factory) == 0


def test_holiday_gaps_and_missing_leader_are_errors(factory, world, tmp_path):
    path = write_csv(tmp_path / "x.csv", [["日期", "带班领导", "值班员"],
                                          ["2026.10.1", "", "赵干部"], ["2026.10.3", "钱领导", "孙干部"]])
    report = run(factory, path)
    assert any("10月1日" in e and "没有带班领导" in e for e in report.errors), report.errors
    assert any("10月2日" in e and "没有安排任何人值班" in e for e in report.errors), report.errors
    assert count(factory) == 0


def test_weekend_gap_is_a_warning_and_gbk_csv(factory, world, tmp_path):
    path = write_csv(tmp_path / "2026年11月值班表.csv",
                     [["日期", "值班员", "电话"], ["11.20", "赵干部", "13911112222"], ["", "孙干部", ""],
                      [], ["11.23", "周干部", ""]], encoding="gbk")
    report = run(factory, path)
    assert report.ok and report.saved, report.text()
    assert any("11月21日" in w for w in report.warnings) and any("11月22日" in w for w in report.warnings)
    with factory() as session:
        rows = shifts_between(session, date(2026, 11, 20), date(2026, 11, 20))
    assert len(rows) == 2 and rows[0].phone == "13911112222"  # blank date continues the row above


def test_double_booking_is_an_error(factory, world, tmp_path):
    path = write_csv(tmp_path / "2026.csv", [["日期", "带班领导", "值班员", "值班时间"],
                                             ["10月1日", "钱领导", "赵干部", "08:30-次日08:30"],
                                             ["10月1日", "", "赵干部", "20:00-23:00"]])
    report = run(factory, path)
    assert any("赵干部" in e and "重叠" in e for e in report.errors), report.errors
    assert count(factory) == 0


def test_bad_dates_and_shifts_are_reported(factory, world, tmp_path):
    path = write_csv(tmp_path / "2026.csv", [["日期", "带班领导", "值班员", "班次"],
                                             ["十月一日", "钱领导", "赵干部", ""], ["10月2日", "钱领导", "赵干部", "白天"]])
    report = run(factory, path)
    assert any("十月一日" in e for e in report.errors) and any("白天" in e for e in report.errors)


@pytest.mark.parametrize("name,content,message", [
    ("旧表.xls", b"\xd0\xcf\x11\xe0 old", "另存为"),
    ("空.csv", b"", "空文件"),
    ("空.xlsx", None, "没有任何内容"),
    ("表头.csv", "日期,带班领导,值班员\n".encode(), "没有任何值班安排"),
    ("无表头.csv", "a,b\n1,2\n".encode(), "没有找到表头"),
    ("假.xlsx", b"not a zip", "不是有效的 .xlsx"),
])
def test_unreadable_files(factory, world, tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        Workbook().save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(RosterFileError, match=message):
        run(factory, path)


def test_swap_tells_both_and_is_admin_only(factory, world, tmp_path):
    run(factory, national_day_xlsx(tmp_path / "a.xlsx"))
    from bot.storage.models import Person

    with transaction(factory) as session:
        admin, cadre, grid = (session.get(Person, world[k]) for k in ("admin", "cadre_a", "grid"))
        with pytest.raises(RosterError, match="管理员"):
            swap(session, date(2026, 10, 1), cadre, grid, cadre, NOW)
        with pytest.raises(RosterError, match="没有值班安排"):
            swap(session, date(2026, 10, 1), grid, cadre, admin, NOW)
        moved = swap(session, date(2026, 10, 1), cadre, grid, admin, NOW)
        assert len(moved) == 1 and moved[0].person_id == grid.id
    with factory() as session:
        pushes = session.scalars(select(Outbox).order_by(Outbox.id)).all()
    keys = {p.idempotency_key: p for p in pushes}
    key = f"duty-swap:2026-10-01:{world['cadre_a']}->{world['grid']}"
    assert set(keys) == {f"{key}:person:{world['grid']}", f"{key}:person:{world['cadre_a']}"}
    assert "接替 赵干部" in keys[f"{key}:person:{world['grid']}"].text


def test_check_in_idempotent(factory, world, tmp_path):
    run(factory, national_day_xlsx(tmp_path / "a.xlsx"))
    from bot.storage.models import Person

    with transaction(factory) as session:
        cadre = session.get(Person, world["cadre_a"])
        shift, already = check_in(session, cadre, datetime(2026, 10, 1, 8, 20))
        assert shift.day == date(2026, 10, 1) and not already
        shift, already = check_in(session, cadre, datetime(2026, 10, 1, 9, 0))
        assert already and shift.checked_in_at == datetime(2026, 10, 1, 8, 20)
        assert check_in(session, session.get(Person, world["cadre_b"]), datetime(2026, 10, 1, 9, 0)) is None
