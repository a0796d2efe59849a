"""`safeduty serve`: the Starlette app (healthz, local web chat, channel status) and one real
uvicorn start on a free loopback port."""
from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from bot.app import Services
from bot import serve
from bot.serve import ChannelStatus, build_app, build_channels, describe
from tests.conftest import lexical_config


@pytest.fixture
def web_client(ledger_services):
    with TestClient(build_app(ledger_services, build_channels(ledger_services, environ={}))) as client:
        yield client


def chat(client, text, user="tester"):
    response = client.post("/web/chat", json={"user": user, "text": text})
    assert response.status_code == 200, response.text
    return [r["text"] for r in response.json()["replies"]]


def test_healthz_shape(web_client):
    body = web_client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"]["reachable"] is True
    assert body["outbox"] == {"pending": 0}
    assert body["channels"]["web"] == {"on": True, "reason": ""}
    for name in ("telegram", "wecom", "wecom_robot", "wechat_mp"):
        assert body["channels"][name]["on"] is False
        assert "未启用" in body["channels"][name]["reason"]


def test_healthz_without_database(services):
    with TestClient(build_app(services, build_channels(services, environ={}))) as client:
        body = client.get("/healthz").json()
    assert body["database"]["reachable"] is False and body["outbox"]["pending"] is None


def test_page_is_inline_html(web_client):
    response = web_client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "/web/chat" in response.text and "<script src" not in response.text and "<link" not in response.text


def test_web_chat_answers_with_citation_and_help(web_client):
    answer = "\n".join(chat(web_client, "安全生产法第三条"))
    assert "《中华人民共和国安全生产法》第三条" in answer
    assert "/help" in "\n".join(chat(web_client, "/help")) or "/ask" in "\n".join(chat(web_client, "/help"))


def test_default_user(web_client):
    response = web_client.post("/web/chat", json={"text": "/help"})
    assert response.status_code == 200 and response.json()["replies"]


def test_binary_and_oversized_text_get_polite_refusal(web_client):
    assert "无法识别" in chat(web_client, "\x00\x01\x02abc\x03\x04\x05")[0]
    assert "消息太长了" in chat(web_client, "安" * 9000)[0]


def test_bad_bodies_are_refused(web_client):
    assert web_client.post("/web/chat", content=b"\xff\xfe not json").status_code == 400
    assert web_client.post("/web/chat", json=["a"]).status_code == 400
    assert web_client.post("/web/chat", json={"text": 5}).status_code == 400
    assert web_client.post("/web/chat", content=b"x" * (300 * 1024)).status_code == 413


def test_enabled_channel_without_env_var_is_off_with_reason(ledger_services):
    config = lexical_config()
    config.channels.telegram.enabled = True
    config.channels.wecom_robot.enabled = True
    config.channels.web.enabled = False
    services = Services(config=config, data_dir=ledger_services.data_dir, kb=ledger_services.kb,
                        db=ledger_services.db, clock=ledger_services.clock)
    statuses = build_channels(services, environ={})
    with TestClient(build_app(services, statuses)) as client:
        body = client.get("/healthz").json()
        assert client.post("/web/chat", json={"text": "/help"}).status_code == 404
    assert body["channels"]["telegram"] == {"on": False, "reason": "已启用但缺少环境变量 SAFEDUTY_TELEGRAM_TOKEN"}
    assert "SAFEDUTY_WECOM_ROBOT_KEY" in body["channels"]["wecom_robot"]["reason"]
    assert body["channels"]["web"]["on"] is False
    lines = "\n".join(describe(statuses, "http://127.0.0.1:8080"))
    assert "关闭  Telegram（telegram）：已启用但缺少环境变量 SAFEDUTY_TELEGRAM_TOKEN" in lines


def test_channel_module_missing_or_broken_is_off(ledger_services, monkeypatch):
    import bot.serve as serve

    monkeypatch.setitem(serve.REGISTRY, "telegram", ("bot.channels.no_such_module", "X", ("token_env",)))
    config = lexical_config()
    config.channels.telegram.enabled = True
    services = Services(config=config, data_dir=ledger_services.data_dir, kb=ledger_services.kb,
                        db=ledger_services.db, clock=ledger_services.clock)
    status = serve.build_channel("telegram", services, environ={"SAFEDUTY_TELEGRAM_TOKEN": "t"})
    assert status.on is False and "尚不可用" in status.reason


def test_webhook_channel_routes_are_mounted(ledger_services):
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    class Fake:
        name = "fake"

        def routes(self):
            return [Route("/fake/hook", lambda request: PlainTextResponse("ok"), methods=["POST"])]

    statuses = [ChannelStatus("web", True), ChannelStatus("fake", True, "", Fake())]
    with TestClient(build_app(ledger_services, statuses)) as client:
        assert client.post("/fake/hook").text == "ok"


def test_real_server_on_free_port(ledger_services):
    app = build_app(ledger_services, build_channels(ledger_services, environ={}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started, "uvicorn did not start within 10 s"
        port = server.servers[0].sockets[0].getsockname()[1]
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert response.status_code == 200 and response.json()["status"] == "ok"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_platform_channels_build_from_env_when_their_modules_exist(ledger_services, tmp_path):
    """With every secret in the environment, each platform channel is on — or, while its module is
    not importable yet, off with that reason (never a crash)."""
    config = lexical_config()
    for name in ("telegram", "wecom", "wecom_robot", "wechat_mp"):
        getattr(config.channels, name).enabled = True
    config.channels.telegram.base_url = "http://127.0.0.1:9/bot"
    config.channels.wecom.corp_id, config.channels.wecom.agent_id = "wx5823bf96d3bd56c7", 1
    config.channels.wechat_mp.app_id = "wx5823bf96d3bd56c7"
    key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    environ = {"SAFEDUTY_TELEGRAM_TOKEN": "123:abc", "SAFEDUTY_WECOM_TOKEN": "QDG6eK", "SAFEDUTY_WECOM_AES_KEY": key,
               "SAFEDUTY_WECOM_SECRET": "s", "SAFEDUTY_WECOM_ROBOT_KEY": "k", "SAFEDUTY_WECHAT_TOKEN": "QDG6eK",
               "SAFEDUTY_WECHAT_AES_KEY": key, "SAFEDUTY_WECHAT_SECRET": "s"}
    services = Services(config=config, data_dir=tmp_path, kb=ledger_services.kb, db=ledger_services.db,
                        clock=ledger_services.clock)
    for status in build_channels(services, environ=environ)[1:]:
        assert status.on or "尚不可用" in status.reason, (status.name, status.reason)


def test_late_wechat_reply_waits_in_the_outbox(ledger_services):
    """After "success", the late answer is an outbox row for the channel's sender (retried, never lost)."""
    import threading as _threading

    from sqlalchemy import select

    from bot.channels.dedupe import DatabaseDedupe
    from bot.storage.models import Outbox
    from tests.test_wechat_mp import Recorder, app_for, encrypted, make, text

    gate = _threading.Event()
    channel = make(dispatch=Recorder(gate), reply_timeout=0.2)
    serve.harden(channel, "wechat_mp", ledger_services)
    assert isinstance(channel.dedupe, DatabaseDedupe)
    params, body = encrypted(text("慢问题", msg_id="4242"))
    with app_for(channel) as client:
        assert client.post("/wechat/callback", params=params, content=body).text == "success"
        gate.set()
        client.portal.call(channel.drain)
    with ledger_services.db() as session:
        row = session.scalars(select(Outbox).where(Outbox.idempotency_key.like("late:%"))).one()
    assert (row.channel, row.recipient, row.text, row.status) == ("wechat_mp", "oUser", "答：慢问题", "pending")
