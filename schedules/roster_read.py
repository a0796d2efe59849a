"""Reading a 值班表 file (.xlsx or .csv) into plain rows, and parsing its Chinese dates and shift times.

No database here: schedules.roster validates the rows against the people and saves them.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

DEFAULT_SHIFT_START = time(8, 30)
DEFAULT_SHIFT_HOURS = 24
MAX_RANGE_DAYS = 62  # a longer date range in one cell is a typo, not a roster


class RosterFileError(ValueError):
    """The file as a whole cannot be read (format, encoding, no header, empty)."""


@dataclass
class RosterRow:
    line: int  # 1-based row number in the file, for messages
    dates: str  # the raw date cell, merged/carried values filled in
    leaders: list[str] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)
    leader_phones: list[str] = field(default_factory=list)
    staff_phones: list[str] = field(default_factory=list)
    unit: str = ""
    shift: str = ""


def normalise(value) -> str:
    """Cell text with full-width digits/punctuation folded (ＮＦＫＣ) and spaces trimmed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


# ---------------------------------------------------------------- reading the file

def _rows_xlsx(path: Path) -> tuple[list[list], str]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, data_only=True)
    except Exception as exc:  # zip/xml errors: not a real xlsx
        raise RosterFileError(f"无法读取 {path.name}：不是有效的 .xlsx 文件（{type(exc).__name__}）。") from exc
    sheet = book.worksheets[0]
    grid = [list(row) for row in sheet.iter_rows(values_only=True)]
    for merged in sheet.merged_cells.ranges:  # a date merged over several rows: fill every cell
        value = sheet.cell(merged.min_row, merged.min_col).value
        for r in range(merged.min_row, merged.max_row + 1):
            for c in range(merged.min_col, merged.max_col + 1):
                if r - 1 < len(grid) and c - 1 < len(grid[r - 1]):
                    grid[r - 1][c - 1] = value
    return grid, sheet.title or ""


def _rows_csv(path: Path) -> list[list]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RosterFileError(f"{path.name} 的编码无法识别，请另存为 UTF-8 或 GBK 编码的 CSV。")
    return [list(row) for row in csv.reader(io.StringIO(text))]


HEADER_KINDS = (  # (kind, words in the header cell), checked in order
    ("leader", ("带班",)),
    ("staff", ("值班员", "值班人", "值守人")),
    ("date", ("日期",)),
    ("phone", ("电话", "手机", "联系方式")),
    ("unit", ("单位", "部门")),
    ("shift", ("班次", "时间", "时段")),
)


def _header_map(row: list) -> dict[int, str] | None:
    kinds: dict[int, str] = {}
    last_person_col = None
    for i, cell in enumerate(row):
        text = re.sub(r"\s+", "", normalise(cell))
        for kind, words in HEADER_KINDS:
            if any(w in text for w in words):
                if kind == "phone":  # a phone column belongs to the name column on its left
                    kind = "leader_phone" if last_person_col == "leader" else "staff_phone"
                elif kind in ("leader", "staff"):
                    last_person_col = kind
                kinds.setdefault(i, kind)
                break
    values = set(kinds.values())
    if "date" in values and values & {"leader", "staff"}:
        return kinds
    return None


def _split(text: str) -> list[str]:
    text = re.sub(r"[(（][^)）]*[)）]", " ", text)  # 张三（局长）
    return [p for p in re.split(r"[、，,/;；\s]+", text) if p]


def read_roster(path: Path) -> tuple[list[RosterRow], int | None]:
    """The rows of a roster file and the year named in its title or file name (if any)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise RosterFileError(f"{path.name} 是旧版 .xls 格式，无法读取。请在 Excel/WPS 中“另存为” .xlsx 后再导入。")
    if suffix not in (".xlsx", ".csv"):
        raise RosterFileError(f"不支持的文件类型 {suffix or '（无扩展名）'}：值班表请用 .xlsx 或 .csv。")
    if not path.exists():
        raise RosterFileError(f"文件不存在：{path}")
    if path.stat().st_size == 0:
        raise RosterFileError(f"{path.name} 是空文件。")
    grid, title = _rows_xlsx(path) if suffix == ".xlsx" else (_rows_csv(path), "")
    grid = [row for row in grid if any(normalise(c) for c in row)]
    if not grid:
        raise RosterFileError(f"{path.name} 没有任何内容。")
    header_at, kinds = None, None
    for i, row in enumerate(grid[:10]):
        kinds = _header_map(row)
        if kinds:
            header_at = i
            break
    if kinds is None:
        raise RosterFileError("没有找到表头：值班表需要“日期”列以及“带班领导”或“值班员”列。")
    context = " ".join(normalise(c) for row in grid[:header_at] for c in row) + f" {title} {path.stem}"
    year_match = re.search(r"(20\d{2})\s*年?", unicodedata.normalize("NFKC", context))
    date_col = next(i for i, k in kinds.items() if k == "date")
    rows: list[RosterRow] = []
    previous_date = ""
    for offset, row in enumerate(grid[header_at + 1:], start=header_at + 2):
        cells = {kind: normalise(row[i]) if i < len(row) else "" for i, kind in kinds.items()}
        date_text = _date_cell(row[date_col] if date_col < len(row) else None)
        leaders, staff = _split(cells.get("leader", "")), _split(cells.get("staff", ""))
        if not leaders and not staff:
            continue  # a blank or a note row
        if not date_text:
            date_text = previous_date  # the date continues from the row above (merged or left blank)
        previous_date = date_text
        rows.append(RosterRow(
            line=offset, dates=date_text, leaders=leaders, staff=staff,
            leader_phones=_split(cells.get("leader_phone", "")), staff_phones=_split(cells.get("staff_phone", "")),
            unit=cells.get("unit", ""), shift=cells.get("shift", ""),
        ))
    return rows, int(year_match.group(1)) if year_match else None


def _date_cell(value) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return normalise(value)


# ---------------------------------------------------------------- dates and times

_DATE_TOKEN = re.compile(r"(?:(?P<y>\d{4})\s*[年./-]\s*)?(?:(?P<m>\d{1,2})\s*[月./-]\s*)?(?P<d>\d{1,2})\s*[日号]?")


def parse_dates(text: str, year: int) -> tuple[date, date]:
    """'2026年10月1日', '10月1日', '10.1', '2026-10-01', '10月1日-10月3日', '10月1日至3日' -> (first, last).
    A date without a year takes `year`; a range crossing New Year rolls over. ValueError when unreadable."""
    text = normalise(text)
    text = re.sub(r"[(（][^)）]*[)）]", " ", text)  # （周四）
    text = re.sub(r"\d{1,2}[:：]\d{2}", " ", text)  # a time in the date cell
    tokens = list(_DATE_TOKEN.finditer(text))
    if not tokens or len(tokens) > 2:
        raise ValueError(text)
    leftover = _DATE_TOKEN.sub("", text)
    if re.sub(r"[\s\-—–~至到]", "", leftover):
        raise ValueError(text)
    first = tokens[0]
    y = int(first["y"]) if first["y"] else year
    if not first["m"]:
        raise ValueError(text)
    start = date(y, int(first["m"]), int(first["d"]))
    if len(tokens) == 1:
        return start, start
    second = tokens[1]
    m2 = int(second["m"]) if second["m"] else start.month
    y2 = int(second["y"]) if second["y"] else start.year
    end = date(y2, m2, int(second["d"]))
    if end < start and not second["y"]:
        end = date(y2 + 1, m2, int(second["d"]))
    if end < start or (end - start).days > MAX_RANGE_DAYS:
        raise ValueError(text)
    return start, end


_SHIFT = re.compile(r"(\d{1,2})[:：](\d{2})\s*[-—–~至到]+\s*(次日|第二天|翌日)?\s*(\d{1,2})[:：](\d{2})")


def parse_shift(text: str, day: date) -> tuple[datetime, datetime]:
    """'08:30-次日08:30' / '8:30-17:30' / '' (a 24-hour shift from 08:30) -> (start, end)."""
    text = normalise(text)
    if not text or text in ("全天", "24小时", "24h", "全日"):
        start = datetime.combine(day, DEFAULT_SHIFT_START)
        return start, start + timedelta(hours=DEFAULT_SHIFT_HOURS)
    m = _SHIFT.search(text)
    if not m:
        raise ValueError(text)
    h1, m1, next_day, h2, m2 = int(m[1]), int(m[2]), m[3], int(m[4]), int(m[5])
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(text)
    start = datetime.combine(day, time(h1, m1))
    end = datetime.combine(day, time(0, 0)) + timedelta(hours=h2, minutes=m2)
    if next_day or end <= start:
        end += timedelta(days=1)
    return start, end
