"""Duty rosters in chat (/duty, 今天谁值班, 国庆谁带班, /swap, 到岗) and the `safeduty roster` CLI."""
from __future__ import annotations

import csv
from datetime import date, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.router import route
from bot.storage.db import transaction
from bot.storage.models import DutyShift, Outbox
from schedules.calendar import HolidayCalendar
from schedules.roster import import_roster
from tests.conftest import make_incoming
from tests.ledger_world import build_world

ROWS = [["日期", "带班领导", "值班员"],
        ["11月22日", "钱领导", "赵干部"],
        ["11月23日", "王安委", "孙干部"],
        ["10月1日-10月7日", "钱领导", "李网格"]]


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


@pytest.fixture
def duty_world(ledger_services, tmp_path):
    with transaction(ledger_services.db) as session:
        world = build_world(session, ledger_services.clock())
        report = import_roster(session, write_csv(tmp_path / "2026值班表.csv", ROWS), ledger_services.clock(),
                               HolidayCalendar())
        assert report.saved, report.text()
        return {"admin": world.admin.id, "cadre": world.cadre_a.id, "grid": world.grid.id}


def say(services, text, user="cadre-a"):
    return "\n".join(r.text for r in route(make_incoming(text, user=user), services))


def test_who_is_on_duty_today_and_tomorrow(ledger_services, duty_world):
    today = say(ledger_services, "今天谁值班")
    assert "11月22日（周日）" in today and "钱领导" in today and "赵干部" in today
    tomorrow = say(ledger_services, "明天谁值班？")
    assert "11月23日" in tomorrow and "孙干部" in tomorrow and "赵干部" not in tomorrow
    assert "孙干部" in say(ledger_services, "/duty 2026-11-23")
    assert "孙干部" in say(ledger_services, "/duty 11月23日")
    assert "钱领导" in say(ledger_services, "/duty")
    assert "没有值班安排" in say(ledger_services, "/duty 11月25日")
    assert "无法识别" in say(ledger_services, "/duty 下个月")


def test_holiday_questions(ledger_services, duty_world, clock):
    # on 2026-11-22 this year's 国庆 is over and 2027 is not in the calendar: a warning, no guess
    answer = say(ledger_services, "国庆谁带班")
    assert "2027 年节假日安排尚未录入" in answer
    clock.now = datetime(2026, 9, 28, 10, 0)
    answer = say(ledger_services, "国庆谁带班")
    assert "10月1日（周四·国庆节）" in answer and "10月7日" in answer and "钱领导" in answer
    assert "李网格" not in answer  # 带班 asks for the leaders only
    assert "李网格" in say(ledger_services, "/duty 国庆")


def test_lookups_are_for_staff_only(ledger_services, duty_world):
    assert "绑定" in say(ledger_services, "今天谁值班", user="stranger")
    assert "仅供工作人员" in say(ledger_services, "/duty", user="citizen-bound")


def test_unrelated_text_is_not_intercepted(ledger_services, duty_world):
    from handlers import duty

    for text in ("值班制度有哪些规定", "谁负责值班管理", "今天谁值班表怎么填"):
        assert duty.intercept(make_incoming(text), ledger_services) is None


def test_swap_by_admin_tells_both(ledger_services, duty_world):
    assert "管理员" in say(ledger_services, "/swap 11月23日 孙干部 李网格")  # a cadre may not
    answer = say(ledger_services, "/swap 11月23日 孙干部 李网格", user="admin-1")
    assert "孙干部 → 李网格" in answer and "已通知双方" in answer
    assert "没有值班安排" in say(ledger_services, "/swap 11月23日 孙干部 李网格", user="admin-1")
    assert "用法" in say(ledger_services, "/swap 11月23日", user="admin-1")
    with ledger_services.db() as session:
        texts = session.scalars(select(Outbox.text)).all()
        shift = session.scalar(select(DutyShift).where(DutyShift.day == date(2026, 11, 23),
                                                       DutyShift.role == "staff"))
    assert len(texts) == 2 and shift.person_id == duty_world["grid"]


def test_check_in(ledger_services, duty_world, clock):
    assert "已登记到岗（09:00）" in say(ledger_services, "到岗")
    clock.advance(minutes=5)
    assert "已于 09:00 登记到岗" in say(ledger_services, "/checkin")
    assert "没有值班安排" in say(ledger_services, "到岗", user="cadre-b")
    assert "绑定" in say(ledger_services, "到岗", user="stranger")
    with ledger_services.db() as session:
        shift = session.scalar(select(DutyShift).where(DutyShift.person_id == duty_world["cadre"]))
    assert shift.checked_in_at == datetime(2026, 11, 22, 9, 0)


# ---------------------------------------------------------------- CLI

@pytest.fixture
def cli(tmp_path, lexical_config_file):
    def invoke(*args):
        argv = [*args, "--data-dir", str(tmp_path / "data"), "--config", str(lexical_config_file)]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    return invoke


def test_roster_cli(cli, tmp_path):
    assert cli("units", "add", "--name", "测试值班室", "--kind", "office").exit_code == 0
    for name, roles in (("钱领导", "leader"), ("赵干部", "cadre")):
        assert cli("people", "add", "--name", name, "--unit", "测试值班室", "--roles", roles).exit_code == 0
    bad = write_csv(tmp_path / "2026坏.csv", [["日期", "带班领导", "值班员"], ["10月1日", "钱领导", "无此人"]])
    result = cli("roster", "import", str(bad))
    assert result.exit_code == 1 and "无此人" in result.output and "未保存任何数据" in result.output
    good = write_csv(tmp_path / "2026好.csv", [["日期", "带班领导", "值班员"], ["11月21日", "钱领导", "赵干部"]])
    result = cli("roster", "import", str(good))
    assert result.exit_code == 0 and "已保存" in result.output
    shown = cli("roster", "show", "--from", "2026-11-21", "--to", "2026-11-22").output
    assert "11月21日（周六）" in shown and "赵干部" in shown
    result = cli("roster", "import", str(tmp_path / "x.xls"))
    assert result.exit_code != 0 and ".xlsx" in result.output
