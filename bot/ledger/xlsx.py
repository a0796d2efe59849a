"""The 隐患台账 as an Excel workbook: export with filters, and import of an existing ledger.

Export writes the usual columns (bot.ledger.columns.COLUMNS) in openpyxl's write-only mode: a bold,
frozen header row, column widths, real Excel dates. The reporter's identity is never written.

Import validates every row first and writes nothing unless all rows are valid; the caller's
transaction then holds every new hazard and its history row ("导入"), or none of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.ledger.columns import (
    BY_KEY, COLUMNS, IMPORT_SOURCE, cell_text, match_category, match_severity, match_state, nfkc, parse_date,
    parse_datetime, parse_yes_no,
)
from bot.ledger.listing import LedgerFilter, iter_rows
from bot.ledger.xlsx_read import MAX_ROWS, LedgerFileError, read_ledger
from bot.storage.models import Hazard, HazardHistory, Unit
from bot.storage.workflow import INITIAL_STATE

SHEET_TITLE = "隐患台账"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
EXCEL_CELL_LIMIT = 32_767
MAX_PROBLEMS_KEPT = 1000
MAX_PROBLEMS_SHOWN = 100


# ---------------------------------------------------------------- export

def export(session: Session, path: str | Path, filters: LedgerFilter | None = None,
           now: datetime | None = None) -> int:
    """Write the filtered ledger to an .xlsx file (atomically); returns the number of hazards."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    today = (now or datetime.now()).date()
    rows = iter_rows(session, filters, today)  # a bad filter fails before anything is written
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(SHEET_TITLE)
    ws.freeze_panes = "A2"
    for i, col in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width

    thin = Side(style="thin", color="808080")
    header_style = {
        "font": Font(bold=True),
        "fill": PatternFill("solid", fgColor="DDEBF7"),
        "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True),
        "border": Border(top=thin, bottom=thin, left=thin, right=thin),
    }

    def header_cell(text: str):
        cell = WriteOnlyCell(ws, value=text)
        for name, style in header_style.items():
            setattr(cell, name, style)
        return cell

    def text(value: str):
        if not value:
            return None
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if len(value) > EXCEL_CELL_LIMIT:
            value = value[: EXCEL_CELL_LIMIT - 5] + "……（截断）"
        if value.startswith("=") or value in ERROR_CODES:
            cell = WriteOnlyCell(ws, value=value)
            cell.data_type = "s"  # text that looks like a formula stays text (no formula injection)
            return cell
        return value

    def when(value: datetime | date | None, fmt: str):
        if value is None:
            return None
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = fmt
        return cell

    ws.append([header_cell(c.header) for c in COLUMNS])
    count = 0
    try:
        for count, row in enumerate(rows, start=1):
            ws.append([
                count, text(row.code), text(row.description), text(row.category), text(row.severity),
                text(row.place), text(row.territorial), text(row.department),
                when(row.reported_at, DATETIME_FORMAT), text(row.source), text(row.responsible_unit),
                text(row.responsible_person), text(row.measures), text(row.funds),
                when(row.deadline, DATE_FORMAT), row.state, when(row.closed_at, DATETIME_FORMAT),
                "是" if row.late else "否",
            ])
    except BaseException:
        try:
            ws.close()  # finish openpyxl's streaming writer so it does not complain when collected
        except Exception:
            pass
        raise
    ws.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{count + 1}"
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        wb.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


# ---------------------------------------------------------------- import

@dataclass
class Problem:
    row: int | None  # worksheet row number as Excel shows it; None: the file as a whole
    column: str  # the ledger column's header, or ""
    message: str

    def __str__(self) -> str:
        if self.row is None:
            return self.message
        return f"第 {self.row} 行{f'【{self.column}】' if self.column else '：'}{self.message}"


@dataclass
class ImportReport:
    path: str
    sheet: str = ""
    header_row: int = 0
    rows: int = 0  # data rows read
    imported: int = 0
    generated_codes: int = 0
    blank_rows: int = 0
    dry_run: bool = False
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, row: int | None, column: str, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(Problem(row, column, message))

    def text(self) -> str:
        where = Path(self.path).name + (f"，工作表“{self.sheet}”" if self.sheet else "")
        notes = []
        if self.blank_rows:
            notes.append(f"跳过空行 {self.blank_rows} 行")
        if self.ignored_columns:
            notes.append(f"未识别的列已忽略：{'、'.join(self.ignored_columns[:20])}")
        tail = f"（{'；'.join(notes)}）" if notes else ""
        if not self.ok:
            lines = [f"导入失败（{where}），台账未作任何改动。共 {self.problem_count} 个问题{tail}："]
            lines += [f"  {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
            if self.problem_count > MAX_PROBLEMS_SHOWN:
                lines.append(f"  ……另有 {self.problem_count - MAX_PROBLEMS_SHOWN} 个问题未列出")
            lines.append("请修改后重新导入。")
            return "\n".join(lines)
        generated = f"，其中 {self.generated_codes} 条原无编号、已自动编号" if self.generated_codes else ""
        if self.dry_run:
            return f"校验通过（{where}）：{self.rows} 条隐患均可导入{generated}{tail}。试运行，未写入。"
        return f"导入成功（{where}）：{self.imported} 条隐患已写入台账{generated}{tail}。"


def _unit_index(session: Session) -> dict[str, int]:
    return {nfkc(name).replace(" ", ""): uid for uid, name in session.execute(select(Unit.id, Unit.name))}


def _validate_row(record: dict, units: dict[str, int], report: ImportReport, number: int) -> dict | None:
    """One row as Hazard column values, or None after adding its problems to the report."""
    values: dict = {}
    before = report.problem_count

    def field_(key: str, parse, *args):
        try:
            return parse(record.get(key), *args)
        except ValueError as exc:
            report.add(number, BY_KEY[key].header, str(exc))
            return None

    def text_(key: str) -> str:
        value = cell_text(record.get(key))
        limit = BY_KEY[key].max_len
        if limit and len(value) > limit:
            report.add(number, BY_KEY[key].header, f"超过 {limit} 字（现有 {len(value)} 字）")
        return value

    values["description"] = text_("description")
    if not values["description"]:
        report.add(number, BY_KEY["description"].header, "缺少隐患描述")
    values["code"] = nfkc(text_("code"))
    values["category"] = field_("category", match_category)
    values["severity"] = field_("severity", match_severity)
    values["place"] = text_("place")
    for key, column in (("territorial", "territorial_id"), ("department", "department_id")):
        name = cell_text(record.get(key))
        values[column] = units.get(nfkc(name).replace(" ", "")) if name else None
        if name and values[column] is None:
            report.add(number, BY_KEY[key].header, f"单位“{name[:30]}”不存在（请先在系统中添加该单位，或留空）")
    values["reported_at"] = field_("reported_at", parse_datetime)
    if values["reported_at"] is None and cell_text(record.get("reported_at")) == "":
        report.add(number, BY_KEY["reported_at"].header, "缺少发现/举报时间")
    values["source"] = text_("source") or IMPORT_SOURCE
    for key in ("responsible_unit", "responsible_person", "measures", "funds"):
        values[key] = text_(key)
    values["deadline"] = field_("deadline", parse_date)
    values["state"] = field_("state", match_state, INITIAL_STATE)
    values["closed_at"] = field_("closed_at", parse_datetime)
    field_("overdue", parse_yes_no)  # derived on export; checked only so a shifted column is noticed
    return values if report.problem_count == before else None


def _next_codes(session: Session, taken: set[str]):
    """Generated codes YH-<reported date>-<seq>, after the highest one in the database or the file."""
    highest: dict[str, int] = {}

    def next_code(day: date) -> str:
        prefix = f"YH-{day:%Y%m%d}-"
        if prefix not in highest:
            same_day = (Hazard.code >= prefix, Hazard.code < prefix[:-1] + ".")  # a range the index serves
            found = session.scalars(select(Hazard.code).where(*same_day))
            seqs = [int(c[len(prefix):]) for c in [*found, *(t for t in taken if t.startswith(prefix))]
                    if c[len(prefix):].isdigit()]
            highest[prefix] = max(seqs, default=0)
        highest[prefix] += 1
        return f"{prefix}{highest[prefix]:04d}"

    return next_code


def import_ledger(session: Session, path: str | Path, now: datetime, actor_label: str = "台账导入",
                  dry_run: bool = False, max_rows: int = MAX_ROWS) -> ImportReport:
    """Validate a ledger workbook and, when every row is valid, add its hazards to the session.

    Nothing is added unless the whole file is valid. The caller commits (one transaction, e.g.
    bot.storage.db.transaction); a failure while writing rolls the whole import back."""
    report = ImportReport(path=str(path), dry_run=dry_run)
    try:
        sheet = read_ledger(path, max_rows=max_rows)
    except LedgerFileError as exc:
        report.add(None, "", str(exc))
        return report
    report.sheet, report.header_row = sheet.title, sheet.header_row
    report.rows, report.blank_rows = len(sheet.rows), sheet.blank_rows
    report.ignored_columns = sheet.ignored_columns
    if not sheet.rows:
        report.add(None, "", f"工作表“{sheet.title}”第 {sheet.header_row} 行表头以下没有数据行")
        return report

    units = _unit_index(session)
    valid: list[tuple[int, dict]] = []
    first_seen: dict[str, int] = {}
    for number, record in sheet.rows:
        values = _validate_row(record, units, report, number)
        code = nfkc(cell_text(record.get("code")))
        if code:
            if code in first_seen:
                report.add(number, BY_KEY["code"].header, f"隐患编号“{code}”与第 {first_seen[code]} 行重复")
                values = None
            else:
                first_seen[code] = number
        if values is not None:
            valid.append((number, values))

    codes = list(first_seen)
    for i in range(0, len(codes), 500):
        for existing in session.scalars(select(Hazard.code).where(Hazard.code.in_(codes[i:i + 500]))):
            report.add(first_seen[existing], BY_KEY["code"].header, f"隐患编号“{existing}”已在台账中")
    if not report.ok:
        report.problems.sort(key=lambda p: (p.row or 0))
        return report

    next_code = _next_codes(session, set(codes))
    for _, values in valid:
        if not values["code"]:
            values["code"] = next_code(values["reported_at"].date())
            report.generated_codes += 1
    if dry_run:
        return report

    rows = [
        dict(values, updated_at=now, secret_hash="", anonymous=True, reporter_channel="", reporter_user="",
             reporter_name="", reporter_contact="", emergency_plan="", public_note="")
        for _, values in valid
    ]
    # Core executemany on the tables: the ORM's bulk path splits rows into many small statements
    # (grouping them by which values are None) and RETURNING per row is slower still.
    session.execute(insert(Hazard.__table__), rows)
    ids_by_code: dict[str, int] = {}
    all_codes = [r["code"] for r in rows]
    for i in range(0, len(all_codes), 500):
        chunk = select(Hazard.code, Hazard.id).where(Hazard.code.in_(all_codes[i:i + 500]))
        ids_by_code.update((code, hid) for code, hid in session.execute(chunk))
    ids = [ids_by_code[c] for c in all_codes]
    label = Path(path).name
    session.execute(
        insert(HazardHistory.__table__),
        [
            {"hazard_id": hid, "at": now, "actor_label": actor_label, "from_state": None,
             "to_state": values["state"], "note": f"导入：{label} 第 {number} 行", "public": False}
            for hid, (number, values) in zip(ids, valid)
        ],
    )
    report.imported = len(rows)
    return report
