"""`safeduty hazards export / import / list` end to end, in-process, on a data directory of its own."""
from __future__ import annotations

import json
from datetime import date, datetime

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import main
from bot.ledger.columns import COLUMNS
from bot.storage.db import database_url, head_revision, make_engine, session_factory, upgrade
from bot.storage.models import Hazard

HEADERS = [c.header for c in COLUMNS]


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def ledger(data_dir):
    """The data directory's embedded database, migrated, as a session factory."""
    engine = make_engine(database_url("", data_dir))
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def run(data_dir, lexical_config_file):
    def invoke(*args, config=None):
        argv = [*args, "--data-dir", str(data_dir), "--config", str(config or lexical_config_file)]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    return invoke


def add_hazards(factory) -> None:
    with factory() as s, s.begin():
        s.add_all([
            Hazard(code="YH-20261101-0001", description="消防通道堵塞", category="消防", severity="重大",
                   place="城东农贸市场", state="rectifying", reported_at=datetime(2026, 11, 1, 9, 0),
                   deadline=date(2020, 1, 1), reporter_name="张三丰", reporter_contact="13912345678",
                   reporter_user="wx-openid-77", anonymous=False, updated_at=datetime(2026, 11, 1, 9, 0)),
            Hazard(code="YH-20261102-0001", description="燃气软管老化", category="燃气", severity="一般",
                   place="和平路88号", state="reported", reported_at=datetime(2026, 11, 2, 10, 30),
                   updated_at=datetime(2026, 11, 2, 10, 30)),
        ])


def test_list_json_is_one_array_with_the_documented_fields(run, ledger):
    add_hazards(ledger)
    result = run("hazards", "list", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert isinstance(items, list) and len(items) == 2
    first = items[0]
    assert {k: first[k] for k in ("code", "state", "state_key", "category", "severity", "deadline", "place",
                                   "reported_at", "overdue")} == {
        "code": "YH-20261101-0001", "state": "整改中", "state_key": "rectifying", "category": "消防",
        "severity": "重大", "deadline": "2020-01-01", "place": "城东农贸市场",
        "reported_at": "2026-11-01T09:00:00", "overdue": True,
    }
    assert items[1]["deadline"] is None and items[1]["overdue"] is False


def test_list_json_has_no_reporter_identity(run, ledger):
    add_hazards(ledger)
    output = run("hazards", "list", "--json").output
    assert not any(secret in output for secret in ("张三丰", "13912345678", "wx-openid-77", "reporter"))


def test_list_json_filters(run, ledger):
    add_hazards(ledger)
    overdue = json.loads(run("hazards", "list", "--json", "--overdue").output)
    by_state = json.loads(run("hazards", "list", "--json", "--state", "待核实,已受理").output)
    assert [h["code"] for h in overdue] == ["YH-20261101-0001"]
    assert [h["code"] for h in by_state] == ["YH-20261102-0001"]


def test_unknown_filter_value_is_a_clear_error(run, ledger):
    result = run("hazards", "list", "--json", "--category", "天气")
    assert result.exit_code == 2 and "类别“天气”" in result.output


def test_export_writes_the_ledger(run, ledger, tmp_path):
    add_hazards(ledger)
    out = tmp_path / "台账.xlsx"
    result = run("hazards", "export", "--xlsx", str(out), "--category", "消防")
    assert result.exit_code == 0 and "已导出 1 条" in result.output
    rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    assert list(rows[0]) == HEADERS and rows[1][1] == "YH-20261101-0001"


def write_ledger(path, rows):
    wb = openpyxl.Workbook()
    wb.active.append(["隐患描述", "类别", "发现/举报时间", "整改状态"])
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


def test_import_rejected_exits_1_and_writes_nothing(run, ledger, tmp_path):
    path = write_ledger(tmp_path / "in.xlsx", [["楼道堆物", "消防", "2026-11-20", "待核实"],
                                                ["违规住人", "三合二", "2026-11-20", "待核实"]])
    result = run("hazards", "import", "--xlsx", str(path))
    assert result.exit_code == 1
    assert "导入失败" in result.output and "第 3 行" in result.output and "三合二" in result.output
    with ledger() as s:
        assert s.scalar(select(func.count(Hazard.id))) == 0


def test_import_accepted(run, ledger, tmp_path):
    path = write_ledger(tmp_path / "in.xlsx", [["楼道堆物", "消防", "2026年11月20日", "待核实"]])
    result = run("hazards", "import", "--xlsx", str(path))
    assert result.exit_code == 0 and "导入成功" in result.output
    with ledger() as s:
        assert s.scalar(select(Hazard.code)) == "YH-20261120-0001"


def test_import_of_an_xls_file_says_so(run, ledger, tmp_path):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    result = run("hazards", "import", "--xlsx", str(path))
    assert result.exit_code == 1 and ".xls" in result.output


def test_commands_do_not_load_the_knowledge_base(run, ledger, monkeypatch):
    import bot.app

    def forbidden(*args, **kwargs):
        raise AssertionError("the knowledge base must not be loaded")

    monkeypatch.setattr(bot.app, "build_services", forbidden)
    monkeypatch.setattr(bot.app, "build_knowledge", forbidden)
    assert run("hazards", "list", "--json").exit_code == 0


def test_fresh_configured_database_is_refused(run, tmp_path):
    config = tmp_path / "pg-like.yaml"
    config.write_text(
        "knowledge:\n  embedding:\n    provider: none\n"
        f"database:\n  url: sqlite:///{tmp_path / 'server.db'}\n", encoding="utf-8"
    )
    result = run("hazards", "list", "--json", config=config)
    assert result.exit_code == 2
    assert "尚未初始化" in result.output and "safeduty db upgrade" in result.output


def test_old_revision_is_refused(run, data_dir, tmp_path):
    engine = make_engine(database_url("", data_dir))
    assert head_revision(engine) != "0001"  # an older revision exists to be behind
    upgrade(engine, "0001")
    engine.dispose()
    result = run("hazards", "export", "--xlsx", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 2
    assert "0001" in result.output and "safeduty db upgrade" in result.output
    assert not (tmp_path / "x.xlsx").exists()
