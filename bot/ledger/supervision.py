"""督办事项 (supervision items): a task with an owner and a deadline, created by an admin or a leader
in chat or imported from an .xlsx, marked done by its owner, the owner's unit leader or an admin.

Codes are DB-YYYYMMDD-NNNN (local date + per-day sequence). As with hazard receipt codes, two
writers may race to the same code: the unique constraint makes the loser's transaction fail and
run_with_code_retry() runs the whole unit of work again.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.ledger.columns import cell_text, normalize_header, parse_date
from bot.ledger.listing import LedgerError
from bot.ledger.outbox import enqueue
from bot.ledger.people import PeopleError, find_person, unit_by_name
from bot.ledger.xlsx_read import HEADER_SCAN_ROWS, MAX_ROWS, LedgerFileError, _check_archive, _fill_merged, \
    _sheet_cells, _sniff
from bot.storage.db import transaction
from bot.storage.models import Person, SupervisionItem, Unit

log = logging.getLogger(__name__)

CODE_PREFIX = "DB"
CODE_RETRIES = 5
T = TypeVar("T")


class SupervisionError(LedgerError):
    """A problem phrased for the user (Chinese)."""


# ---------------------------------------------------------------- codes


def next_code(session: Session, day: date) -> str:
    prefix = f"{CODE_PREFIX}-{day:%Y%m%d}-"
    last = session.scalar(select(func.max(SupervisionItem.code)).where(SupervisionItem.code.like(prefix + "%")))
    seq = int(last[len(prefix):]) + 1 if last else 1
    return f"{prefix}{seq:04d}"


def normalize_code(text: str) -> str:
    """'db-20261122-0001' / 'DB202611220001' -> 'DB-20261122-0001' ('' when it is not a code)."""
    raw = re.sub(r"[\s_－—]", "-", text.strip().upper())
    m = re.fullmatch(r"DB-?(\d{8})-?(\d{4,})", raw)
    return f"DB-{m.group(1)}-{m.group(2)}" if m else ""


def run_with_code_retry(factory: sessionmaker, work: Callable[[Session], T]) -> T:
    """work(session) in one transaction, run again when a concurrent writer took the same code."""
    for attempt in range(CODE_RETRIES):
        try:
            with transaction(factory) as session:
                return work(session)
        except IntegrityError:
            if attempt == CODE_RETRIES - 1:
                raise
            log.info("supervision code taken by a concurrent writer; retrying (%d)", attempt + 1)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- create / done / list


def can_create(actor: Person | None) -> bool:
    return actor is not None and actor.has_role("admin", "leader")


def create_item(session: Session, task: str, owner: Person, deadline: date, actor: Person | None,
                now: datetime, unit: Unit | None = None) -> SupervisionItem:
    """A new open item; the owner is told through the outbox in the same transaction.
    actor None means the system (an import); otherwise only admins and leaders may create."""
    task = (task or "").strip()
    if actor is not None and not can_create(actor):
        raise SupervisionError("只有安委办管理员和领导可以交办督办事项。")
    if not task:
        raise SupervisionError("督办事项内容不能为空。")
    if deadline is None:
        raise SupervisionError("请给出办结时限。")
    item = SupervisionItem(
        code=next_code(session, now.date()), task=task, owner_id=owner.id,
        unit_id=unit.id if unit is not None else owner.unit_id, deadline=deadline, state="open",
        created_by=actor.id if actor is not None else None, created_at=now, note="",
    )
    session.add(item)
    session.flush()  # a code taken meanwhile fails here: IntegrityError, retried by the caller
    short = task if len(task) <= 60 else task[:60] + "…"
    enqueue(session, f"sv-new:{item.code}:person:{owner.id}",
            f"【督办事项】{item.code}\n{short}\n办结时限：{deadline:%Y-%m-%d}\n办结后请发送：/sv done {item.code} 办理情况",
            now, person_id=owner.id)
    return item


def item_by_code(session: Session, code: str) -> SupervisionItem | None:
    norm = normalize_code(code)
    return session.scalar(select(SupervisionItem).where(SupervisionItem.code == norm)) if norm else None


def _unit_leader_ids(session: Session, item: SupervisionItem) -> set[int]:
    owner = session.get(Person, item.owner_id)
    ids = {u for u in (item.unit_id, owner.unit_id if owner else None) if u is not None}
    return {leader for (leader,) in session.execute(select(Unit.leader_id).where(Unit.id.in_(ids)))
            if leader is not None} if ids else set()


def can_finish(session: Session, item: SupervisionItem, actor: Person) -> bool:
    return (actor.id == item.owner_id or actor.has_role("admin")
            or actor.id in _unit_leader_ids(session, item))


@dataclass
class DoneOutcome:
    item: SupervisionItem
    changed: bool  # False: it was done already


def mark_done(session: Session, code: str, actor: Person, now: datetime, note: str = "") -> DoneOutcome:
    """Close an item (owner, their unit leader, or an admin). Done twice is not an error."""
    item = item_by_code(session, code)
    if item is None:
        raise SupervisionError(f"没有找到督办事项 {code.strip()[:30]}。")
    if not can_finish(session, item, actor):
        raise SupervisionError(f"督办事项 {item.code} 不是您负责的，只有责任人、其单位领导或安委办可以办结。")
    if item.state == "done":
        return DoneOutcome(item, False)
    item.state, item.done_at, item.note = "done", now, (note or "").strip()
    session.flush()
    if item.created_by and item.created_by != actor.id:
        enqueue(session, f"sv-done:{item.code}:person:{item.created_by}",
                f"督办事项 {item.code} 已由{actor.name}办结。" + (f"\n说明：{item.note[:200]}" if item.note else ""),
                now, person_id=item.created_by)
    return DoneOutcome(item, True)


def list_items(session: Session, owner: Person | None = None, open_only: bool = True) -> list[SupervisionItem]:
    query = select(SupervisionItem)
    if owner is not None:
        query = query.where(SupervisionItem.owner_id == owner.id)
    if open_only:
        query = query.where(SupervisionItem.state == "open")
    return list(session.scalars(query.order_by(SupervisionItem.deadline, SupervisionItem.code)))


def deadline_text(item: SupervisionItem, today: date) -> str:
    if item.state == "done":
        return f"已办结 {item.done_at:%m-%d}" if item.done_at else "已办结"
    days = (item.deadline - today).days
    if days < 0:
        return f"限 {item.deadline:%Y-%m-%d}（逾期 {-days} 天）"
    if days <= 3:
        return f"限 {item.deadline:%Y-%m-%d}（剩 {days} 天）"
    return f"限 {item.deadline:%Y-%m-%d}"


# ---------------------------------------------------------------- xlsx import

HEADERS = {
    "task": ("督办事项", "事项", "督办内容", "事项内容", "任务"),
    "owner": ("责任人", "负责人"),
    "deadline": ("办结时限", "时限", "完成时限", "期限"),
    "unit": ("单位", "责任单位"),
}
_LOOKUP = {normalize_header(h): key for key, names in HEADERS.items() for h in names}
_REQUIRED = ("task", "owner", "deadline")


@dataclass
class ImportReport:
    file: str
    rows: int = 0
    errors: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    actor_label: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        if self.errors:
            head = f"{self.file}：{len(self.errors)} 处错误，未导入任何督办事项（共 {self.rows} 行数据）。"
            return "\n".join([head, *self.errors])
        if not self.codes:
            return f"{self.file}：没有督办事项数据。"
        return f"{self.file}：已导入 {len(self.codes)} 条督办事项（{self.codes[0]} … {self.codes[-1]}），操作人：{self.actor_label}。"


def _read_rows(path: Path) -> tuple[int, dict[str, int], list[tuple[int, list]]]:
    """(header row, column key -> index, data rows) of the first sheet holding a 督办事项 header."""
    import openpyxl

    _sniff(path)
    _check_archive(path)
    try:
        with path.open("rb") as f:
            wb = openpyxl.load_workbook(f, read_only=True, data_only=True)
            try:
                for ws in wb.worksheets:
                    if not hasattr(ws, "_get_source"):
                        continue
                    rows, merged = _sheet_cells(wb, ws, MAX_ROWS)
                    _fill_merged(rows, merged)
                    for number in sorted(rows)[:HEADER_SCAN_ROWS]:
                        found: dict[str, int] = {}
                        for i, v in enumerate(rows[number]):
                            key = _LOOKUP.get(normalize_header(v)) if v is not None else None
                            if key and key not in found:
                                found[key] = i
                        if all(k in found for k in _REQUIRED):
                            return number, found, [(n, rows[n]) for n in sorted(rows) if n > number]
            finally:
                wb.close()
    except LedgerFileError:
        raise
    except Exception as exc:  # openpyxl raises many kinds on malformed parts
        raise LedgerFileError(f"{path.name} 无法作为 xlsx 工作簿读取（{type(exc).__name__}: {exc}）") from None
    raise LedgerFileError(f"{path.name} 中未找到督办事项表头：需要“督办事项”“责任人”“办结时限”三列")


def import_items(session: Session, path: str | Path, now: datetime, actor_label: str) -> ImportReport:
    """Validate every row; write all of them only when none has an error."""
    path = Path(path)
    _header, columns, rows = _read_rows(path)
    report = ImportReport(file=path.name, actor_label=actor_label)
    valid: list[tuple[str, Person, date, Unit | None]] = []

    def cell(values: list, key: str):
        i = columns.get(key)
        return values[i] if i is not None and i < len(values) else None

    for number, values in rows:
        task, owner_ref, unit_ref = (cell_text(cell(values, k)) for k in ("task", "owner", "unit"))
        raw_deadline = cell(values, "deadline")
        problems: list[str] = []
        if not task:
            problems.append("督办事项为空")
        owner = None
        if not owner_ref:
            problems.append("责任人为空")
        else:
            try:
                owner = find_person(session, owner_ref)
            except PeopleError as exc:
                problems.append(str(exc).rstrip("。"))
        deadline = None
        try:
            deadline = parse_date(raw_deadline)
            if deadline is None:
                problems.append("办结时限为空")
        except ValueError as exc:
            problems.append(f"办结时限{exc}")
        unit = None
        if unit_ref:
            unit = unit_by_name(session, unit_ref)
            if unit is None:
                problems.append(f"没有名为「{unit_ref}」的单位")
        report.rows += 1
        if problems:
            report.errors.append(f"第 {number} 行：" + "；".join(problems) + "。")
        else:
            valid.append((task, owner, deadline, unit))
    if report.errors:
        return report
    for task, owner, deadline, unit in valid:
        report.codes.append(create_item(session, task, owner, deadline, None, now, unit=unit).code)
    return report
