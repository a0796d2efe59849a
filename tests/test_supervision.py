"""督办事项: /sv add / list / done through the router, permissions, idempotent done, xlsx import
(all-or-nothing), and `safeduty supervision list`."""
from __future__ import annotations

import json
from datetime import date, datetime

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.ledger import supervision as sv
from bot.ledger.listing import LedgerError
from bot.router import route
from bot.storage.db import database_url, make_engine, session_factory, transaction, upgrade
from bot.storage.models import Outbox, SupervisionItem
from tests.conftest import make_incoming
from tests.ledger_world import build_world


@pytest.fixture
def world(ledger_services, clock):
    with transaction(ledger_services.db) as s:
        w = build_world(s, clock())
    return w


def say(services, user: str, text: str) -> str:
    return "\n".join(r.text for r in route(make_incoming(text, user=user), services))


def items(services) -> list[SupervisionItem]:
    with services.db() as s:
        return list(s.scalars(select(SupervisionItem).order_by(SupervisionItem.code)))


def test_admin_creates_owner_is_told_lists_and_finishes(ledger_services, world, clock):
    text = say(ledger_services, "admin-1", "/sv add 排查沿街商铺消防通道 负责人=赵干部 时限=2026-12-10")
    assert "DB-20261122-0001" in text and "赵干部" in text
    [item] = items(ledger_services)
    assert (item.owner_id, item.deadline, item.state, item.created_by) == (
        world.cadre_a.id, date(2026, 12, 10), "open", world.admin.id)
    assert item.unit_id == world.dept_a.id
    with ledger_services.db() as s:
        push = s.scalar(select(Outbox).where(Outbox.idempotency_key == f"sv-new:DB-20261122-0001:person:{world.cadre_a.id}"))
        assert push is not None and push.person_id == world.cadre_a.id and "排查沿街商铺消防通道" in push.text

    mine = say(ledger_services, "cadre-a", "/sv")
    assert "DB-20261122-0001" in mine and "剩" not in mine
    assert "DB-20261122-0001" in say(ledger_services, "admin-1", "/sv list")  # admins: all open
    assert "暂无" in say(ledger_services, "cadre-b", "/sv list")

    clock.advance(days=1)
    assert "已办结" in say(ledger_services, "cadre-a", "/sv done db-20261122-0001 已全部排查")
    [item] = items(ledger_services)
    assert item.state == "done" and item.done_at == datetime(2026, 11, 23, 9) and item.note == "已全部排查"
    again = say(ledger_services, "cadre-a", "/sv done DB-20261122-0001")
    assert "无需重复" in again
    assert items(ledger_services)[0].note == "已全部排查"
    assert "暂无" in say(ledger_services, "cadre-a", "/sv")
    with ledger_services.db() as s:  # the creator hears about it once
        assert s.scalar(select(Outbox).where(Outbox.idempotency_key.like("sv-done:%"))).person_id == world.admin.id


def test_codes_are_sequential_per_day(ledger_services, world, clock):
    say(ledger_services, "leader-a", "/sv add 事项一 负责人=赵干部 时限=15天")
    say(ledger_services, "leader-a", "/sv add 事项二 责任人=李网格 时限=2026年12月1日 单位=幸福社区")
    clock.advance(days=1)
    say(ledger_services, "admin-1", "/sv add 事项三 负责人=赵干部 时限=12-20")
    got = [(i.code, i.task, i.deadline) for i in items(ledger_services)]
    assert got == [("DB-20261122-0001", "事项一", date(2026, 12, 7)),
                   ("DB-20261122-0002", "事项二", date(2026, 12, 1)),
                   ("DB-20261123-0001", "事项三", date(2026, 12, 20))]


def test_code_clash_is_retried(ledger_services, world, clock, monkeypatch):
    say(ledger_services, "admin-1", "/sv add 事项一 负责人=赵干部 时限=2026-12-10")
    real, calls = sv.next_code, []

    def stale(session, day):  # the first attempt sees a code another writer has just taken
        calls.append(day)
        return "DB-20261122-0001" if len(calls) == 1 else real(session, day)

    monkeypatch.setattr(sv, "next_code", stale)
    assert "DB-20261122-0002" in say(ledger_services, "admin-1", "/sv add 事项二 负责人=赵干部 时限=2026-12-10")
    assert len(calls) == 2 and len(items(ledger_services)) == 2


@pytest.mark.parametrize("user,text,expected", [
    ("cadre-a", "/sv add 事项 负责人=李网格 时限=2026-12-10", "只有安委办管理员和领导"),
    ("citizen-bound", "/sv add 事项 负责人=李网格 时限=2026-12-10", "仅供"),
    ("stranger", "/sv", "绑定"),
    ("admin-1", "/sv add 事项 负责人=查无此人 时限=2026-12-10", "没有名为「查无此人」"),
    ("admin-1", "/sv add 事项 负责人=赵干部 时限=明年", "办结时限"),
    ("admin-1", "/sv add 事项 负责人=赵干部 时限=2026-11-01", "已过"),
    ("admin-1", "/sv add 负责人=赵干部 时限=2026-12-10", "不能为空"),
    ("admin-1", "/sv add 只有内容", "负责人和时限"),
    ("admin-1", "/sv done", "用法"),
    ("admin-1", "/sv done DB-20991231-0001", "没有找到"),
    ("admin-1", "/sv whatever", "/sv add"),
])
def test_refusals_and_bad_input(ledger_services, world, user, text, expected):
    assert expected in say(ledger_services, user, text)
    assert items(ledger_services) == []


def test_only_owner_unit_leader_or_admin_may_finish(ledger_services, world):
    for _ in range(3):
        say(ledger_services, "admin-1", "/sv add 事项 负责人=赵干部 时限=2026-12-10")
    refused = say(ledger_services, "cadre-b", "/sv done DB-20261122-0001")
    assert "不是您负责的" in refused and items(ledger_services)[0].state == "open"
    assert "不是您负责的" in say(ledger_services, "grid-1", "/sv done DB-20261122-0001")
    assert "已办结" in say(ledger_services, "leader-a", "/sv done DB-20261122-0001")  # leader of 测试消防大队
    assert "已办结" in say(ledger_services, "admin-1", "/sv done DB-20261122-0002")
    assert "已办结" in say(ledger_services, "cadre-a", "/sv done DB-20261122-0003")
    assert [i.state for i in items(ledger_services)] == ["done"] * 3


def test_overdue_items_are_flagged_in_the_list(ledger_services, world, clock):
    say(ledger_services, "admin-1", "/sv add 事项 负责人=赵干部 时限=2026-11-24")
    assert "剩 2 天" in say(ledger_services, "cadre-a", "/sv")
    clock.advance(days=5)
    assert "逾期 3 天" in say(ledger_services, "cadre-a", "/sv")


# ---------------------------------------------------------------- xlsx import


def write_xlsx(path, rows, header=("督办事项", "责任人", "办结时限", "单位")):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["2026年第四季度督办事项"])  # a title row above the header
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    return path


def test_import_all_good_rows(ledger_services, world, clock, tmp_path):
    path = write_xlsx(tmp_path / "sv.xlsx", [
        ("排查燃气管线", "赵干部", datetime(2026, 12, 10), "测试消防大队"),
        ("清理楼道堆物", "李网格", "2026年12月15日", None),
    ])
    with transaction(ledger_services.db) as s:
        report = sv.import_items(s, path, clock(), "测试导入")
    assert report.ok and report.codes == ["DB-20261122-0001", "DB-20261122-0002"], report.text()
    got = items(ledger_services)
    assert [(i.task, i.owner_id, i.deadline, i.created_by) for i in got] == [
        ("排查燃气管线", world.cadre_a.id, date(2026, 12, 10), None),
        ("清理楼道堆物", world.grid.id, date(2026, 12, 15), None)]
    assert got[1].unit_id == world.community.id  # the owner's unit by default
    with ledger_services.db() as s:
        assert len(s.scalars(select(Outbox).where(Outbox.idempotency_key.like("sv-new:%"))).all()) == 2


def test_import_with_a_bad_row_imports_nothing(ledger_services, world, clock, tmp_path):
    path = write_xlsx(tmp_path / "sv.xlsx", [
        ("排查燃气管线", "赵干部", "2026-12-10"),
        ("清理楼道堆物", "查无此人", "2026-12-15"),
        ("巡查河道", "李网格", "下个月"),
        (None, "李网格", "2026-12-15"),
    ], header=("事项", "责任人", "时限"))
    with transaction(ledger_services.db) as s:
        report = sv.import_items(s, path, clock(), "测试导入")
    text = report.text()
    assert not report.ok and "未导入任何督办事项" in text
    assert "第 4 行" in text and "查无此人" in text
    assert "第 5 行" in text and "办结时限" in text
    assert "第 6 行" in text and "督办事项为空" in text
    assert "第 3 行" not in text
    assert items(ledger_services) == []


def test_import_refuses_a_file_without_the_header(ledger_services, world, clock, tmp_path):
    path = write_xlsx(tmp_path / "x.xlsx", [("a", "b")], header=("名称", "备注"))
    with transaction(ledger_services.db) as s, pytest.raises(LedgerError) as exc:
        sv.import_items(s, path, clock(), "测试导入")
    assert "督办事项" in str(exc.value)
    xls = tmp_path / "old.xlsx"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with transaction(ledger_services.db) as s, pytest.raises(Exception, match="xls"):
        sv.import_items(s, xls, clock(), "测试导入")


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli_data(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = make_engine(database_url("", data_dir))
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as s:
        build_world(s, datetime(2026, 11, 22, 9))
    engine.dispose()
    return data_dir, factory


def test_cli_import_and_list(cli_data, lexical_config_file, tmp_path):
    data_dir, _factory = cli_data
    common = ["--data-dir", str(data_dir), "--config", str(lexical_config_file)]
    runner = CliRunner()
    bad = write_xlsx(tmp_path / "bad.xlsx", [("事项", "查无此人", "2030-01-01")])
    result = runner.invoke(main, ["supervision", "import", "--xlsx", str(bad), *common])
    assert result.exit_code == 1 and "第 3 行" in result.output
    good = write_xlsx(tmp_path / "good.xlsx", [("排查燃气管线", "赵干部", "2030-01-01", "测试消防大队")])
    result = runner.invoke(main, ["supervision", "import", "--xlsx", str(good), *common])
    assert result.exit_code == 0, result.output
    assert "已导入 1 条" in result.output
    result = runner.invoke(main, ["supervision", "list", "--json", *common])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["task"] == "排查燃气管线" and row["owner"] == "赵干部" and row["unit"] == "测试消防大队"
    assert row["deadline"] == "2030-01-01" and row["state"] == "open" and row["overdue"] is False
    assert row["code"].startswith("DB-")
    result = runner.invoke(main, ["supervision", "list", *common])
    assert "排查燃气管线" in result.output and "共 1 条" in result.output
    missing = runner.invoke(main, ["supervision", "import", "--xlsx", str(tmp_path / "nope.xlsx"), *common])
    assert missing.exit_code != 0 and "不存在" in missing.output
