"""The 隐患台账 spreadsheet's columns and the tolerant parsing of what people type into them.

Ledgers come from many hands: full-width digits (２０２６年１２月１日), dates as Excel dates or as text
(2026-12-01, 2026/12/1, 2026.12.1, 2026年12月1日), headers with stray spaces or line breaks, 是/否 or
√/×. Everything here normalises such input or raises ValueError with a Chinese reason.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.ledger.routing import CATEGORIES
from bot.storage.workflow import OPEN_STATES, STATES

# An imported row must use one of the routing table's categories: `CATEGORIES`, owned by routing.
SEVERITIES: tuple[str, ...] = ("一般", "重大")
IMPORT_SOURCE = "导入"


@dataclass(frozen=True)
class Column:
    key: str  # field name in a ledger row
    header: str  # what the spreadsheet shows
    width: float  # Excel column width (characters)
    kind: str = "text"  # text | datetime | date | yesno | index
    max_len: int | None = None  # the database column's limit


COLUMNS: tuple[Column, ...] = (
    Column("index", "序号", 6, "index"),
    Column("code", "隐患编号", 18, max_len=30),
    Column("description", "隐患描述", 42),
    Column("category", "类别", 12),
    Column("severity", "等级", 6),
    Column("place", "地点", 24, max_len=200),
    Column("territorial", "属地单位", 14),
    Column("department", "行业主管部门", 16),
    Column("reported_at", "发现/举报时间", 17, "datetime"),
    Column("source", "来源", 9, max_len=20),
    Column("responsible_unit", "责任单位", 16, max_len=100),
    Column("responsible_person", "责任人", 9, max_len=50),
    Column("measures", "整改措施", 30),
    Column("funds", "整改资金", 10, max_len=50),
    Column("deadline", "整改时限", 11, "date"),
    Column("state", "整改状态", 9),
    Column("closed_at", "销号时间", 17, "datetime"),
    Column("overdue", "是否逾期", 8, "yesno"),
)
BY_KEY = {c.key: c for c in COLUMNS}
REQUIRED_HEADERS = ("description", "category")

# Other names seen in district ledgers for the same columns (compared after normalize_header).
_HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "index": ("编号序号", "序", "no"),
    "code": ("编号", "隐患编码", "回执码"),
    "description": ("隐患内容", "隐患情况", "隐患描述内容", "存在问题", "隐患问题"),
    "category": ("隐患类别", "类型", "隐患类型", "行业类别", "行业领域"),
    "severity": ("隐患等级", "隐患级别", "级别"),
    "place": ("隐患地点", "位置", "地址", "隐患位置"),
    "territorial": ("属地", "所属乡镇", "乡镇街道", "属地乡镇"),
    "department": ("行业部门", "主管部门", "行业主管单位"),
    "reported_at": ("发现时间", "举报时间", "排查时间", "发现日期", "上报时间", "发现举报时间"),
    "source": ("隐患来源", "发现方式"),
    "responsible_unit": ("整改责任单位",),
    "responsible_person": ("整改责任人",),
    "measures": ("整改措施要求",),
    "funds": ("整改资金万元", "整改资金元", "资金"),
    "deadline": ("整改期限", "整改完成时限", "完成时限"),
    "state": ("状态", "整改进度", "当前状态"),
    "closed_at": ("销号日期", "销号时间日期"),
    "overdue": ("逾期", "是否超期"),
}

_SPACES = re.compile(r"\s+")
_HEADER_NOISE = re.compile(r"[\s()（）【】\[\]*＊:：/／、]")


def nfkc(value: str) -> str:
    """Full-width digits, letters and punctuation to their ordinary forms; spaces trimmed."""
    return unicodedata.normalize("NFKC", value).strip()


def normalize_header(value) -> str:
    return _HEADER_NOISE.sub("", nfkc(str(value))).lower() if value is not None else ""


HEADER_LOOKUP: dict[str, str] = {}
for _col in COLUMNS:
    HEADER_LOOKUP[normalize_header(_col.header)] = _col.key
    for _alias in _HEADER_ALIASES.get(_col.key, ()):
        HEADER_LOOKUP.setdefault(normalize_header(_alias), _col.key)


def cell_text(value) -> str:
    """A cell as text: numbers without a spurious '.0', dates as ISO, everything stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes" if not value.second else "seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


# ---------------------------------------------------------------- dates

_DATE_TEXT = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?"
    r"(?:[\sT]*(\d{1,2})\s*[:时]\s*(\d{1,2})\s*分?(?:\s*:?\s*(\d{1,2})\s*秒?)?)?$"
)
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_EXCEL_EPOCH = datetime(1899, 12, 30)
MIN_YEAR, MAX_YEAR = 1990, 2100


def parse_datetime(value) -> datetime | None:
    """An Excel date, an Excel serial number or date text; None for a blank cell."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 20000 <= value <= 80000:  # 1954 .. 2119 as Excel serial numbers
            raise ValueError(f"“{cell_text(value)}”不是日期")
        result = _EXCEL_EPOCH + timedelta(days=float(value))
    else:
        text = nfkc(str(value))
        m = _DATE_TEXT.match(text) or _DATE_COMPACT.match(text)
        if not m:
            raise ValueError(f"“{text[:30]}”不是可识别的日期（可写作 2026-12-01、2026/12/1 或 2026年12月1日）")
        parts = [int(p) if p else 0 for p in m.groups()] + [0, 0, 0]
        try:
            result = datetime(*parts[:6])
        except ValueError:
            raise ValueError(f"“{text[:30]}”不是有效的日期") from None
    if result.microsecond:
        result = (result + timedelta(microseconds=500_000)).replace(microsecond=0)
    if not MIN_YEAR <= result.year <= MAX_YEAR:
        raise ValueError(f"日期 {result:%Y-%m-%d} 超出合理范围（{MIN_YEAR}—{MAX_YEAR} 年）")
    return result


def parse_date(value) -> date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


_YES = {"是", "y", "yes", "true", "1", "√", "✓", "逾期", "已逾期"}
_NO = {"否", "n", "no", "false", "0", "×", "✗", "未逾期", "无"}


def parse_yes_no(value) -> bool | None:
    text = nfkc(cell_text(value)).lower()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"“{text[:20]}”应为“是”或“否”")


# ---------------------------------------------------------------- vocabularies

_CATEGORY_LOOKUP: dict[str, str] = {}
for _cat in CATEGORIES:
    _CATEGORY_LOOKUP[_cat] = _cat
    for _part in _cat.split("/"):
        _CATEGORY_LOOKUP.setdefault(_part, _cat)


def match_category(value) -> str:
    text = _SPACES.sub("", nfkc(cell_text(value)))
    if not text:
        raise ValueError("类别为空")
    found = _CATEGORY_LOOKUP.get(text) or _CATEGORY_LOOKUP.get(text.removesuffix("隐患").removesuffix("类"))
    if not found:
        raise ValueError(f"类别“{text[:20]}”不在隐患类别表中（可选：{'、'.join(CATEGORIES)}）")
    return found


def match_severity(value) -> str:
    text = _SPACES.sub("", nfkc(cell_text(value)))
    if not text:
        return SEVERITIES[0]
    stripped = text.removesuffix("隐患").removesuffix("事故隐患")
    if stripped in SEVERITIES:
        return stripped
    raise ValueError(f"等级“{text[:20]}”无效（应为：{'、'.join(SEVERITIES)}）")


_STATE_LOOKUP: dict[str, str] = {}
for _key, _state in STATES.items():
    _STATE_LOOKUP[_state.label] = _key
    _STATE_LOOKUP[_key] = _key
_STATE_LOOKUP.setdefault("不属实", "rejected")  # the other side exit shares the rejected state


def match_state(value, default: str | None = None) -> str:
    """A state key from its label (待核实 …) or key (reported …)."""
    text = _SPACES.sub("", nfkc(cell_text(value)))
    if not text and default:
        return default
    key = _STATE_LOOKUP.get(text) or _STATE_LOOKUP.get(text.lower())
    if not key:
        labels = "、".join(s.label for s in STATES.values())
        raise ValueError(f"整改状态“{text[:20]}”无效（应为：{labels}）" if text else f"整改状态为空（应为：{labels}）")
    return key


def overdue_now(state: str, deadline: date | None, today: date) -> bool:
    """Open and past its 整改时限: what the --overdue filter selects and what nudges chase."""
    return deadline is not None and state in OPEN_STATES and deadline < today


def late(state: str, deadline: date | None, closed_at: datetime | None, today: date) -> bool:
    """The ledger's 是否逾期: overdue now, or closed (销号) after the 整改时限."""
    if deadline is None:
        return False
    if overdue_now(state, deadline, today):
        return True
    return state == "closed" and closed_at is not None and closed_at.date() > deadline
