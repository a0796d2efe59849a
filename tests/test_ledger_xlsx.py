"""The 隐患台账 workbook: export columns and styling, import validation (all or nothing), bad files."""
from __future__ import annotations

import zipfile
from datetime import date, datetime

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.ledger.columns import COLUMNS, parse_date, parse_datetime
from bot.ledger.listing import LedgerError, LedgerFilter
from bot.ledger.xlsx import export, import_ledger
from bot.storage.db import make_engine, session_factory, upgrade
from bot.storage.models import Hazard, HazardHistory, Unit

HEADERS = [c.header for c in COLUMNS]
TOWN, DEPT = "测试街道", "测试应急局"


def add_units(session) -> dict[str, int]:
    session.add_all([Unit(name=TOWN, kind="township"), Unit(name=DEPT, kind="department")])
    session.flush()
    return {u.name: u.id for u in session.scalars(select(Unit).where(Unit.name.in_([TOWN, DEPT])))}


def hazard(units: dict[str, int] | None = None, **kw) -> Hazard:
    units = units or {}
    values = dict(
        code="YH-20261101-0001", description="楼道内电动车充电，堵塞疏散通道", category="电动自行车", severity="一般",
        place="幸福小区3栋", state="reported", source="随手拍", reported_at=datetime(2026, 11, 1, 8, 30, 15),
        territorial_id=units.get(TOWN), department_id=units.get(DEPT),
        updated_at=datetime(2026, 11, 1, 8, 30, 15),
    )
    values.update(kw)
    return Hazard(**values)


@pytest.fixture
def session(db_engine):
    with session_factory(db_engine)() as s:
        yield s


@pytest.fixture
def units(session):
    ids = add_units(session)
    session.commit()
    return ids


def write_sheet(path, rows, header=HEADERS, before=(), merges=()):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "台账"
    for row in before:
        ws.append(row)
    ws.append(header)
    for row in rows:
        ws.append(row)
    for ref in merges:
        ws.merge_cells(ref)
    wb.save(path)
    return path


def row(**kw) -> list:
    """One data row in HEADERS order, from column keys."""
    values = {"description": "消防通道堵塞", "category": "消防", "severity": "一般", "reported_at": "2026-11-20",
              "state": "待核实"}
    values.update(kw)
    return [values.get(c.key) for c in COLUMNS]


def count(session, model=Hazard) -> int:
    return session.scalar(select(func.count(model.id)))


def sheet_values(path) -> list[tuple]:
    return list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))


# ---------------------------------------------------------------- export

def test_round_trip_preserves_every_column(session, units, tmp_path, clock):
    session.add_all([
        hazard(units, code="YH-20261101-0001", state="closed", severity="重大", responsible_unit="幸福物业公司",
               responsible_person="李四", measures="清理楼道，安装充电桩", funds="0.5万元", deadline=date(2026, 11, 8),
               closed_at=datetime(2026, 11, 10, 16, 45)),
        hazard(units, code="YH-20261102-0003", state="rectifying", category="燃气", source="网格巡查",
               reported_at=datetime(2026, 11, 2, 10, 0), deadline=date(2026, 11, 9), measures="更换软管"),
        hazard(code="YH-20261103-0002", category="其他", place="", description="=1+1 看起来像公式"),
    ])
    session.commit()
    first = export(session, tmp_path / "a.xlsx", now=clock())
    assert first == 3

    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(other)
    with session_factory(other)() as s2:
        add_units(s2)
        report = import_ledger(s2, tmp_path / "a.xlsx", clock(), "测试")
        assert report.ok, report.text()
        s2.commit()
        export(s2, tmp_path / "b.xlsx", now=clock())
    other.dispose()
    assert sheet_values(tmp_path / "b.xlsx") == sheet_values(tmp_path / "a.xlsx")


def test_export_header_is_bold_frozen_with_widths_and_real_dates(session, units, tmp_path, clock):
    session.add(hazard(units, deadline=date(2026, 11, 8)))
    session.commit()
    export(session, tmp_path / "a.xlsx", now=clock())
    ws = openpyxl.load_workbook(tmp_path / "a.xlsx").active
    assert [c.value for c in ws[1]] == HEADERS
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["C"].width >= 30  # 隐患描述
    reported, deadline = ws.cell(2, HEADERS.index("发现/举报时间") + 1), ws.cell(2, HEADERS.index("整改时限") + 1)
    assert reported.is_date and reported.value == datetime(2026, 11, 1, 8, 30, 15)
    assert deadline.is_date and deadline.value == datetime(2026, 11, 8)


def test_export_never_contains_reporter_identity(session, units, tmp_path, clock):
    session.add(hazard(units, reporter_name="张三丰", reporter_contact="13912345678",
                       reporter_user="wx-openid-77", reporter_channel="wecom", anonymous=False))
    session.commit()
    export(session, tmp_path / "a.xlsx", now=clock())
    with zipfile.ZipFile(tmp_path / "a.xlsx") as z:
        everything = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    for secret in ("张三丰", "13912345678", "wx-openid-77", "wecom"):
        assert secret not in everything


def test_export_overdue_column_and_filter(session, units, tmp_path, clock):
    session.add_all([
        hazard(units, code="YH-1", state="rectifying", deadline=date(2026, 11, 21)),  # past: overdue
        hazard(units, code="YH-2", state="rectifying", deadline=date(2026, 11, 30)),
        hazard(units, code="YH-3", state="closed", deadline=date(2026, 11, 5),
               closed_at=datetime(2026, 11, 4)),
    ])
    session.commit()
    export(session, tmp_path / "all.xlsx", now=clock())
    flags = {r[1]: r[-1] for r in sheet_values(tmp_path / "all.xlsx")[1:]}
    assert flags == {"YH-1": "是", "YH-2": "否", "YH-3": "否"}
    export(session, tmp_path / "overdue.xlsx", LedgerFilter(overdue=True), now=clock())
    assert [r[1] for r in sheet_values(tmp_path / "overdue.xlsx")[1:]] == ["YH-1"]


def test_export_filters_by_state_label_category_and_unit(session, units, tmp_path, clock):
    session.add_all([
        hazard(units, code="YH-1", state="reported", category="消防"),
        hazard(units, code="YH-2", state="accepted", category="消防"),
        hazard(code="YH-3", state="reported", category="消防"),  # no unit
        hazard(units, code="YH-4", state="reported", category="燃气"),
    ])
    session.commit()
    filters = LedgerFilter(states=("待核实",), categories=("消防",), unit=TOWN)
    export(session, tmp_path / "f.xlsx", filters, now=clock())
    assert [r[1] for r in sheet_values(tmp_path / "f.xlsx")[1:]] == ["YH-1"]


def test_export_refuses_an_unknown_state_before_writing(session, tmp_path, clock):
    with pytest.raises(LedgerError, match="整改状态"):
        export(session, tmp_path / "f.xlsx", LedgerFilter(states=("差不多了",)), now=clock())
    assert not (tmp_path / "f.xlsx").exists()


def test_export_keeps_formula_like_text_as_text(session, units, tmp_path, clock):
    session.add(hazard(units, description='=HYPERLINK("http://evil","点我")'))
    session.commit()
    export(session, tmp_path / "a.xlsx", now=clock())
    cell = openpyxl.load_workbook(tmp_path / "a.xlsx").active["C2"]
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")


# ---------------------------------------------------------------- import: validation

def test_one_bad_row_imports_nothing_and_names_the_row(session, units, tmp_path, clock):
    path = write_sheet(tmp_path / "t.xlsx", [row(), row(), row(category="燃气管道"), row()])
    report = import_ledger(session, path, clock(), "测试")
    session.commit()
    assert not report.ok
    assert [(p.row, p.column) for p in report.problems] == [(4, "类别")]
    assert "燃气管道" in report.text() and "第 4 行" in report.text()
    assert count(session) == 0 and count(session, HazardHistory) == 0


def test_every_bad_row_is_reported_at_once(session, units, tmp_path, clock):
    rows = [row(description=""), row(state="差不多了"), row(reported_at="2026-13-45"), row(territorial="火星街道")]
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", rows), clock(), "测试")
    assert {(p.row, p.column) for p in report.problems} == {
        (2, "隐患描述"), (3, "整改状态"), (4, "发现/举报时间"), (5, "属地单位"),
    }
    assert "火星街道" in report.text()


def test_duplicate_code_within_the_file(session, units, tmp_path, clock):
    rows = [row(code="YH-20261120-0001"), row(code="YH-20261120-0002"), row(code="ＹＨ-20261120-0001")]
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", rows), clock(), "测试")
    assert not report.ok
    assert [(p.row, p.message) for p in report.problems] == [(4, "隐患编号“YH-20261120-0001”与第 2 行重复")]


def test_duplicate_code_already_in_the_database(session, units, tmp_path, clock):
    session.add(hazard(code="YH-20261120-0001"))
    session.commit()
    path = write_sheet(tmp_path / "t.xlsx", [row(code="YH-20261120-0001")])
    report = import_ledger(session, path, clock(), "x")
    assert not report.ok and "已在台账中" in report.problems[0].message and report.problems[0].row == 2


def test_chinese_and_full_width_dates_are_understood(session, units, tmp_path, clock):
    rows = [row(code="A", reported_at="２０２６年１１月２０日 ９:３０", deadline="2026/12/1"),
            row(code="B", reported_at=datetime(2026, 11, 21, 14, 5), deadline="2026.12.3"),
            row(code="C", reported_at="2026年11月22日", deadline="20261205")]
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", rows), clock(), "测试")
    session.commit()
    assert report.ok, report.text()
    got = {h.code: (h.reported_at, h.deadline) for h in session.scalars(select(Hazard))}
    assert got == {
        "A": (datetime(2026, 11, 20, 9, 30), date(2026, 12, 1)),
        "B": (datetime(2026, 11, 21, 14, 5), date(2026, 12, 3)),
        "C": (datetime(2026, 11, 22), date(2026, 12, 5)),
    }


@pytest.mark.parametrize("text, expected", [
    ("2026-12-01", date(2026, 12, 1)), ("2026/12/1", date(2026, 12, 1)), ("2026年12月1日", date(2026, 12, 1)),
    ("２０２６年１２月１日", date(2026, 12, 1)), ("2026.12.1", date(2026, 12, 1)), (46357, date(2026, 12, 1)),
    ("", None), (None, None),
])
def test_parse_date_forms(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["2026-02-30", "下周一", "12/1", "1850-01-01"])
def test_parse_date_rejects_nonsense(text):
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_columns_in_any_order_with_unknown_columns_ignored(session, units, tmp_path, clock):
    header = ["备注", "整改状态", "类别", "隐患描述", "发现时间", "隐患编号"]
    rows = [["随便写", "整改中", "燃气", "燃气软管老化", "2026-11-20", "YH-X-1"]]
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", rows, header=header), clock(), "测试")
    session.commit()
    assert report.ok, report.text()
    h = session.scalar(select(Hazard))
    assert (h.code, h.state, h.category, h.description) == ("YH-X-1", "rectifying", "燃气", "燃气软管老化")
    assert report.ignored_columns == ["备注"] and "备注" in report.text()


def test_blank_rows_are_skipped(session, units, tmp_path, clock):
    rows = [row(code="A"), [None] * len(HEADERS), [3] + [None] * (len(HEADERS) - 1), row(code="B")]
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", rows), clock(), "测试")
    assert report.ok and report.imported == 2 and report.blank_rows == 2


def test_imported_hazards_get_codes_history_and_source(session, units, tmp_path, clock):
    session.add(hazard(code="YH-20261120-0007"))
    session.commit()
    rows = [row(reported_at="2026-11-20"), row(reported_at="2026-11-20", source="网格巡查")]
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", rows), clock(), "区安委办 王五")
    session.commit()
    assert report.ok and report.generated_codes == 2
    new = session.scalars(select(Hazard).where(Hazard.code != "YH-20261120-0007").order_by(Hazard.code)).all()
    assert [(h.code, h.source) for h in new] == [("YH-20261120-0008", "导入"), ("YH-20261120-0009", "网格巡查")]
    history = session.scalars(select(HazardHistory).order_by(HazardHistory.id)).all()
    assert [(x.hazard_id, x.to_state, x.actor_label, x.at) for x in history] == [
        (h.id, "reported", "区安委办 王五", clock()) for h in new
    ]
    assert all(x.note.startswith("导入") for x in history)


def test_dry_run_validates_without_writing(session, units, tmp_path, clock):
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", [row()]), clock(), "x", dry_run=True)
    session.commit()
    assert report.ok and "未写入" in report.text() and count(session) == 0


def test_merged_title_and_vertically_merged_unit(session, units, tmp_path, clock):
    rows = [row(code="A", territorial=TOWN), row(code="B"), row(code="C")]
    col = "ABCDEFGHIJKLMNOPQR"[HEADERS.index("属地单位")]
    path = write_sheet(tmp_path / "t.xlsx", rows, before=[["某区隐患排查治理台账"]],
                       merges=["A1:R1", f"{col}3:{col}4"])
    report = import_ledger(session, path, clock(), "测试")
    session.commit()
    assert report.ok, report.text()
    assert report.header_row == 2
    got = {h.code: h.territorial_id for h in session.scalars(select(Hazard))}
    assert got == {"A": units[TOWN], "B": units[TOWN], "C": None}


def test_two_level_header_with_merged_cells(session, units, tmp_path, clock):
    five = ("责任单位", "责任人", "整改措施", "整改资金", "整改时限")  # under a merged "五落实"
    top = [None if h in five else h for h in HEADERS]
    top[HEADERS.index("责任单位")] = "五落实"
    second = [h if h in five else None for h in HEADERS]
    merges = [f"{c}1:{c}2" for c, h in zip("ABCDEFGHIJKLMNOPQR", HEADERS) if h not in five] + ["K1:O1"]
    path = write_sheet(tmp_path / "t.xlsx", [second, row(responsible_person="李四")], header=top, merges=merges)
    report = import_ledger(session, path, clock(), "测试")
    session.commit()
    assert report.ok, report.text()
    assert report.header_row == 2
    assert session.scalar(select(Hazard.responsible_person)) == "李四"


# ---------------------------------------------------------------- import: bad files

def test_xls_file_gets_a_clear_message(session, tmp_path, clock):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    report = import_ledger(session, path, clock(), "测试")
    assert not report.ok and report.problems[0].row is None
    assert ".xls" in report.text() and "另存为 .xlsx" in report.text()


def test_renamed_text_file_gets_a_clear_message(session, tmp_path, clock):
    path = tmp_path / "ledger.xlsx"
    path.write_text("序号,隐患描述,类别\n1,消防通道堵塞,消防\n", encoding="gbk")
    report = import_ledger(session, path, clock(), "测试")
    assert not report.ok and "文本文件" in report.text()


def test_zip_that_is_not_a_workbook(session, tmp_path, clock):
    path = tmp_path / "ledger.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", "<w/>")
    report = import_ledger(session, path, clock(), "测试")
    assert not report.ok and "不是 Excel 工作簿" in report.text()


def test_empty_sheet(session, tmp_path, clock):
    path = tmp_path / "empty.xlsx"
    openpyxl.Workbook().save(path)
    report = import_ledger(session, path, clock(), "测试")
    assert not report.ok and "空" in report.text()


def test_header_without_data_rows(session, tmp_path, clock):
    report = import_ledger(session, write_sheet(tmp_path / "t.xlsx", []), clock(), "测试")
    assert not report.ok and "没有数据行" in report.text()


def test_sheet_without_a_ledger_header(session, tmp_path, clock):
    path = write_sheet(tmp_path / "t.xlsx", [["a", "b"]], header=["姓名", "电话"])
    report = import_ledger(session, path, clock(), "测试")
    assert not report.ok and "未找到台账表头" in report.text()


def test_too_many_rows_are_refused(session, units, tmp_path, clock):
    path = write_sheet(tmp_path / "t.xlsx", [row() for _ in range(40)])
    report = import_ledger(session, path, clock(), "测试", max_rows=5)
    assert not report.ok and "上限" in report.text() and count(session) == 0


def test_missing_file(session, tmp_path, clock):
    report = import_ledger(session, tmp_path / "nope.xlsx", clock(), "测试")
    assert not report.ok and "不存在" in report.text()
