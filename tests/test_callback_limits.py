"""Callback floods and platform retries across workers (WeChat MP channel; WeCom shares the code)."""
from __future__ import annotations

import logging
from datetime import datetime

from bot.channels.dedupe import DatabaseDedupe
from bot.channels.flood import FIRST_OVER, OK, OVER, TOO_FAST, FloodGuard
from bot.storage.db import session_factory
from tests.test_wechat_mp import Recorder, app_for, encrypted, make, open_reply, text


def test_flood_guard_counts_per_key_and_window():
    now = [0.0]
    guard = FloodGuard(2, window=60, clock=lambda: now[0])
    assert [guard.hit("a") for _ in range(4)] == [OK, OK, FIRST_OVER, OVER]
    assert guard.hit("b") == OK and guard.blocked("a") and not guard.blocked("b")
    now[0] = 61
    assert guard.hit("a") == OK and not guard.blocked("a")


def test_one_sender_flooding_is_told_once_then_dropped(caplog):
    rec = Recorder()
    ch = make(dispatch=rec)
    ch.per_user = FloodGuard(3)
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        answers = []
        for i in range(6):
            params, body = encrypted(text(f"问题{i}", msg_id=str(900 + i), user="oNoisy"), nonce=f"n{i}")
            answers.append(client.post("/wechat/callback", params=params, content=body).text)
        params, body = encrypted(text("别人的问题", msg_id="999", user="oQuiet"), nonce="nq")
        other = client.post("/wechat/callback", params=params, content=body).text
    assert len([s for s in rec.seen if s.user == "oNoisy"]) == 3
    assert open_reply(answers[3])["Content"] == TOO_FAST
    assert answers[4] == answers[5] == "success"
    assert open_reply(other)["Content"] == "答：别人的问题"
    assert caplog.text.count("sent over 3 messages in a minute") == 1


def test_an_address_sending_forged_requests_is_cut_off(caplog):
    ch = make(dispatch=Recorder())
    ch.failures = FloodGuard(3)
    params, body = encrypted(text())
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        forged = [client.post("/wechat/callback", params=params | {"signature": "0" * 40}, content=body).status_code
                  for _ in range(5)]
        genuine = client.post("/wechat/callback", params=params, content=body).status_code
    assert forged == [403, 403, 403, 403, 429]
    assert genuine == 429  # cut off for the rest of the minute, before any decryption work
    assert "sent over 3 refused requests" in caplog.text


def test_a_retry_reaching_another_worker_is_dropped(any_db_engine):
    """Two processes behind one URL share the database: the retry is processed once."""
    sessions = session_factory(any_db_engine)
    rec = Recorder()
    first, second = (make(dispatch=rec, dedupe=DatabaseDedupe(sessions)) for _ in range(2))
    params, body = encrypted(text("重复投递", msg_id="77001"))
    with app_for(first) as a, app_for(second) as b:
        answer = a.post("/wechat/callback", params=params, content=body)
        retry = b.post("/wechat/callback", params=params, content=body)
    assert open_reply(answer.text)["Content"] == "答：重复投递"
    assert retry.text == "success" and len(rec.seen) == 1


def test_dedupe_store_down_still_answers(caplog):
    def broken():
        from sqlalchemy.exc import OperationalError

        raise OperationalError("connect", {}, Exception("database is down"))

    store = DatabaseDedupe(broken, clock=datetime.now)
    with caplog.at_level(logging.ERROR):
        assert store.seen_in_database("wechat_mp:id:1") is False
    assert "processing wechat_mp:id:1 anyway" in caplog.text


def test_over_the_backlog_a_sender_is_asked_to_resend(caplog):
    import threading

    from bot.channels.wx_callback import BUSY

    gate = threading.Event()
    rec = Recorder(gate)
    ch = make(dispatch=rec, reply_timeout=0.1)
    ch.max_backlog = 1
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        params, body = encrypted(text("慢问题", msg_id="8801"), nonce="a")
        assert client.post("/wechat/callback", params=params, content=body).text == "success"
        params, body = encrypted(text("又一个问题", msg_id="8802", user="oOther"), nonce="b")
        busy = client.post("/wechat/callback", params=params, content=body).text
        gate.set()
        client.portal.call(ch.drain)
    assert open_reply(busy)["Content"] == BUSY
    assert [i.text for i in rec.seen] == ["慢问题"]
    assert "answers in progress" in caplog.text
