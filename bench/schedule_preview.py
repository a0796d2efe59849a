"""`safeduty schedule preview` for a whole year: 200 people, 365 roster days, 5,000 open hazards.

Builds a ledger in a temporary SQLite file (the real migrations, WAL mode): 20 townships with a
leader each, 200 people, a roster for every day of 2026 (one 带班领导 + two 值班员, a few already
checked in), 5,000 open hazards (states accepted / rectifying / reported) with 整改时限 spread over
the year, and 200 open 督办事项. Then times:

- schedules.plan.plan() for 2026-01-01 … 2026-12-31 (target ≤ 2 s), best of --runs;
- the same through the CLI once (`safeduty schedule preview --json`, a fresh process, to /dev/null);
- a naive baseline in the same run: the same nudges and duty reminders derived with one query per
  day (shifts of the day, hazards due at T-n of the day, hazards overdue on the day), ORM objects.

    /work/venv/bin/python bench/schedule_preview.py [--hazards 5000] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Config  # noqa: E402
from bot.storage.db import make_engine, session_factory, upgrade  # noqa: E402
from bot.storage.models import DutyShift, Hazard, Person, SupervisionItem, Unit  # noqa: E402
from bot.storage.workflow import OPEN_STATES  # noqa: E402
from schedules.calendar import HolidayCalendar  # noqa: E402
from schedules.plan import plan  # noqa: E402

YEAR_START, YEAR_END = datetime(2026, 1, 1), datetime(2026, 12, 31, 23, 59, 59)
CONFIG_YAML = ("knowledge:\n  embedding:\n    provider: none\n"
               "schedules:\n  duty_groups: [区值班群]\n  office_groups: [区安委办工作群]\n"
               "  special_periods:\n    - {name: 汛期, start: '2026-06-01', end: '2026-09-30'}\n")


def config() -> Config:
    c = Config()
    c.knowledge.embedding.provider = "none"
    c.schedules.duty_groups = ["区值班群"]
    c.schedules.office_groups = ["区安委办工作群"]
    from bot.config import SpecialPeriod

    c.schedules.special_periods = [SpecialPeriod(name="汛期", start="2026-06-01", end="2026-09-30")]
    return c


def build(path: Path, n_hazards: int, seed: int = 7):
    rng = random.Random(seed)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        units = [Unit(name=f"第{i}街道", kind="township") for i in range(20)]
        s.add_all(units)
        s.flush()
        people = [Person(name=f"人员{i:03d}", phone=f"139{i:08d}", unit_id=units[i % 20].id,
                         roles="leader" if i < 20 else "cadre", active=True) for i in range(200)]
        s.add_all(people)
        s.flush()
        for i, u in enumerate(units):
            u.leader_id = people[i].id
        shifts = []
        day = YEAR_START.date()
        while day.year == 2026:
            start = datetime.combine(day, datetime.min.time()).replace(hour=8)
            crew = [(people[rng.randrange(20)], "leader")] + [(p, "staff") for p in rng.sample(people[20:], 2)]
            for p, role in crew:
                shifts.append(DutyShift(day=day, starts_at=start, ends_at=start + timedelta(hours=24), role=role,
                                        person_id=p.id, phone=p.phone, unit_id=p.unit_id, source="bench",
                                        checked_in_at=start if rng.random() < 0.5 else None))
            day += timedelta(days=1)
        s.add_all(shifts)
        states = ["reported", "accepted", "rectifying", "rectifying"]
        for i in range(n_hazards):
            deadline = YEAR_START.date() + timedelta(days=rng.randrange(365))
            reported = datetime.combine(deadline - timedelta(days=rng.randrange(7, 40)), datetime.min.time())
            owner = people[rng.randrange(20, 200)]
            unit = units[rng.randrange(20)]
            s.add(Hazard(code=f"YH-BENCH-{i:05d}", description=f"隐患描述 {i}", category="消防",
                         state=states[i % 4], reported_at=reported, territorial_id=unit.id,
                         responsible_unit=unit.name, responsible_person_id=owner.id,
                         responsible_person=owner.name, deadline=deadline, updated_at=reported))
        for i in range(200):
            s.add(SupervisionItem(code=f"DB-BENCH-{i:04d}", task=f"督办任务 {i}", owner_id=people[20 + i % 180].id,
                                  unit_id=units[i % 20].id, deadline=YEAR_START.date() + timedelta(days=rng.randrange(365)),
                                  state="open", created_at=YEAR_START, note=""))
    return engine, factory


def naive(factory, cfg: Config) -> int:
    """Per-day queries with ORM objects: duty-eve and hazard nudges only (a subset of plan())."""
    s_cfg = cfg.schedules
    count = 0
    with factory() as s:
        day = YEAR_START.date()
        while day <= YEAR_END.date():
            tomorrow = day + timedelta(days=1)
            if tomorrow.year == 2026:
                count += len({sh.person_id for sh in s.scalars(select(DutyShift).where(DutyShift.day == tomorrow))})
            for n in s_cfg.nudge_days_before:
                count += len(s.scalars(select(Hazard).where(
                    Hazard.state.in_([x for x in OPEN_STATES if x != "awaiting_acceptance"]),
                    Hazard.deadline == day + timedelta(days=n))).all())
            for h in s.scalars(select(Hazard).where(
                    Hazard.state.in_([x for x in OPEN_STATES if x != "awaiting_acceptance"]), Hazard.deadline < day)):
                count += 1
                if (day - h.deadline).days >= s_cfg.overdue_escalate_after_days:
                    count += 1
            day += timedelta(days=1)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hazards", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cfg = config()
    calendar = HolidayCalendar(cfg.schedules)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        t = time.perf_counter()
        engine, factory = build(data / "safeduty.db", args.hazards)
        print(f"built ledger: 200 people, 365 roster days, {args.hazards} open hazards, 200 督办事项 "
              f"in {time.perf_counter() - t:.1f} s")

        timings, pushes = [], []
        for _ in range(args.runs):
            with factory() as s:
                t = time.perf_counter()
                pushes = plan(s, cfg, calendar, YEAR_START, YEAR_END)
                timings.append(time.perf_counter() - t)
        best = min(timings)
        kinds: dict[str, int] = {}
        for p in pushes:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        print(f"plan() whole year: {len(pushes)} pushes in {best:.2f} s (best of {args.runs}; "
              f"runs {', '.join(f'{x:.2f}' for x in timings)}) — target ≤ 2 s: {'OK' if best <= 2 else 'MISSED'}")
        print("  by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))

        with factory() as s:
            t = time.perf_counter()
            fortnight = plan(s, cfg, calendar, datetime(2026, 12, 1), datetime(2026, 12, 14, 23, 59))
            print(f"plan() 14 days (the scheduler's sync horizon, 2026-12-01…14, most hazards overdue): "
                  f"{len(fortnight)} pushes in {time.perf_counter() - t:.2f} s")

        subset = sum(v for k, v in kinds.items() if k in ("duty-eve", "nudge", "nudge-overdue", "nudge-escalate"))
        t = time.perf_counter()
        naive_count = naive(factory, cfg)
        naive_s = time.perf_counter() - t
        print(f"naive baseline (per-day queries, duty-eve + hazard nudges only): {naive_count} pushes in "
              f"{naive_s:.2f} s; plan() derives {subset} of those kinds "
              f"({'same' if subset == naive_count else 'DIFFERENT'}) plus the rest — "
              f"speed-up ×{naive_s / best:.1f} for the whole plan")

        cfg_file = Path(tmp) / "config.yaml"
        cfg_file.write_text(CONFIG_YAML, encoding="utf-8")
        safeduty = Path(sys.executable).with_name("safeduty")
        cmd = ([str(safeduty)] if safeduty.exists() else [sys.executable, "-m", "bot.cli"]) + [
            "schedule", "preview", "--from", "2026-01-01", "--to", "2026-12-31", "--json",
            "--data-dir", str(data), "--config", str(cfg_file)]
        t = time.perf_counter()
        with open(os.devnull, "w") as sink:
            subprocess.run(cmd, check=True, stdout=sink, cwd=ROOT)
        cli_s = time.perf_counter() - t
        print(f"CLI `safeduty schedule preview --json` whole year (fresh process, to /dev/null): {cli_s:.2f} s "
              f"— target ≤ 2 s: {'OK' if cli_s <= 2 else 'MISSED'}")
        engine.dispose()


if __name__ == "__main__":
    main()
