"""Cadre ledger queries on 100,000 hazards in SQLite: "my open hazards" and "overdue in my unit".

Generates a ledger in a temporary SQLite file (the real migrations, WAL mode), with ~30 units
(departments, townships and their communities) and ~300 people, then times each query as the
/mine and /unit commands run it (first page of 20 + the total count, in a fresh session) over
200 runs with random people and units. The baseline is the same code on the same data after
dropping the composite indexes (ix_hazards_dept_state, _terr_state, _resp_state, _grid_state,
_state_deadline): what a scan costs.

    /work/venv/bin/python bench/ledger_queries.py [--hazards 100000] [--runs 200]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.ledger.queries import count_hazards, list_hazards  # noqa: E402
from bot.storage.db import make_engine, session_factory, upgrade  # noqa: E402
from bot.storage.models import Hazard, Person, Unit  # noqa: E402

TODAY = date(2026, 11, 22)
CATEGORIES = ["消防", "燃气", "危险化学品", "道路交通", "建筑施工", "特种设备", "电动自行车", "九小场所",
              "三合一/多合一", "出租房/群租房", "有限空间", "工贸企业", "其他"]
# reports of the last 60 days are mostly still open; older ones mostly closed, a few lingering (overdue)
RECENT_WEIGHTS = {"reported": 15, "accepted": 15, "rectifying": 30, "awaiting_acceptance": 10, "closed": 20,
                  "rejected": 7, "duplicate": 3}
OLD_WEIGHTS = {"reported": 0.5, "accepted": 1, "rectifying": 3, "awaiting_acceptance": 0.5, "closed": 85,
               "rejected": 7, "duplicate": 3}
INDEXES = ("ix_hazards_dept_state", "ix_hazards_terr_state", "ix_hazards_resp_state", "ix_hazards_grid_state",
           "ix_hazards_state_deadline")


def build(path: Path, n_hazards: int, seed: int = 7):
    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        s.execute(text("DELETE FROM routing_rules"))  # whatever a seeding migration added: start clean
        office = Unit(name="B区安委办", kind="office")
        s.add(office)
        s.flush()
        depts = [Unit(name=f"B部门{i}", kind="department") for i in range(11)]
        towns = [Unit(name=f"B街道{i}", kind="township") for i in range(6)]
        s.add_all(depts + towns)
        s.flush()
        communities = [Unit(name=f"B社区{t}-{i}", kind="community", parent_id=towns[t].id)
                       for t in range(6) for i in range(2)]
        s.add_all(communities)
        s.flush()
        units = depts + towns + communities
        people = []
        for i in range(300):
            unit = rng.choice(units)
            role = "grid" if unit.kind == "community" else rng.choice(["cadre", "cadre", "cadre", "leader"])
            people.append(Person(name=f"人员{i}", phone=f"138{i:08d}", unit_id=unit.id, roles=role, active=True))
        s.add_all(people)
        s.flush()
        grid_by_comm = {c.id: [p.id for p in people if p.unit_id == c.id] or [None] for c in communities}
        staff_by_dept = {d.id: [p.id for p in people if p.unit_id == d.id] or [None] for d in depts}
    start = datetime(2024, 11, 22)
    rows = []
    for i in range(n_hazards):
        reported = start + timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        weights = RECENT_WEIGHTS if (TODAY - reported.date()).days <= 60 else OLD_WEIGHTS
        state = rng.choices(list(weights), list(weights.values()))[0]
        dept = rng.choice(depts).id
        comm = rng.choice(communities).id
        severity = "重大" if rng.random() < 0.05 else "一般"
        handled = state not in ("reported", "rejected", "duplicate")
        rows.append({
            "code": f"YH-{reported:%Y%m%d}-{i:06d}", "description": "楼道内电动自行车充电，堵塞疏散通道" * 2,
            "category": rng.choice(CATEGORIES), "severity": severity, "place": f"B社区 {i % 500} 号",
            "state": state, "source": "随手拍", "reported_at": reported, "department_id": dept,
            "territorial_id": comm, "grid_person_id": rng.choice(grid_by_comm[comm]),
            "responsible_person_id": rng.choice(staff_by_dept[dept]) if handled else None,
            "deadline": (reported + timedelta(days=30 if severity == "重大" else 7)).date() if handled else None,
            "updated_at": reported, "secret_hash": "", "anonymous": True,
        })
    with factory() as s, s.begin():
        for k in range(0, len(rows), 10_000):
            s.execute(insert(Hazard), rows[k : k + 10_000])
    return engine, factory, [p.id for p in people], [u.id for u in depts + towns]


def timed(factory, runs: int, make_query, rng) -> list[float]:
    out = []
    for _ in range(runs):
        query = make_query(rng)
        t0 = time.perf_counter()
        with factory() as s:
            query(s)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hazards", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        engine, factory, people, units = build(Path(tmp) / "bench.db", args.hazards)
        with factory() as s:
            responsible = [pid for pid in people if s.scalar(
                select(Hazard.id).where(Hazard.responsible_person_id == pid).limit(1)) is not None]
            grid = [pid for pid in people if s.scalar(
                select(Hazard.id).where(Hazard.grid_person_id == pid).limit(1)) is not None]
            n_open = count_hazards(s, open_only=True)
            n_overdue = count_hazards(s, overdue=True, today=TODAY)
        print(f"built {args.hazards:,} hazards ({n_open:,} open, {n_overdue:,} overdue), {len(people)} people, "
              f"{len(units)} department/township units in {time.perf_counter() - t0:.1f} s")

        def mine(rng):
            pid = rng.choice(responsible + grid)
            return lambda s: (list_hazards(s, person=pid, open_only=True, limit=20),
                              count_hazards(s, person=pid, open_only=True))

        def overdue_unit(rng):
            uid = rng.choice(units)
            return lambda s: (list_hazards(s, unit_id=uid, overdue=True, today=TODAY, limit=20),
                              count_hazards(s, unit_id=uid, overdue=True, today=TODAY))

        results = {}
        for label in ("indexed", "baseline (composite indexes dropped)"):
            if label.startswith("baseline"):
                with engine.begin() as conn:
                    for name in INDEXES:
                        conn.execute(text(f"DROP INDEX {name}"))
            for qname, q in (("my open hazards", mine), ("overdue in my unit", overdue_unit)):
                timed(factory, 10, q, random.Random(1))  # warm the page cache
                times = timed(factory, args.runs, q, random.Random(2))
                results[(label, qname)] = times
                print(f"{label:38s} {qname:20s} p50 {pct(times, 50):7.2f} ms   p95 {pct(times, 95):7.2f} ms")
        engine.dispose()
        ok = all(pct(results[("indexed", q)], 95) <= 20 for q in ("my open hazards", "overdue in my unit"))
        print("target p95 <= 20 ms:", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
