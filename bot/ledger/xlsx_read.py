"""Reading a 隐患台账 workbook someone else made: recognise the file, find the sheet and its header
row, fill merged cells, and hand back the data rows with their worksheet row numbers.

Files are recognised by their bytes, never by their name: an .xls (Excel 97-2003 or an encrypted
workbook), a CSV or text file renamed .xlsx, a .docx or an .xlsb each get a message naming the
problem. Limits keep a hostile or accidental giant file from exhausting memory.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bot.ledger.columns import BY_KEY, HEADER_LOOKUP, REQUIRED_HEADERS, cell_text, normalize_header
from bot.ledger.listing import LedgerError

MAX_ROWS = 200_000  # data rows per import
MAX_COLUMNS = 200
MAX_UNCOMPRESSED_BYTES = 1 << 30  # zip members, uncompressed (a zip bomb stops here)
HEADER_SCAN_ROWS = 30

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")


class LedgerFileError(LedgerError):
    """The file cannot be read as a ledger at all."""


@dataclass
class SheetData:
    title: str
    header_row: int  # worksheet row number (1-based, as Excel shows it)
    columns: dict[int, str]  # 0-based column index -> column key
    headers: dict[str, str]  # column key -> header text as written in the file
    rows: list[tuple[int, dict[str, object]]] = field(default_factory=list)  # (row number, key -> value)
    blank_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)


def _sniff(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise LedgerFileError(f"文件不存在：{path}") from None
    except IsADirectoryError:
        raise LedgerFileError(f"{path} 是文件夹，不是 xlsx 文件") from None
    except OSError as exc:
        raise LedgerFileError(f"无法读取 {path}：{exc.strerror or exc}") from None
    if not head:
        raise LedgerFileError(f"{path.name} 是空文件")
    if head.startswith(_OLE2):
        raise LedgerFileError(
            f"{path.name} 是旧版 Excel 97-2003（.xls）文件或加密的工作簿，无法直接导入。"
            "请在 Excel/WPS 中打开，取消密码后“另存为 .xlsx”再导入"
        )
    if head.startswith(_ZIP):
        return
    if b"\x00" not in head:
        for encoding in ("utf-8", "gb18030"):
            try:
                head.decode(encoding)
            except UnicodeDecodeError:
                continue
            raise LedgerFileError(
                f"{path.name} 不是 xlsx 工作簿，而是文本文件（例如 CSV 改了扩展名）。"
                "请在 Excel/WPS 中打开并“另存为 .xlsx”再导入"
            )
    raise LedgerFileError(f"{path.name} 不是 xlsx 工作簿（无法识别的文件格式）")


def _check_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise LedgerFileError(f"{path.name} 已损坏，无法作为 xlsx 工作簿打开") from None
    names = {i.filename for i in infos}
    if "xl/workbook.bin" in names:
        raise LedgerFileError(f"{path.name} 是 Excel 二进制工作簿（.xlsb），请另存为 .xlsx 再导入")
    if "xl/workbook.xml" not in names:
        raise LedgerFileError(f"{path.name} 是压缩包，但不是 Excel 工作簿（例如 .docx 或 .zip），请另存为 .xlsx 再导入")
    if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED_BYTES:
        raise LedgerFileError(f"{path.name} 解压后超过 {MAX_UNCOMPRESSED_BYTES >> 20} MB，拒绝读取；请拆分后分批导入")


def _is_blank(values) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in values)


def _parser_class():
    """openpyxl's worksheet parser, with a fast path for inline strings (what write-only workbooks,
    ours included, contain): plain text runs joined directly instead of building Text objects."""
    from openpyxl.utils.cell import coordinate_to_tuple
    from openpyxl.worksheet._reader import INLINE_STRING, WorkSheetParser
    from openpyxl.xml.constants import SHEET_MAIN_NS

    text_tag, run_tag = f"{{{SHEET_MAIN_NS}}}t", f"{{{SHEET_MAIN_NS}}}r"

    class FastInlineParser(WorkSheetParser):
        def parse_cell(self, element):
            if element.get("t") != "inlineStr":
                return super().parse_cell(element)
            coordinate = element.get("r")
            if coordinate:
                row, column = coordinate_to_tuple(coordinate)
                self.col_counter = column
            else:
                self.col_counter += 1
                row, column = self.row_counter, self.col_counter
            parts = []
            inline = element.find(INLINE_STRING)
            for child in inline if inline is not None else ():
                if child.tag == run_tag:
                    child = child.find(text_tag)
                if child is not None and child.tag == text_tag:  # phonetic runs (rPh) are skipped
                    parts.append(child.text or "")
            value = "".join(parts) if inline is not None else None
            return {"row": row, "column": column, "value": value, "data_type": "s", "style_id": 0}

    return FastInlineParser


def _sheet_cells(wb, ws, max_rows: int) -> tuple[dict[int, list], list]:
    """All rows of one read-only sheet (row number -> values) and its merged ranges, in one pass.

    openpyxl's read-only sheets do not expose merged cells, so this drives its worksheet parser
    directly, as ReadOnlyWorksheet does, and picks the merges up at the end of the stream."""
    rows: dict[int, list] = {}
    filled = 0
    with ws._get_source() as src:
        parser = _parser_class()(
            src, ws._shared_strings, data_only=True, epoch=wb.epoch,
            date_formats=wb._date_formats, timedelta_formats=wb._timedelta_formats,
        )
        for idx, cells in parser.parse():
            values = [None] * min(MAX_COLUMNS, max((c["column"] for c in cells), default=0))
            for c in cells:
                if c["column"] <= MAX_COLUMNS:
                    values[c["column"] - 1] = c["value"]
            if _is_blank(values):
                continue
            filled += 1
            if filled > max_rows + HEADER_SCAN_ROWS:
                raise LedgerFileError(f"工作表“{ws.title}”超过 {max_rows:,} 行的导入上限，请拆分后分批导入")
            rows[idx] = values
        merged = list(parser.merged_cells.mergeCell) if parser.merged_cells else []
    return rows, merged


def _fill_merged(rows: dict[int, list], merged) -> None:
    """Each cell of a merged range takes the value of its top-left cell (what the reader sees)."""
    if not rows:
        return
    last_row = max(rows)
    for m in merged:
        try:
            min_col, min_row, max_col, max_row = _bounds(m.ref)
        except ValueError:
            continue
        max_col, max_row = min(max_col, MAX_COLUMNS), min(max_row, last_row)
        top = rows.get(min_row)
        value = top[min_col - 1] if top is not None and len(top) >= min_col else None
        if value is None:
            continue
        for r in range(min_row, max_row + 1):
            row = rows.setdefault(r, [])
            if len(row) < max_col:
                row.extend([None] * (max_col - len(row)))
            for c in range(min_col, max_col + 1):
                if row[c - 1] is None:
                    row[c - 1] = value


def _bounds(ref: str) -> tuple[int, int, int, int]:
    from openpyxl.utils.cell import range_boundaries

    return range_boundaries(ref)


def _match_header(values: list) -> dict[int, str]:
    found: dict[int, str] = {}
    for i, v in enumerate(values):
        key = HEADER_LOOKUP.get(normalize_header(v)) if v is not None else None
        if key:
            found[i] = key
    return found


def _find_header(rows: dict[int, list]) -> tuple[int, dict[int, str]] | None:
    best: tuple[int, dict[int, str]] | None = None
    for number in sorted(rows)[:HEADER_SCAN_ROWS]:
        found = _match_header(rows[number])
        matched = len(set(found.values()))
        if matched >= 3 and (best is None or matched > len(set(best[1].values()))):
            best = (number, found)
    return best


def _sheet_data(title: str, rows: dict[int, list]) -> SheetData | None:
    header = _find_header(rows)
    if header is None:
        return None
    header_row, found = header
    header_values = rows[header_row]
    columns: dict[int, str] = {}
    headers: dict[str, str] = {}
    for i, key in found.items():
        written = cell_text(header_values[i])
        if key in headers:
            raise LedgerFileError(
                f"工作表“{title}”第 {header_row} 行：列“{written}”与列“{headers[key]}”都表示“{BY_KEY[key].header}”，"
                "请删去其中一列"
            )
        columns[i] = key
        headers[key] = written
    missing = [BY_KEY[k].header for k in REQUIRED_HEADERS if k not in headers]
    if missing:
        raise LedgerFileError(f"工作表“{title}”第 {header_row} 行的表头缺少必需的列：{'、'.join(missing)}")
    ignored = [cell_text(v) for i, v in enumerate(header_values) if i not in columns and cell_text(v)]
    data = SheetData(title=title, header_row=header_row, columns=columns, headers=headers,
                     ignored_columns=ignored)
    derived = {"index", "overdue"}
    for number in sorted(n for n in rows if n > header_row):
        values = rows[number]
        record = {key: values[i] for i, key in columns.items() if i < len(values)}
        if not _is_blank(v for k, v in record.items() if k not in derived):
            data.rows.append((number, record))
    if data.rows:  # empty rows between the header and the last data row, written or not
        data.blank_rows = data.rows[-1][0] - header_row - len(data.rows)
    return data


def read_ledger(path: str | Path, max_rows: int = MAX_ROWS) -> SheetData:
    """The first worksheet that has a ledger header row; LedgerFileError when there is none."""
    import openpyxl

    path = Path(path)
    _sniff(path)
    _check_archive(path)
    try:
        with path.open("rb") as f:
            wb = openpyxl.load_workbook(f, read_only=True, data_only=True)
            try:
                sheets = [ws for ws in wb.worksheets if hasattr(ws, "_get_source")]
                if not sheets:
                    raise LedgerFileError(f"{path.name} 中没有工作表")
                empty = True
                for ws in sheets:
                    rows, merged = _sheet_cells(wb, ws, max_rows)
                    empty = empty and not rows
                    _fill_merged(rows, merged)
                    data = _sheet_data(ws.title, rows)
                    if data is not None:
                        if len(data.rows) > max_rows:
                            raise LedgerFileError(f"工作表“{ws.title}”超过 {max_rows:,} 行的导入上限，请拆分后分批导入")
                        return data
            finally:
                wb.close()
    except LedgerFileError:
        raise
    except Exception as exc:  # openpyxl raises many kinds on malformed parts
        raise LedgerFileError(f"{path.name} 无法作为 xlsx 工作簿读取（{type(exc).__name__}: {exc}）") from None
    if empty:
        raise LedgerFileError(f"{path.name} 的工作表是空的")
    raise LedgerFileError(
        f"{path.name} 中未找到台账表头：前 {HEADER_SCAN_ROWS} 行里没有“隐患描述”“类别”“整改状态”等列名"
    )
