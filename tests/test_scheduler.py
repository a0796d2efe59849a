"""schedules.scheduler: job sync, materialising into the outbox, and catch-up after downtime —
all driven by a FakeClock, with schedulers started paused (nothing waits for real time)."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from bot.clock import FakeClock
from bot.storage.db import session_factory
from bot.storage.models import Outbox
from schedules.calendar import HolidayCalendar
from schedules.scheduler import (
    RESYNC_JOB,
    Runtime,
    build_scheduler,
    catch_up,
    install,
    materialise,
    start_scheduler,
    sync_jobs,
)
from tests.schedule_world import OFFICE_GROUP, district, hazard, schedule_config, shift

T0 = datetime(2026, 9, 29, 12, 0)


@pytest.fixture
def world(db_engine):
    factory = session_factory(db_engine)
    with factory() as s:
        d = district(s)
        shift(s, date(2026, 10, 1), d.leader, role="leader")
        shift(s, date(2026, 10, 1), d.staff)
        hazard(s, "YH-20260901-0001", date(2026, 10, 2), d.owner, d.town)
        s.commit()
    return factory, d


@pytest.fixture
def runtime(world):
    config = schedule_config()
    rt = Runtime(db=world[0], config=config, calendar=HolidayCalendar(config.schedules), clock=FakeClock(T0))
    install(rt)
    yield rt
    install(None)


def paused(db_engine, config, memory=False):
    scheduler = build_scheduler(db_engine, config, scheduler_class=BackgroundScheduler,
                                jobstore=MemoryJobStore() if memory else None)
    scheduler.start(paused=True)
    return scheduler


def stop(scheduler):
    """Shut a paused BackgroundScheduler down without its thread processing the (really past) jobs
    once more on the way out: detach the job store first (jobs stay in the database)."""
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=False)


def outbox(factory):
    with factory() as s:
        return {row.idempotency_key: row for row in s.scalars(select(Outbox))}


def test_sync_is_idempotent_and_removes_unplanned_jobs(db_engine, world, runtime):
    factory, _ = world
    scheduler = paused(db_engine, runtime.config)
    try:
        with factory() as s:
            first = sync_jobs(scheduler, s, runtime.config, runtime.calendar, T0)
            jobs = {j.id: j for j in scheduler.get_jobs()}
            assert first.added == len(jobs) > 5 and first.removed == 0
            assert f"duty-eve:2026-10-01:person:{world[1].staff.id}" in jobs
            assert "nudge:YH-20260901-0001:2026-10-02:T-1" in jobs
            job = jobs["nudge:YH-20260901-0001:2026-10-02:T-1"]
            assert job.next_run_time.replace(tzinfo=None) == datetime(2026, 10, 1, 9, 0)
            assert job.trigger.run_date.utcoffset() == timedelta(hours=8)  # Asia/Shanghai
            second = sync_jobs(scheduler, s, runtime.config, runtime.calendar, T0)
            assert (second.added, second.updated, second.removed, second.unchanged) == (0, 0, 0, first.added)

            from bot.storage.models import Hazard

            s.scalar(select(Hazard)).state = "awaiting_acceptance"  # rectified: nudges must go
            s.commit()
            third = sync_jobs(scheduler, s, runtime.config, runtime.calendar, T0)
            left = {j.id for j in scheduler.get_jobs()}
            assert third.removed > 0 and not any("YH-20260901-0001" in k for k in left)
            assert f"duty-eve:2026-10-01:person:{world[1].staff.id}" in left
    finally:
        stop(scheduler)


def test_materialise_writes_once_and_skips_pushes_no_longer_planned(world, runtime):
    factory, d = world
    key, due = f"duty-eve:2026-10-01:person:{d.staff.id}", datetime(2026, 9, 30, 18, 0)
    runtime.clock.now = due
    assert materialise(key, due.isoformat()) is True
    assert materialise(key, due.isoformat()) is False  # the job fired twice: one row
    rows = outbox(factory)
    assert list(rows) == [key]
    assert rows[key].person_id == d.staff.id and rows[key].status == "pending" and "到岗" in rows[key].text
    # a push whose cause has gone is not written
    assert materialise("nudge:YH-20260901-0001:2026-09-29:T-3", datetime(2026, 9, 26, 9).isoformat()) is False
    # a group push goes to the configured target's channel and chat
    group_key = "checkin-late:2026-10-01:2:office"
    runtime.clock.now = datetime(2026, 10, 1, 10, 0)
    assert materialise(group_key, datetime(2026, 10, 1, 10, 0).isoformat()) is True
    row = outbox(factory)[group_key]
    assert (row.channel, row.recipient, row.person_id) == ("console", "office-chat", None)


def test_restart_within_grace_enqueues_and_older_are_recorded_missed(db_engine, world, runtime):
    factory, d = world
    before = paused(db_engine, runtime.config)  # the SQLAlchemy job store in the ledger database
    with factory() as s:
        sync_jobs(before, s, runtime.config, runtime.calendar, T0)
    stop(before)  # the process dies ...

    runtime.clock.now = datetime(2026, 10, 1, 12, 0)  # ... and comes back two days later
    after = paused(db_engine, runtime.config)
    try:
        result = catch_up(after, runtime)
        eve = f"duty-eve:2026-10-01:person:{d.staff.id}"  # 09-30 18:00: 18 h late, beyond 6 h grace
        late_office = next(k for k in result.enqueued if k.endswith(":office"))  # 10-01 10:00: within grace
        assert eve in result.missed and "nudge:YH-20260901-0001:2026-10-02:T-1" in result.enqueued
        assert late_office.startswith("checkin-late:2026-10-01:")
        rows = outbox(factory)
        assert rows[eve].status == "missed" and "超过宽限" in rows[eve].last_error
        assert rows[late_office].status == "pending"
        summary = rows[result.summary_key]
        assert summary.recipient == "office-chat" and f"{len(result.missed)} 条" in summary.text
        assert not [j for j in after.get_jobs() if j.next_run_time.replace(tzinfo=None) <= runtime.clock.now]

        again = catch_up(after, runtime)  # nothing twice
        assert again.enqueued == again.missed == [] and again.summary_key is None
        with factory() as s:
            report = sync_jobs(after, s, runtime.config, runtime.calendar, runtime.clock())
        assert report.added > 0 and eve not in {j.id for j in after.get_jobs()}
        assert len(outbox(factory)) == len(rows)
    finally:
        stop(after)


def test_start_scheduler_on_asyncio_catches_up_syncs_and_adds_the_daily_resync(db_engine, world, runtime):
    async def scenario():
        scheduler = build_scheduler(db_engine, runtime.config, jobstore=MemoryJobStore())
        try:
            caught, report = start_scheduler(scheduler, runtime)
            ids = {j.id for j in scheduler.get_jobs()}
            return caught, report, ids, scheduler.get_job(RESYNC_JOB).trigger
        finally:
            scheduler.shutdown(wait=False)

    caught, report, ids, trigger = asyncio.run(scenario())
    assert caught.enqueued == caught.missed == []
    assert report.added == len(ids) - 1 and RESYNC_JOB in ids
    assert "hour='0'" in str(trigger) and f"group:{OFFICE_GROUP}" not in ids
