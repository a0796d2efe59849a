"""The outbox sender: delivery, crash recovery with the same key, back-off, dead letters,
unroutable people, rate limits and concurrent senders — injected clock, fake channel, no sleeping."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from bot.config import ChannelLimits, OutboxSettings
from bot.delivery import (PermanentError, RateLimited, Sender, TransientError, report_to_admins)
from bot.ledger.outbox import enqueue
from bot.storage.db import session_factory, transaction
from bot.storage.models import ChatIdentity, Outbox, Person


class FakeChannel:
    """Records every send; `failures` is a queue of exceptions to raise before succeeding."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.failures: list[Exception] = []
        self.yield_during_send = False

    async def send(self, chat: str, text: str, *, key: str) -> None:
        if self.yield_during_send:
            await asyncio.sleep(0)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((chat, text, key))


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def db(db_engine):
    return session_factory(db_engine)


@pytest.fixture
def settings():
    return OutboxSettings(max_attempts=3, backoff_seconds=5, max_backoff_seconds=60,
                          limits={"tg": ChannelLimits(per_second=1000, per_chat_per_minute=1000)})


@pytest.fixture
def channel():
    return FakeChannel()


@pytest.fixture
def sender(db, channel, settings, clock):
    return Sender(db, {"tg": channel}, settings, clock, lease_seconds=60)


def add_person(db, name, roles="cadre", binding=None, now=datetime(2026, 11, 1)):
    with transaction(db) as s:
        person = Person(name=name, roles=roles)
        s.add(person)
        s.flush()
        if binding:
            s.add(ChatIdentity(channel=binding[0], platform_user_id=binding[1], person_id=person.id, bound_at=now))
        return person.id


def push(db, clock, key, **kw):
    with transaction(db) as s:
        assert enqueue(s, key, kw.pop("text", f"text {key}"), clock(), **kw)


def row(db, key) -> Outbox:
    with db() as s:
        return s.scalar(select(Outbox).where(Outbox.idempotency_key == key))


def rows(db, prefix="") -> list[Outbox]:
    with db() as s:
        return s.scalars(select(Outbox).where(Outbox.idempotency_key.startswith(prefix)).order_by(Outbox.id)).all()


def test_delivery_marks_sent_and_resolves_binding(db, sender, channel, clock):
    pid = add_person(db, "张三", binding=("tg", "chat-zs"))
    push(db, clock, "duty-eve:2026-11-22:person:1", person_id=pid)
    push(db, clock, "later", channel="tg", recipient="g1", not_before=clock() + timedelta(hours=1))
    result = run(sender.drain_once())
    assert result.sent == 1
    assert channel.sent == [("chat-zs", "text duty-eve:2026-11-22:person:1", "duty-eve:2026-11-22:person:1")]
    r = row(db, "duty-eve:2026-11-22:person:1")
    assert (r.status, r.channel, r.recipient, r.sent_at, r.attempts) == ("sent", "tg", "chat-zs", clock(), 1)
    assert row(db, "later").status == "pending"  # not due yet
    run(sender.drain_once())
    assert len(channel.sent) == 1  # sent rows are never sent again


def test_crash_in_sending_is_resent_with_the_same_key_after_the_lease(db, channel, settings, clock):
    push(db, clock, "k1", channel="tg", recipient="c1")

    class Crash(Exception):
        pass

    class CrashAfterAccept(FakeChannel):
        async def send(self, chat, text, *, key):
            self.sent.append((chat, text, key))  # the platform accepted it ...
            raise SystemExit  # ... and the process died before marking it sent

    crashing = Sender(db, {"tg": CrashAfterAccept()}, settings, clock, lease_seconds=60)
    with pytest.raises(SystemExit):
        run(crashing.drain_once())
    assert row(db, "k1").status == "sending"
    restarted = Sender(db, {"tg": channel}, settings, clock, lease_seconds=60)
    run(restarted.drain_once())
    assert channel.sent == []  # the lease of the dead process has not expired yet
    clock.advance(seconds=61)
    run(restarted.drain_once())
    assert channel.sent == [("c1", "text k1", "k1")]  # same key: an idempotent platform dedupes
    assert row(db, "k1").status == "sent"


def test_429_backs_off_honouring_retry_after_without_duplicates(db, sender, channel, clock):
    push(db, clock, "k1", channel="tg", recipient="c1")
    channel.failures = [RateLimited(retry_after=30)]
    result = run(sender.drain_once())
    r = row(db, "k1")
    assert (result.retried, r.status, r.attempts) == (1, "pending", 1)
    assert r.not_before == clock() + timedelta(seconds=30)  # retry_after beats the 5 s back-off
    clock.advance(seconds=29)
    run(sender.drain_once())
    assert channel.sent == []
    clock.advance(seconds=1)
    run(sender.drain_once())
    run(sender.drain_once())
    assert channel.sent == [("c1", "text k1", "k1")]
    assert row(db, "k1").status == "sent"


def test_5xx_retried_with_doubling_backoff_then_dead_with_admin_report(db, sender, channel, clock):
    admin = add_person(db, "王主任", roles="admin", binding=("tg", "admin-chat"))
    push(db, clock, "k1", channel="tg", recipient="c1")
    channel.failures = [TransientError("HTTP 502"), TransientError("HTTP 503"), TimeoutError("read timeout")]
    run(sender.drain_once())
    assert row(db, "k1").not_before == clock() + timedelta(seconds=5)
    clock.advance(seconds=5)
    run(sender.drain_once())
    assert row(db, "k1").not_before == clock() + timedelta(seconds=10)  # doubled
    clock.advance(seconds=10)
    result = run(sender.drain_once())  # third attempt = max_attempts
    r = row(db, "k1")
    assert (result.dead, r.status, r.attempts) == (1, "dead", 3)
    assert "timeout" in r.last_error
    reports = rows(db, "dead-letter:")
    assert [x.idempotency_key for x in reports] == [f"dead-letter:{r.id}:admin:{admin}"]
    run(sender.drain_once())
    assert channel.sent[-1][0] == "admin-chat" and "推送失败" in channel.sent[-1][1]
    assert [c for c, _, _ in channel.sent].count("c1") == 0


def test_backoff_is_capped(db, channel, clock):
    capped = OutboxSettings(max_attempts=10, backoff_seconds=5, max_backoff_seconds=15,
                            limits={"tg": ChannelLimits(per_second=1000, per_chat_per_minute=1000)})
    s = Sender(db, {"tg": channel}, capped, clock)
    push(db, clock, "k1", channel="tg", recipient="c1")
    for expected in (5, 10, 15, 15):
        channel.failures = [TransientError("500")]
        run(s.drain_once())
        assert row(db, "k1").not_before == clock() + timedelta(seconds=expected)
        clock.advance(seconds=expected)


def test_4xx_is_dead_at_once(db, sender, channel, clock):
    add_person(db, "王主任", roles="admin", binding=("tg", "admin-chat"))
    push(db, clock, "k1", channel="tg", recipient="c1")

    class HTTPError(Exception):
        status_code = 403

    channel.failures = [HTTPError("Forbidden: bot was blocked by the user")]
    result = run(sender.drain_once())
    assert (result.dead, row(db, "k1").status, row(db, "k1").attempts) == (1, "dead", 1)
    assert len(rows(db, "dead-letter:")) == 1
    run(sender.drain_once())  # the report goes out
    assert channel.sent[0][0] == "admin-chat"
    channel.failures = [PermanentError("chat not found")]
    push(db, clock, "k2", channel="tg", recipient="c2")
    run(sender.drain_once())
    assert row(db, "k2").status == "dead"


def test_person_without_binding_is_unroutable_and_reported_once_per_day(db, sender, channel, clock):
    admin = add_person(db, "王主任", roles="admin", binding=("tg", "admin-chat"))
    add_person(db, "李书记", roles="admin")  # an admin without binding gets nothing, silently fine
    pid = add_person(db, "赵六")
    push(db, clock, "nudge:1:T-3", person_id=pid)
    push(db, clock, "nudge:2:T-3", person_id=pid)
    result = run(sender.drain_once())
    assert result.unroutable == 2
    assert {r.status for r in (row(db, "nudge:1:T-3"), row(db, "nudge:2:T-3"))} == {"unroutable"}
    day = clock().date().isoformat()
    assert [r.idempotency_key for r in rows(db, "unroutable:")] == [f"unroutable:{pid}:{day}:admin:{admin}"]
    run(sender.drain_once())
    assert [(c, "赵六" in t) for c, t, _ in channel.sent] == [("admin-chat", True)]
    push(db, clock, "nudge:3:T-3", person_id=pid)
    run(sender.drain_once())
    assert len(rows(db, "unroutable:")) == 1  # still one report that day
    clock.advance(days=1)
    push(db, clock, "nudge:4:T-1", person_id=pid)
    run(sender.drain_once())
    assert len(rows(db, "unroutable:")) == 2  # and one the next day


def test_no_bound_admin_is_logged_not_crashed(db, clock, caplog):
    with transaction(db) as s:
        assert report_to_admins(s, "unroutable:9:2026-11-22", "x", clock()) == 0
    assert "no admin with a chat binding" in caplog.text


def test_per_chat_window_and_channel_bucket(db, channel, clock):
    limited = OutboxSettings(limits={"tg": ChannelLimits(per_second=5, per_chat_per_minute=3)})
    s = Sender(db, {"tg": channel}, limited, clock)
    for i in range(5):
        push(db, clock, f"group:{i}", channel="tg", recipient="group")
    for i in range(10):
        push(db, clock, f"user:{i}", channel="tg", recipient=f"u{i}")
    result = run(s.drain_once(limit=100))
    assert result.sent == 5 and result.limited > 0  # the channel bucket: 5 per second
    sent_to = [c for c, _, _ in channel.sent]
    assert sent_to.count("group") == 3  # the group window: 3 per minute
    clock.advance(seconds=1)
    run(s.drain_once(limit=100))
    assert len(channel.sent) == 10 and [c for c, _, _ in channel.sent].count("group") == 3
    clock.advance(seconds=1)
    run(s.drain_once(limit=100))
    assert len(channel.sent) == 13 and [c for c, _, _ in channel.sent].count("group") == 3
    clock.advance(seconds=58)  # the group's first sends leave the window
    run(s.drain_once(limit=100))
    assert [c for c, _, _ in channel.sent].count("group") == 5
    assert all(r.status == "sent" for r in rows(db))


def test_window_is_seeded_from_recent_sends_after_restart(db, channel, clock):
    limited = OutboxSettings(limits={"tg": ChannelLimits(per_second=100, per_chat_per_minute=2)})
    for i in range(3):
        push(db, clock, f"g:{i}", channel="tg", recipient="group")
    run(Sender(db, {"tg": channel}, limited, clock).drain_once())
    assert len(channel.sent) == 2
    clock.advance(seconds=10)
    run(Sender(db, {"tg": channel}, limited, clock).drain_once())  # a restarted process
    assert len(channel.sent) == 2
    clock.advance(seconds=51)
    run(Sender(db, {"tg": channel}, limited, clock).drain_once())
    assert len(channel.sent) == 3


def test_two_senders_never_send_the_same_row_twice(db, settings, clock):
    for i in range(60):
        push(db, clock, f"k{i}", channel="tg", recipient=f"c{i % 7}")
    a, b = FakeChannel(), FakeChannel()
    a.yield_during_send = b.yield_during_send = True
    sa = Sender(db, {"tg": a}, settings, clock)
    sb = Sender(db, {"tg": b}, settings, clock)

    async def both():
        for _ in range(40):  # rows lost to the other sender's claim are picked up in a later round
            await asyncio.gather(sa.drain_once(limit=7), sb.drain_once(limit=7))
            if len(a.sent) + len(b.sent) >= 60:
                break

    run(both())
    keys = [k for _, _, k in a.sent + b.sent]
    assert len(keys) == len(set(keys)) == 60
    assert a.sent and b.sent


def test_a_stale_candidate_list_loses_the_claim(db, settings, clock):
    """Sender B read the row as pending, but another sender claimed it before B's update: B's
    conditional update misses, B does not send and gives its rate-limit booking back."""
    push(db, clock, "k1", channel="tg", recipient="c1")
    b = FakeChannel()
    sb = Sender(db, {"tg": b}, settings, clock)
    book = sb.limiter.try_acquire

    def other_sender_claims_meanwhile(channel, chat, now):
        with transaction(db) as s:
            s.execute(update(Outbox).values(status="sending", attempts=1, not_before=now + timedelta(minutes=2)))
        return book(channel, chat, now)

    sb.limiter.try_acquire = other_sender_claims_meanwhile
    result = run(sb.drain_once())
    assert (result.sent, result.lost_claims, b.sent) == (0, 1, [])
    assert row(db, "k1").attempts == 1


def test_outbox_status_cli(tmp_path, lexical_config_file, clock):
    from bot.app import open_database
    from bot.cli import main
    from bot.config import Config

    data = tmp_path / "data"
    data.mkdir()
    engine = open_database(Config(), data)
    db = session_factory(engine)
    now = datetime.now().replace(microsecond=0) - timedelta(hours=30)
    with transaction(db) as s:
        enqueue(s, "a", "x", now, channel="tg", recipient="c1")
        enqueue(s, "b", "y", now, channel="tg", recipient="c2")
        enqueue(s, "c", "z", now, channel="wecom", recipient="u1")
    with transaction(db) as s:
        s.execute(update(Outbox).where(Outbox.idempotency_key == "b")
                  .values(status="dead", attempts=6, last_error="HTTPError: 502 Bad Gateway"))
        s.execute(update(Outbox).where(Outbox.idempotency_key == "c").values(status="sent"))
    engine.dispose()
    argv = ["outbox", "status", "--data-dir", str(data), "--config", str(lexical_config_file)]
    out = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "待发送：1（tg 1）" in out.output and "已发送：1（wecom 1）" in out.output
    assert "502 Bad Gateway" in out.output and "小时" in out.output
    data_json = json.loads(CliRunner().invoke(main, argv + ["--json"], catch_exceptions=False).output)
    assert data_json["by_status"] == {"dead": 1, "pending": 1, "sent": 1}
    assert data_json["by_status_channel"]["pending"] == {"tg": 1}
    assert data_json["oldest_pending_age_seconds"] >= 29 * 3600
    assert data_json["dead"][0]["key"] == "b" and data_json["dead"][0]["attempts"] == 6
