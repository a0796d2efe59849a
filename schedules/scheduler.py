"""APScheduler wiring: one date job per planned push (job id = the push's idempotency key) in an
SQLAlchemyJobStore in the ledger database, so jobs survive a kill -9.

A job does not carry the text: when it fires, `materialise` re-derives the plan for that instant
and writes the push into the outbox only if it is still planned (a hazard rectified a minute ago is
not nudged). The outbox's unique key makes a job firing twice write once.

On start (`start_scheduler`), jobs that fell due while the process was down are handled before the
scheduler runs: within `grace_hours` they are enqueued now; older ones become Outbox rows with
status "missed" (same key, so never sent later) and one summary push tells the 安委办 — nothing is
silently dropped, nothing sent twice. APScheduler's own misfire handling (grace = grace_hours,
coalesce=False) only covers jobs that fall due while the scheduler is paused or busy.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import Config
from bot.ledger.outbox import enqueue
from bot.storage.models import Outbox
from schedules.plan import Push, _Recipients, plan

log = logging.getLogger(__name__)

RESYNC_JOB = "schedule-resync"
RESERVED = {RESYNC_JOB}
MISSED_LISTED = 10  # keys listed in the missed summary
PLAN_CACHE_SECONDS = 60  # jobs firing at the same instant share one derivation


@dataclass
class Runtime:
    """What job functions need; jobs in the store carry only (key, due), so they stay picklable."""

    db: sessionmaker
    config: Config
    calendar: object
    clock: Clock
    scheduler: object | None = None
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def planned_at(self, session: Session, due: datetime) -> dict[str, Push]:
        """The pushes planned for exactly `due`, cached briefly for jobs due at the same instant."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(due)
            if hit and abs((now - hit[0]).total_seconds()) <= PLAN_CACHE_SECONDS:
                return hit[1]
        found = {p.key: p for p in plan(session, self.config, self.calendar, due, due)}
        with self._lock:
            self._cache = {due: (now, found)}
        return found


_RUNTIME: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _RUNTIME
    _RUNTIME = runtime


def build_scheduler(engine: Engine, config: Config, scheduler_class=AsyncIOScheduler, jobstore=None):
    """A scheduler with its job store in the same database (APScheduler's own table)."""
    grace = max(1, int(config.schedules.grace_hours * 3600))  # None would mean "no limit"
    return scheduler_class(
        jobstores={"default": jobstore if jobstore is not None else SQLAlchemyJobStore(engine=engine)},
        job_defaults={"misfire_grace_time": grace, "coalesce": False, "max_instances": 1},
        timezone=ZoneInfo(config.bot.timezone),
    )


def _aware(config: Config, when: datetime) -> datetime:
    return when.replace(tzinfo=ZoneInfo(config.bot.timezone))


def _local(config: Config, when: datetime) -> datetime:
    return when.astimezone(ZoneInfo(config.bot.timezone)).replace(tzinfo=None)


def outbox_address(push: Push, config: Config) -> tuple[int | None, str, str]:
    """(person_id, channel, recipient) for the outbox row. A person's channel is resolved from the
    binding by the sender; a group needs a configured PushTarget (else the sender reports it)."""
    if push.person_id is not None:
        return push.person_id, "", ""
    target = next((t for t in config.schedules.targets if t.name == push.target), None)
    if target is None:
        return None, "", push.recipient
    return None, target.channel, target.chat


def write_push(session: Session, push: Push, config: Config, now: datetime) -> bool:
    person_id, channel, recipient = outbox_address(push, config)
    return enqueue(session, push.key, push.text, now, person_id=person_id, channel=channel,
                   recipient=recipient, not_before=max(push.time, now))


def record_missed(session: Session, push: Push, config: Config, now: datetime) -> bool:
    """An Outbox row with status "missed" under the push's key: reported, and never sent later."""
    if session.scalar(select(Outbox.id).where(Outbox.idempotency_key == push.key)) is not None:
        return False
    person_id, channel, recipient = outbox_address(push, config)
    session.add(Outbox(idempotency_key=push.key, person_id=person_id, channel=channel, recipient=recipient,
                       text=push.text, not_before=push.time, created_at=now, status="missed",
                       last_error=f"进程停止期间到期（{push.time:%Y-%m-%d %H:%M}），超过宽限未发送"))
    return True


# ---------------------------------------------------------------- sync


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped_done: int = 0  # planned, but already in the outbox


def _existing_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        found.update(session.scalars(select(Outbox.idempotency_key).where(Outbox.idempotency_key.in_(chunk))))
    return found


def sync_jobs(scheduler, session: Session, config: Config, calendar, now: datetime,
              horizon_days: int = 14) -> SyncReport:
    """Make the job store hold exactly one date job per push planned in [now, now + horizon]."""
    report = SyncReport()
    pushes = plan(session, config, calendar, now, now + timedelta(days=horizon_days))
    done = _existing_keys(session, [p.key for p in pushes])
    existing = {job.id: job for job in scheduler.get_jobs()}
    wanted: set[str] = set()
    for push in pushes:
        if push.key in done:
            report.skipped_done += 1
            continue
        wanted.add(push.key)
        run_at = _aware(config, push.time)
        args = (push.key, push.time.isoformat())
        job = existing.get(push.key)
        if job is not None and job.next_run_time == run_at and tuple(job.args) == args:
            report.unchanged += 1
            continue
        scheduler.add_job(materialise, trigger=DateTrigger(run_date=run_at), id=push.key, name=push.kind,
                          args=args, replace_existing=True)
        if job is None:
            report.added += 1
        else:
            report.updated += 1
    for key, job in existing.items():
        if key in wanted or key in RESERVED:
            continue
        if job.next_run_time is None or _local(config, job.next_run_time) > now:
            scheduler.remove_job(key)
            report.removed += 1
    return report


# ---------------------------------------------------------------- job functions


def materialise_push(session: Session, runtime: Runtime, key: str, due: datetime) -> bool:
    """Write the push `key` due at `due` into the outbox if it is still planned; True when written."""
    push = runtime.planned_at(session, due).get(key)
    if push is None:
        log.info("push %s no longer planned at %s; skipped", key, due)
        return False
    return write_push(session, push, runtime.config, runtime.clock())


def materialise(key: str, due_iso: str) -> bool:
    """The job function (referenced by name from the job store)."""
    runtime = _RUNTIME
    if runtime is None:
        raise RuntimeError("schedules.scheduler.install() was not called")
    with runtime.db() as session:
        written = materialise_push(session, runtime, key, datetime.fromisoformat(due_iso))
        session.commit()
    return written


def resync() -> None:
    """The daily job: re-derive the next horizon."""
    runtime = _RUNTIME
    if runtime is None or runtime.scheduler is None:
        return
    with runtime.db() as session:
        report = sync_jobs(runtime.scheduler, session, runtime.config, runtime.calendar, runtime.clock())
    log.info("schedule resync: %s", report)


# ---------------------------------------------------------------- catch-up on start


@dataclass
class CatchUp:
    enqueued: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # no longer planned (hazard rectified meanwhile)
    summary_key: str | None = None


def catch_up(scheduler, runtime: Runtime) -> CatchUp:
    """Handle jobs that fell due while the process was down (call before the scheduler runs)."""
    config, now = runtime.config, runtime.clock()
    grace = timedelta(hours=config.schedules.grace_hours)
    result = CatchUp()
    overdue = sorted(
        ((job, _local(config, job.next_run_time)) for job in scheduler.get_jobs()
         if job.id not in RESERVED and job.next_run_time is not None
         and _local(config, job.next_run_time) <= now),
        key=lambda pair: pair[1],
    )
    with runtime.db() as session:
        missed_pushes = []
        for job, due in overdue:
            push = runtime.planned_at(session, due).get(job.id)
            if push is None:
                result.stale.append(job.id)
            elif now - due <= grace:
                write_push(session, push, config, now)
                result.enqueued.append(job.id)
            else:
                if record_missed(session, push, config, now):
                    missed_pushes.append(push)
                result.missed.append(job.id)
        if missed_pushes:
            result.summary_key = f"missed-summary:{now:%Y-%m-%dT%H:%M}"
            lines = [f"{p.time:%m-%d %H:%M} {p.kind} → {p.recipient}" for p in missed_pushes[:MISSED_LISTED]]
            more = len(missed_pushes) - len(lines)
            text = (f"【推送补发报告】程序停止期间有 {len(missed_pushes)} 条推送已超过宽限（{config.schedules.grace_hours:g} 小时），"
                    "未补发，已记录为“错过”：\n" + "\n".join(lines) + (f"\n……另有 {more} 条" if more > 0 else ""))
            summary: list[Push] = []
            _Recipients.fan_out(summary, now, "missed-summary", result.summary_key,
                                _Recipients(session, config).office, text)
            for push in summary:
                write_push(session, push, config, now)
        session.commit()  # the outbox first: a crash here leaves jobs that catch up idempotently
    for job, _due in overdue:  # (after the commit: SQLite allows one writer at a time)
        scheduler.remove_job(job.id)
    return result


def start_scheduler(scheduler, runtime: Runtime, horizon_days: int = 14) -> tuple[CatchUp, SyncReport]:
    """Start paused, catch up, re-derive the horizon, add the daily re-sync, then run."""
    runtime.scheduler = scheduler
    install(runtime)
    scheduler.start(paused=True)
    result = catch_up(scheduler, runtime)
    with runtime.db() as session:
        report = sync_jobs(scheduler, session, runtime.config, runtime.calendar, runtime.clock(), horizon_days)
    scheduler.add_job(resync, trigger=CronTrigger(hour=0, minute=5, timezone=ZoneInfo(runtime.config.bot.timezone)),
                      id=RESYNC_JOB, replace_existing=True)
    scheduler.resume()
    return result, report
