"""Ledger in and out: export of 10,000 hazards to .xlsx and import of that file into a fresh DB.

Targets (issue 3): export of 10,000 rows ≤ 5 s, import of 10,000 rows ≤ 10 s. Each is compared in
the same run with a baseline on the same data:
  - export: openpyxl's normal (in-memory, non write-only) workbook with the same columns, bold
    header and date formats, fed by the same query;
  - import: the same file read with openpyxl's normal mode and each row added through the ORM and
    committed on its own (the straightforward way), with the same parsing but no file-level checks.

    /work/venv/bin/python bench/ledger_io.py [--hazards 10000] [--skip-baseline]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.ledger.columns import (  # noqa: E402
    CATEGORIES, COLUMNS, HEADER_LOOKUP, cell_text, match_category, match_severity, match_state,
    normalize_header, parse_date, parse_datetime,
)
from bot.ledger.listing import iter_rows  # noqa: E402
from bot.ledger.xlsx import export, import_ledger  # noqa: E402
from bot.storage.db import make_engine, session_factory, upgrade  # noqa: E402
from bot.storage.models import Hazard, HazardHistory, Unit  # noqa: E402

NOW = datetime(2026, 11, 22, 9, 0, 0)
UNIT_NAMES = [f"IO街道{i}" for i in range(8)] + [f"IO部门{i}" for i in range(12)]
STATES = ["reported"] * 8 + ["accepted"] * 7 + ["rectifying"] * 12 + ["awaiting_acceptance"] * 5 + \
    ["closed"] * 58 + ["rejected"] * 7 + ["duplicate"] * 3
PLACES = ["幸福小区3栋楼道", "城东农贸市场", "工业园区B区", "和平路88号餐馆", "新华街群租房", "滨江学校"]
WORDS = "楼道电动车充电 消防通道堵塞 燃气软管老化 违规住人 灭火器过期 配电箱无盖 危化品混存 脚手架无防护".split()


def make_db(path: Path):
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        existing = set(s.scalars(select(Unit.name)))
        s.add_all(Unit(name=n, kind="township" if "街道" in n else "department")
                  for n in UNIT_NAMES if n not in existing)
    return factory


def populate(factory, n: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with factory() as s, s.begin():
        ids = {name: uid for uid, name in s.execute(select(Unit.id, Unit.name))}
        towns = [ids[n] for n in UNIT_NAMES if "街道" in n]
        depts = [ids[n] for n in UNIT_NAMES if "部门" in n]
        rows = []
        for i in range(n):
            reported = NOW - timedelta(days=rng.randint(0, 720), minutes=rng.randint(0, 1440))
            state = rng.choice(STATES)
            days = rng.choice((7, 30))
            deadline = (reported + timedelta(days=days)).date() if state != "reported" else None
            rows.append({
                "code": f"YH-{reported:%Y%m%d}-{i:05d}",
                "description": "，".join(rng.sample(WORDS, 3)) + "，请尽快处理。" * 4,
                "category": rng.choice(CATEGORIES), "severity": rng.choice(("一般",) * 9 + ("重大",)),
                "place": rng.choice(PLACES), "state": state, "source": rng.choice(("随手拍", "网格巡查", "检查")),
                "reported_at": reported, "department_id": rng.choice(depts),
                "territorial_id": rng.choice(towns),
                "reporter_name": "举报人", "reporter_contact": "13800000000", "anonymous": False,
                "responsible_unit": f"责任单位{rng.randint(1, 300)}", "responsible_person": "王五",
                "measures": "立即清理，加装设施，落实巡查" if deadline else "", "funds": "0.5万元" if deadline else "",
                "deadline": deadline,
                "closed_at": reported + timedelta(days=5) if state == "closed" else None,
                "updated_at": NOW,
            })
        s.execute(insert(Hazard), rows)


def baseline_export(session, path: Path) -> int:
    """Same columns and formats, openpyxl's normal in-memory workbook."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "隐患台账"
    ws.append([c.header for c in COLUMNS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    count = 0
    for count, r in enumerate(iter_rows(session, None, NOW.date()), start=1):
        ws.append([count, r.code, r.description, r.category, r.severity, r.place, r.territorial, r.department,
                   r.reported_at, r.source, r.responsible_unit, r.responsible_person, r.measures, r.funds,
                   r.deadline, r.state, r.closed_at, "是" if r.late else "否"])
        ws.cell(count + 1, 9).number_format = "yyyy-mm-dd hh:mm"
        ws.cell(count + 1, 17).number_format = "yyyy-mm-dd hh:mm"
    wb.save(path)
    return count


def baseline_import(factory, path: Path) -> int:
    """Normal-mode openpyxl, one ORM insert and one commit per row."""
    import openpyxl

    ws = openpyxl.load_workbook(path).active
    rows = ws.iter_rows(values_only=True)
    keys = [HEADER_LOOKUP.get(normalize_header(h)) for h in next(rows)]
    count = 0
    with factory() as s:
        units = {name: uid for uid, name in s.execute(select(Unit.id, Unit.name))}
        for values in rows:
            rec = dict(zip(keys, values))
            state = match_state(rec["state"])
            h = Hazard(
                code=cell_text(rec["code"]), description=cell_text(rec["description"]),
                category=match_category(rec["category"]), severity=match_severity(rec["severity"]),
                place=cell_text(rec["place"]), state=state, source=cell_text(rec["source"]),
                reported_at=parse_datetime(rec["reported_at"]),
                department_id=units.get(cell_text(rec["department"])),
                territorial_id=units.get(cell_text(rec["territorial"])),
                responsible_unit=cell_text(rec["responsible_unit"]),
                responsible_person=cell_text(rec["responsible_person"]), measures=cell_text(rec["measures"]),
                funds=cell_text(rec["funds"]), deadline=parse_date(rec["deadline"]),
                closed_at=parse_datetime(rec["closed_at"]), updated_at=NOW,
            )
            s.add(h)
            s.flush()
            s.add(HazardHistory(hazard_id=h.id, at=NOW, actor_label="bench", to_state=state, note="导入"))
            s.commit()
            count += 1
    return count


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def peak_mb(fn, *args) -> float:
    """Peak Python memory allocated while fn runs (a separate, slower run under tracemalloc)."""
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=int, default=10_000)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = make_db(tmp / "source.db")
        t_gen, _ = timed(populate, source, args.hazards)
        print(f"generated {args.hazards:,} hazards in {t_gen:.2f} s")

        xlsx = tmp / "ledger.xlsx"
        with source() as s:
            t_export, n = timed(export, s, xlsx, None, NOW)
        print(f"export (write-only): {n:,} rows in {t_export:.2f} s, {xlsx.stat().st_size / 1e6:.1f} MB"
              f"  — target ≤ 5 s: {'met' if t_export <= 5 else 'MISSED'}")

        fresh = make_db(tmp / "fresh.db")
        with fresh() as s:
            t_import, report = timed(import_ledger, s, xlsx, NOW, "bench")
            s.commit()
        assert report.ok, report.text()
        with fresh() as s:
            stored = s.scalar(select(func.count(Hazard.id)))
        print(f"import (validated, one transaction): {report.imported:,} rows in {t_import:.2f} s"
              f" (stored {stored:,})  — target ≤ 10 s: {'met' if t_import <= 10 else 'MISSED'}")

        if args.skip_baseline:
            return
        with source() as s:
            t_base_export, _ = timed(baseline_export, s, tmp / "baseline.xlsx")
        print(f"export baseline (openpyxl normal mode): {t_base_export:.2f} s"
              f"  — write-only export is {t_base_export / t_export:.2f}× as fast")
        with source() as s:
            mem = peak_mb(export, s, tmp / "m1.xlsx", None, NOW)
            mem_base = peak_mb(baseline_export, s, tmp / "m2.xlsx")
        print(f"export peak memory: write-only {mem:.0f} MB, normal mode {mem_base:.0f} MB"
              f"  — {mem_base / mem:.1f}× less")
        t_base_import, _ = timed(baseline_import, make_db(tmp / "fresh2.db"), xlsx)
        print(f"import baseline (normal mode, ORM, commit per row): {t_base_import:.2f} s"
              f"  — validated bulk import is {t_base_import / t_import:.2f}× as fast")


if __name__ == "__main__":
    main()
