"""The outbox sender: delivers the pushes that features wrote with bot.ledger.outbox.enqueue.

Row life cycle (Outbox.status)::

    pending ──claim──> sending ──platform accepted──> sent
       ^                  │
       └── retry (back-off, not_before moved) ── 429 / 5xx / timeout
    sending ──> dead        max_attempts reached, or a permanent 4xx error (admins are told)
    pending ──> unroutable  the person has no chat binding, or the group name no chat (admins are
                            told once per person / group per day)
    missed                  written by the scheduler: due while the process was down, past grace

Delivery contract (why a crash neither loses nor duplicates a push):

* **Claim.** A sender takes a due row with a conditional update in its own transaction —
  ``UPDATE outbox SET status='sending', attempts=attempts+1, not_before=now+lease WHERE id=?
  AND status=<what we read> AND not_before=<what we read>`` — and only sends rows whose update
  hit. Any number of sender processes (SQLite or PostgreSQL) can therefore run at once: a row
  is claimed by exactly one of them. While a row is 'sending', `not_before` holds the end of the
  claim's lease (no schema change needed).
* **Send with the key.** The idempotency key goes to the channel, ``send(chat, text, key=...)``.
  Adapters whose platform can deduplicate use it (WeCom app messages: enable_duplicate_check;
  the bench's test platform: returns the first message id for a key it has seen).
* **Crash window.** If the process dies after the platform accepted a message but before the
  row was marked sent, the row stays 'sending'. When its lease has expired, any sender claims it
  again and re-sends it **with the same key**. Delivery is thus at-least-once towards the
  platform, and exactly-once as observed by the user whenever the platform deduplicates by key.
  Adapters that cannot pass a key (the console) may show such a message twice; that is the only
  duplicate this design admits. The lease must exceed the time one drain batch takes to send.
* **Failures.** RateLimited / transient errors: attempts counted, row back to pending with
  not_before = now + max(backoff_seconds * 2**(attempts-1) capped at max_backoff_seconds,
  retry_after). After max_attempts, or at once on a permanent error: 'dead' plus a report to the
  admins (key ``dead-letter:{outbox_id}:admin:{admin_id}``).
* **Routing.** Rows with a person and no channel go to that person's chat binding (the most
  recently bound one, preferring channels this sender serves); the resolution is written back.
  No binding: 'unroutable' and one report per person per day to every bound admin (key
  ``unroutable:{person_id}:{date}:admin:{admin_id}``). Never dropped silently. Rows with no person
  carry a group name in `recipient`: the chat bound to it (bot.ledger.groups, /bindgroup) is
  filled in the same way; a name bound nowhere is 'unroutable' and reported once per day.
* **Rate limits** (settings.outbox.limits, see bot.delivery_limits): `drain_once` skips rows that
  would exceed a channel's per-second bucket or a chat's per-minute window, leaving them due.
"""
from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import OutboxSettings
from bot.delivery_limits import RateLimiter, classify
from bot.delivery_limits import DeliveryError, PermanentError, RateLimited, TransientError  # noqa: F401
from bot.ledger.groups import resolve_group
from bot.ledger.outbox import enqueue
from bot.storage.models import ChatIdentity, Outbox, Person

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, DEAD, MISSED, UNROUTABLE = "pending", "sending", "sent", "dead", "missed", "unroutable"
STATUSES = (PENDING, SENDING, SENT, DEAD, MISSED, UNROUTABLE)
REPORT_PREFIXES = ("dead-letter:", "unroutable:")  # reports about reports are logged, not re-reported


class PushChannel(Protocol):
    async def send(self, chat: str, text: str, *, key: str) -> Any:
        """Deliver `text` to `chat`; raise a bot.delivery_limits error on failure."""


class ReplyChannelAdapter:
    """Wraps a chat Channel (send(chat, Reply)) as a PushChannel. It cannot pass the key on, so a
    crash between send and commit may show such a push twice (see the module docstring)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    async def send(self, chat: str, text: str, *, key: str) -> None:
        from bot.types import Reply

        await self.channel.send(chat, Reply(text=text, chat=chat))


@dataclass
class DrainResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    unroutable: int = 0
    limited: int = 0  # due rows left for later because of rate limits
    lost_claims: int = 0  # rows another sender claimed first
    keys: list[str] = field(default_factory=list)  # keys sent in this drain

    @property
    def worked(self) -> bool:
        return bool(self.sent or self.retried or self.dead or self.unroutable)


@dataclass(frozen=True)
class _Job:
    id: int
    key: str
    channel: str
    recipient: str
    text: str
    attempts: int  # after this claim


def admin_bindings(session: Session) -> list[tuple[Person, ChatIdentity]]:
    """Every active admin with their most recent chat binding (admins without one are skipped)."""
    admins = session.scalars(select(Person).where(Person.active.is_(True), Person.roles.like("%admin%"))).all()
    found = []
    for admin in admins:
        if not admin.has_role("admin"):
            continue
        identity = session.scalars(select(ChatIdentity).where(ChatIdentity.person_id == admin.id)
                                   .order_by(ChatIdentity.bound_at.desc(), ChatIdentity.id.desc())).first()
        if identity is not None:
            found.append((admin, identity))
    return found


def report_to_admins(session: Session, base_key: str, text: str, now: datetime) -> int:
    """Enqueue `text` to every bound admin (key base_key:admin:ID); returns how many were added.
    With no bound admin at all the report is logged as an error — the row's status still shows it."""
    targets = admin_bindings(session)
    if not targets:
        log.error("no admin with a chat binding to receive report %s: %s", base_key, text)
        return 0
    return sum(enqueue(session, f"{base_key}:admin:{admin.id}", text, now, person_id=admin.id,
                       channel=identity.channel, recipient=identity.platform_user_id)
               for admin, identity in targets)


class Sender:
    """Drains the outbox for the channels it is given (one sender per channel is the norm)."""

    def __init__(self, session_factory: sessionmaker[Session], channels: dict[str, PushChannel],
                 settings: OutboxSettings, clock: Callable[[], datetime], *, name: str | None = None,
                 lease_seconds: float = 120.0, recipients: dict[str, set[str]] | None = None) -> None:
        self.sessions = session_factory
        self.channels = channels
        # Optional: only these chats per channel (a local console session delivers its own pushes
        # and leaves everyone else's in the outbox for their own session).
        self.recipients = recipients
        self.settings = settings
        self.clock = clock
        self.name = name or f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=lease_seconds)
        self.limiter = RateLimiter(settings.limits)
        self._seeded = False

    # ------------------------------------------------------------ one pass

    async def drain_once(self, limit: int = 100) -> DrainResult:
        """Resolve, claim and send up to `limit` due rows; never sleeps."""
        # The database work runs in a worker thread: the sender shares its event loop with webhooks
        # that must be answered within seconds, and a busy SQLite file can block for a while.
        result = DrainResult()
        now = self.clock()
        if not self._seeded:
            await asyncio.to_thread(self._seed_windows, now)
        result.unroutable = await asyncio.to_thread(self._resolve_recipients, now, limit)
        claimed = await asyncio.to_thread(self._claim, now, limit, result)
        for job in claimed:
            await self._deliver(job, result)
        return result

    async def run_forever(self, limit: int = 100, idle_seconds: float = 1.0,
                          stop: asyncio.Event | None = None,
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Drain until `stop` is set: straight on while there is work, a short pause while rate
        limits hold rows back, `idle_seconds` when nothing is due."""
        while stop is None or not stop.is_set():
            try:
                result = await self.drain_once(limit)
            except Exception:  # the database was busy or gone: keep the loop alive
                log.exception("outbox drain failed")
                await sleep(idle_seconds)
                continue
            if result.limited:
                await sleep(self.limiter.wait_hint(list(self.channels)))
            elif result.worked:
                await sleep(0)
            else:
                await sleep(idle_seconds)

    # ------------------------------------------------------------ steps

    def _seed_windows(self, now: datetime) -> None:
        since = now - RateLimiter.WINDOW
        with self.sessions() as session:
            rows = session.execute(select(Outbox.channel, Outbox.recipient, Outbox.sent_at)
                                   .where(Outbox.status == SENT, Outbox.sent_at > since,
                                          Outbox.channel.in_(list(self.channels)))
                                   .order_by(Outbox.sent_at)).all()
        for channel, recipient, sent_at in rows:
            self.limiter.seed(channel, recipient, sent_at, now)
        self._seeded = True

    def _resolve_recipients(self, now: datetime, limit: int) -> int:
        """Fill in channel/recipient for due person rows; mark the unbound ones unroutable."""
        unroutable = 0
        with self.sessions() as session, session.begin():
            rows = session.scalars(select(Outbox).where(Outbox.status == PENDING, Outbox.channel == "",
                                                        Outbox.not_before <= now)
                                   .order_by(Outbox.not_before, Outbox.id).limit(limit)).all()
            for row in rows:
                address = self._address(session, row)
                if address is not None:
                    session.execute(update(Outbox).where(Outbox.id == row.id, Outbox.status == PENDING,
                                                         Outbox.channel == "")
                                    .values(channel=address[0], recipient=address[1]))
                    continue
                why = "收件人没有绑定聊天账号" if row.person_id is not None else f"群「{row.recipient}」没有绑定群聊"
                hit = session.execute(update(Outbox).where(Outbox.id == row.id, Outbox.status == PENDING)
                                      .values(status=UNROUTABLE, last_error=why)).rowcount
                if not hit:
                    continue
                unroutable += 1
                self._report_unroutable(session, row, now)
        return unroutable

    def _address(self, session: Session, row: Outbox) -> tuple[str, str] | None:
        """(channel, chat) for a row addressed to a person (their binding) or to a group name."""
        if row.person_id is not None:
            identity = self._binding(session, row.person_id)
            return (identity.channel, identity.platform_user_id) if identity is not None else None
        group = resolve_group(session, row.recipient, list(self.channels)) if row.recipient else None
        return (group.channel, group.chat) if group is not None else None

    def _binding(self, session: Session, person_id: int) -> ChatIdentity | None:
        identities = session.scalars(select(ChatIdentity).where(ChatIdentity.person_id == person_id)
                                     .order_by(ChatIdentity.bound_at.desc(), ChatIdentity.id.desc())).all()
        served = [i for i in identities if i.channel in self.channels]
        return (served or identities or [None])[0]

    def _report_unroutable(self, session: Session, row: Outbox, now: datetime) -> None:
        if row.idempotency_key.startswith(REPORT_PREFIXES) or (row.person_id is None and not row.recipient):
            log.error("outbox row %s (%s) has no recipient", row.id, row.idempotency_key)
            return
        if row.person_id is None:
            log.warning("outbox row %s (%s): group %r is not bound to any chat", row.id, row.idempotency_key,
                        row.recipient)
            text = (f"【推送无法送达】群「{row.recipient}」没有绑定群聊，发往该群的推送无法送达"
                    f"（首条：{row.idempotency_key}）。\n内容：{row.text[:200]}\n"
                    f"请管理员在该群里发送 /bindgroup {row.recipient}，"
                    "或在 config.yaml 的 schedules.targets 中配置。")
            report_to_admins(session, f"unroutable:group:{row.recipient}:{now.date().isoformat()}", text, now)
            return
        person = session.get(Person, row.person_id)
        name = person.name if person else f"#{row.person_id}"
        text = (f"【推送无法送达】{name}（人员编号 {row.person_id}）没有绑定任何聊天账号，"
                f"今天起发给他/她的推送无法送达（首条：{row.idempotency_key}）。\n"
                f"内容：{row.text[:200]}\n"
                f"请签发绑定码（safeduty people bind-code {name}）并请其在聊天中 /bind。")
        report_to_admins(session, f"unroutable:{row.person_id}:{now.date().isoformat()}", text, now)

    def _claim(self, now: datetime, limit: int, result: DrainResult) -> list[_Job]:
        """Book rate-limit slots and claim due rows; only rows whose conditional update hit are ours."""
        served = list(self.channels)
        scope = (Outbox.channel.in_(served) if self.recipients is None else
                 or_(*(and_(Outbox.channel == ch, Outbox.recipient.in_(sorted(chats)))
                       for ch, chats in self.recipients.items())))
        with self.sessions() as session:
            rows = session.execute(
                select(Outbox.id, Outbox.idempotency_key, Outbox.channel, Outbox.recipient, Outbox.text,
                       Outbox.attempts, Outbox.status, Outbox.not_before)
                .where(scope, Outbox.recipient != "", Outbox.not_before <= now,
                       or_(Outbox.status == PENDING, Outbox.status == SENDING))  # SENDING: lease expired
                .order_by(Outbox.not_before, Outbox.id).limit(limit * 4)).all()
        booked = []
        for row in rows:
            if len(booked) >= limit:
                break
            if self.limiter.try_acquire(row.channel, row.recipient, now):
                booked.append(row)
            else:
                result.limited += 1
        jobs: list[_Job] = []
        lease_end = now + self.lease
        with self.sessions() as session, session.begin():
            for row in booked:
                hit = session.execute(
                    update(Outbox).where(Outbox.id == row.id, Outbox.status == row.status,
                                         Outbox.not_before == row.not_before)
                    .values(status=SENDING, attempts=Outbox.attempts + 1, not_before=lease_end)).rowcount
                if hit:
                    jobs.append(_Job(row.id, row.idempotency_key, row.channel, row.recipient, row.text,
                                     row.attempts + 1))
                else:
                    result.lost_claims += 1
                    self.limiter.release(row.channel, row.recipient, now)
        return jobs

    async def _deliver(self, job: _Job, result: DrainResult) -> None:
        try:
            await self.channels[job.channel].send(job.recipient, job.text, key=job.key)
        except Exception as exc:  # the network edge: every failure is classified, none escapes
            await asyncio.to_thread(self._failed, job, exc, result)
            return
        await asyncio.to_thread(self._mark_sent, job)
        result.sent += 1
        result.keys.append(job.key)

    def _mark_sent(self, job: _Job) -> None:
        with self.sessions() as session, session.begin():
            session.execute(update(Outbox).where(Outbox.id == job.id, Outbox.status == SENDING)
                            .values(status=SENT, sent_at=self.clock(), last_error=""))

    def _failed(self, job: _Job, exc: BaseException, result: DrainResult) -> None:
        failure = classify(exc)
        now = self.clock()
        s = self.settings
        with self.sessions() as session, session.begin():
            if failure.kind == "permanent" or job.attempts >= s.max_attempts:
                hit = session.execute(update(Outbox).where(Outbox.id == job.id, Outbox.status == SENDING)
                                      .values(status=DEAD, last_error=failure.message)).rowcount
                if hit:
                    result.dead += 1
                    self._report_dead(session, job, failure.message, now)
                return
            delay = min(s.backoff_seconds * 2 ** (job.attempts - 1), s.max_backoff_seconds)
            if failure.retry_after is not None:
                delay = max(delay, float(failure.retry_after))
            session.execute(update(Outbox).where(Outbox.id == job.id, Outbox.status == SENDING)
                            .values(status=PENDING, last_error=failure.message,
                                    not_before=now + timedelta(seconds=delay)))
            result.retried += 1
        log.warning("push %s failed (%s), retry in %.0fs", job.key, failure.message, delay)

    def _report_dead(self, session: Session, job: _Job, error: str, now: datetime) -> None:
        log.error("push %s dead after %d attempts: %s", job.key, job.attempts, error)
        if job.key.startswith(REPORT_PREFIXES):
            return
        text = (f"【推送失败】发往 {job.channel}:{job.recipient} 的推送（{job.key}）"
                f"尝试 {job.attempts} 次后仍未送达，已停止重试。\n最后错误：{error[:200]}\n"
                f"内容：{job.text[:200]}")
        report_to_admins(session, f"dead-letter:{job.id}", text, now)
