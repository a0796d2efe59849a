"""Telegram channel end to end over real HTTP: python-telegram-bot's Application pointed (base_url)
at a fake Bot API server on 127.0.0.1 that scripts getUpdates and records what the bot sends."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest

from bot.channels.telegram import (MAX_TEXT, WEBHOOK_PATH, TelegramChannel, split_text,
                                   utf16_len)
from bot.delivery_limits import PermanentError, RateLimited, TransientError
from bot.types import Incoming, Reply

TOKEN = "123456:TEST-token"
BOT_ID = 999
BOT_USERNAME = "SafeDutyBot"
JSON_PARAMS = {"reply_markup", "allowed_updates", "chat_id", "offset", "timeout", "limit",
               "reply_parameters", "reply_to_message_id"}
PHOTO_BYTES = b"\xff\xd8\xff\xe0fake-jpeg-largest"
WAIT = 5.0


class FakeTelegram:
    """A small Bot API: getMe, getUpdates (scripted queue, quick empty long-poll answers),
    sendMessage, sendPhoto, getFile + file download, answerCallbackQuery, set/deleteWebhook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        self.updates: list[dict] = []
        self.next_update_id = 1
        self.next_message_id = 1000
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self.failures: dict[str, list[list]] = {}  # method -> [successes to let through, status, body]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                fake._handle(self)

            def do_POST(self):
                fake._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a long poll the bot gave up on
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    def start(self) -> "FakeTelegram":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ scripting

    def add_update(self, update: dict) -> int:
        with self.cond:
            update = {"update_id": self.next_update_id, **update}
            self.next_update_id += 1
            self.updates.append(update)
            self.cond.notify_all()
            return update["update_id"]

    def fail_next(self, method: str, status: int, body: dict, after: int = 0) -> None:
        """The next call of `method` (after `after` successful ones) answers `status` with `body`."""
        with self.cond:
            self.failures.setdefault(method, []).append([after, status, body])

    def sent(self, method: str = "sendMessage") -> list[dict]:
        with self.cond:
            return [params for name, params in self.calls if name == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = WAIT) -> list[dict]:
        with self.cond:
            ok = self.cond.wait_for(lambda: sum(1 for n, _ in self.calls if n == method) >= count, timeout)
        assert ok, f"timed out waiting for {count} × {method}; calls: {[n for n, _ in self.calls]}"
        return self.sent(method)

    async def await_for(self, method: str, count: int = 1, timeout: float = WAIT) -> list[dict]:
        return await asyncio.to_thread(self.wait_for, method, count, timeout)

    # ------------------------------------------------------------ protocol

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        path = unquote(req.path.split("?")[0])
        file_prefix = f"/file/bot{TOKEN}/"
        if path.startswith(file_prefix):
            wanted = path[len(file_prefix):]
            for file_path, content in self.files.values():
                if file_path == wanted:
                    return self._reply(req, 200, content, "application/octet-stream")
            return self._reply(req, 404, b"not found", "text/plain")
        prefix = f"/bot{TOKEN}/"
        if not path.startswith(prefix):
            return self._json(req, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        method = path[len(prefix):]
        params = self._params(req)
        with self.cond:
            self.calls.append((method, params))
            self.cond.notify_all()
            failure = None
            pending = self.failures.get(method)
            if pending:
                if pending[0][0] > 0:
                    pending[0][0] -= 1
                else:
                    failure = pending.pop(0)
        if failure:
            return self._json(req, failure[1], failure[2])
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return self._json(req, 404, {"ok": False, "error_code": 404, "description": "Not Found: method"})
        return self._json(req, 200, {"ok": True, "result": handler(params)})

    def _params(self, req: BaseHTTPRequestHandler) -> dict:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        ctype = req.headers.get("Content-Type", "")
        if "json" in ctype:
            return json.loads(raw or b"{}")
        params = {}
        for key, values in parse_qs(raw.decode(), keep_blank_values=True).items():
            value = values[0]
            params[key] = json.loads(value) if key in JSON_PARAMS else value
        return params

    def _json(self, req, status: int, body: dict) -> None:
        self._reply(req, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _reply(req, status: int, body: bytes, ctype: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def api_getMe(self, params):
        return {"id": BOT_ID, "is_bot": True, "first_name": "SafeDuty", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    def api_getUpdates(self, params):
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 0.2)  # quick empty long-poll answers
        with self.cond:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if not self.updates and timeout:
                self.cond.wait(timeout)
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return list(self.updates)

    def _message(self, params, **extra):
        with self.cond:
            self.next_message_id += 1
            message_id = self.next_message_id
        chat_id = int(params["chat_id"])
        return {"message_id": message_id, "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "SafeDuty", "username": BOT_USERNAME},
                **extra}

    def api_sendMessage(self, params):
        return self._message(params, text=params.get("text", ""))

    def api_sendPhoto(self, params):
        return self._message(params, photo=[{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}])

    def api_getFile(self, params):
        file_path, content = self.files[params["file_id"]]
        return {"file_id": params["file_id"], "file_unique_id": "u-" + params["file_id"],
                "file_size": len(content), "file_path": file_path}

    def api_answerCallbackQuery(self, params):
        return True

    def api_deleteWebhook(self, params):
        return True

    def api_setWebhook(self, params):
        return True


# ---------------------------------------------------------------- helpers

USER = {"id": 42, "is_bot": False, "first_name": "张三"}
PRIVATE = {"id": 42, "type": "private", "first_name": "张三"}
GROUP = {"id": -1001, "type": "group", "title": "安委办工作群"}
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "SafeDuty", "username": BOT_USERNAME}


SENT_AT = 1_700_000_000  # every scripted message's date
WEBHOOK_CLOCK = dict(clock=lambda: SENT_AT + 1)  # webhook tests: the message is a second old


def message(chat=PRIVATE, text=None, message_id=1, **extra) -> dict:
    msg = {"message_id": message_id, "date": SENT_AT, "chat": chat, "from": USER, **extra}
    if text is not None:
        msg["text"] = text
    return {"message": msg}


class Recorder:
    """A dispatch that records every Incoming and answers like the router: unaddressed group
    messages get nothing, the rest get `answer(incoming)` (an echo by default)."""

    def __init__(self, answer=None) -> None:
        self.seen: list[Incoming] = []
        self.answer = answer or (lambda inc: [Reply(text=f"echo: {inc.text}")])

    async def __call__(self, incoming: Incoming) -> list[Reply]:
        self.seen.append(incoming)
        if incoming.is_group and not incoming.mentioned and not incoming.text.startswith("/"):
            return []
        return self.answer(incoming)


@pytest.fixture
def fake():
    server = FakeTelegram().start()
    yield server
    server.close()


def make_channel(fake: FakeTelegram, tmp_path: Path, **kwargs) -> TelegramChannel:
    return TelegramChannel(TOKEN, base_url=fake.base_url, media_dir=tmp_path / "media", poll_timeout=5, **kwargs)


@contextlib.asynccontextmanager
async def running(channel: TelegramChannel, dispatch):
    task = asyncio.create_task(channel.run(dispatch))
    ready = asyncio.create_task(channel._ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        if task in done:
            task.result()  # raise what went wrong
        raise AssertionError("channel did not start")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- polling end to end

def test_private_text_is_answered(fake, tmp_path):
    dispatch = Recorder()

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(text="有限空间作业要求"))
            return await fake.await_for("sendMessage")

    sent = run(scenario())
    assert sent[0]["text"] == "echo: 有限空间作业要求"
    assert int(sent[0]["chat_id"]) == 42
    assert dispatch.seen[0] == Incoming(channel="telegram", chat="42", user="42", text="有限空间作业要求")
    methods = [name for name, _ in fake.calls]
    assert methods[0] == "getMe" and "deleteWebhook" in methods and "getUpdates" in methods


def test_group_addressing(fake, tmp_path):
    dispatch = Recorder()

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(GROUP, "大家早上好", message_id=1))  # not addressed: ignored
            fake.add_update(message(GROUP, message_id=7, photo=[{"file_id": "gp", "file_unique_id": "gp",
                                                                  "width": 9, "height": 9}]))  # not fetched
            fake.add_update(message(GROUP, "/help@OtherBot", message_id=2,  # another bot's command: dropped
                                    entities=[{"type": "bot_command", "offset": 0, "length": 14}]))
            fake.add_update(message(GROUP, "/help", message_id=3,
                                    entities=[{"type": "bot_command", "offset": 0, "length": 5}]))
            fake.add_update(message(GROUP, "/help@SafeDutyBot", message_id=4,
                                    entities=[{"type": "bot_command", "offset": 0, "length": 17}]))
            fake.add_update(message(GROUP, "@SafeDutyBot 动火作业", message_id=5,
                                    entities=[{"type": "mention", "offset": 0, "length": 12}]))
            fake.add_update(message(GROUP, "好的", message_id=6,
                                    reply_to_message={"message_id": 77, "date": 1_700_000_000, "chat": GROUP,
                                                      "from": BOT_USER, "text": "请确认"}))
            return await fake.await_for("sendMessage", 4)

    sent = run(scenario())
    assert [s["text"] for s in sent] == ["echo: /help", "echo: /help", "echo: 动火作业", "echo: 好的"]
    assert all(int(s["chat_id"]) == -1001 for s in sent)
    first = dispatch.seen[0]
    assert first.text == "大家早上好" and first.is_group and not first.mentioned
    assert [i.mentioned for i in dispatch.seen] == [False, True, True, True, True]
    assert all(i.is_group for i in dispatch.seen)
    assert fake.sent("getFile") == []  # an unaddressed group photo is not even downloaded


def test_chats_are_processed_concurrently_but_in_order_within_a_chat(fake, tmp_path):
    other_chat_done = asyncio.Event()
    seen: list[str] = []

    async def dispatch(incoming: Incoming) -> list[Reply]:
        seen.append(incoming.text)
        if incoming.text == "A1":  # blocks until chat B has been served: needs concurrency across chats
            await asyncio.wait_for(other_chat_done.wait(), WAIT)
        if incoming.text == "B1":
            other_chat_done.set()
        return [Reply(text=f"ok {incoming.text}")]

    chat_b = {"id": 43, "type": "private", "first_name": "李四"}

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(text="A1", message_id=1))
            fake.add_update(message(text="A2", message_id=2))
            fake.add_update(message(chat_b, text="B1", message_id=3))
            return await fake.await_for("sendMessage", 3)

    sent = [s["text"] for s in run(scenario())]
    # A1 could only finish after chat B was served (concurrency across chats); A2 waited for A1.
    # The arrival order of B1's and A1's replies at the API is a race between two connections.
    assert seen == ["A1", "B1", "A2"]
    assert sorted(sent) == ["ok A1", "ok A2", "ok B1"] and sent.index("ok A1") < sent.index("ok A2")


def test_photo_document_location_become_attachments(fake, tmp_path):
    fake.files["small"] = ("photos/file_0.jpg", b"small")
    fake.files["large"] = ("photos/file_1.jpg", PHOTO_BYTES)
    fake.files["doc"] = ("documents/file_2.pdf", b"%PDF-1.4 report")
    dispatch = Recorder()
    photo = [{"file_id": "small", "file_unique_id": "s1", "width": 90, "height": 60, "file_size": 5},
             {"file_id": "large", "file_unique_id": "l1", "width": 1280, "height": 960, "file_size": 20}]

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(message_id=10, photo=photo, caption="配电箱门未关"))
            fake.add_update(message(message_id=11, document={"file_id": "doc", "file_unique_id": "d1",
                                                             "file_name": "检查表.pdf",
                                                             "mime_type": "application/pdf"}))
            fake.add_update(message(message_id=12, location={"latitude": 30.5, "longitude": 114.25}))
            return await fake.await_for("sendMessage", 3)

    run(scenario())
    photo_in, doc_in, loc_in = dispatch.seen
    assert photo_in.text == "配电箱门未关"
    (att,) = photo_in.attachments
    assert att.kind == "photo" and Path(att.path).read_bytes() == PHOTO_BYTES
    assert Path(att.path).parent == tmp_path / "media"
    assert [p["file_id"] for p in fake.sent("getFile")] == ["large", "doc"]
    (doc,) = doc_in.attachments
    assert doc.kind == "document" and doc.name == "检查表.pdf" and doc.mime == "application/pdf"
    assert Path(doc.path).read_bytes() == b"%PDF-1.4 report" and doc.path.endswith(".pdf")
    assert loc_in.attachments[0].kind == "location"
    assert loc_in.attachments[0].data == {"lat": 30.5, "lon": 114.25}


def test_unknown_message_type_reaches_the_router_as_its_kind(fake, tmp_path):
    dispatch = Recorder()

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(message_id=20, voice={"file_id": "v", "file_unique_id": "v", "duration": 3}))
            return await fake.await_for("sendMessage")

    run(scenario())
    assert [a.kind for a in dispatch.seen[0].attachments] == ["voice"]
    assert fake.sent("getFile") == []  # nothing downloaded for a type the bot cannot use


def test_long_reply_is_split_in_two(fake, tmp_path):
    lines = [f"第{i:03d}行 " + "安" * 44 for i in range(100)]  # 100 lines of 50 chars
    long_text = "\n".join(lines)
    assert len(long_text) > 5000 - 100
    dispatch = Recorder(lambda inc: [Reply(text=long_text)])

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(text="长回复"))
            return await fake.await_for("sendMessage", 2)

    sent = run(scenario())
    assert len(sent) == 2
    assert all(utf16_len(s["text"]) <= MAX_TEXT for s in sent)
    assert sent[0]["text"].endswith(lines[len(sent[0]["text"].splitlines()) - 1])  # cut at a line end
    assert sent[0]["text"] + "\n" + sent[1]["text"] == long_text


def test_choices_become_keyboard_and_callback_returns_text(fake, tmp_path):
    long_choice = "确认上报：施工现场临时用电线路私拉乱接且未设漏电保护"  # > 64 bytes in UTF-8
    assert len(long_choice.encode()) > 64

    def answer(inc):
        if inc.text == "上报":
            return [Reply(text="请选择隐患类别", choices=("用电", "消防", long_choice))]
        return [Reply(text=f"已选择：{inc.text}")]

    dispatch = Recorder(answer)

    async def scenario():
        async with running(make_channel(fake, tmp_path), dispatch):
            fake.add_update(message(text="上报"))
            sent = await fake.await_for("sendMessage", 1)
            buttons = [b for row in sent[0]["reply_markup"]["inline_keyboard"] for b in row]
            for button in (buttons[0], buttons[2]):
                fake.add_update({"callback_query": {
                    "id": f"cb-{button['callback_data'][:8]}", "from": USER, "chat_instance": "ci",
                    "data": button["callback_data"],
                    "message": {"message_id": 1001, "date": 1_700_000_000, "chat": PRIVATE, "from": BOT_USER,
                                "text": "请选择隐患类别"}}})
            await fake.await_for("sendMessage", 3)
            return buttons

    buttons = run(scenario())
    assert [b["text"] for b in buttons] == ["用电", "消防", long_choice]
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons)
    assert buttons[0]["callback_data"] == "用电"
    assert [i.text for i in dispatch.seen] == ["上报", "用电", long_choice]
    assert dispatch.seen[1].chat == "42" and dispatch.seen[1].user == "42"
    assert len(fake.sent("answerCallbackQuery")) == 2
    assert [s["text"] for s in fake.sent()][1:] == ["已选择：用电", f"已选择：{long_choice}"]


# ---------------------------------------------------------------- webhook

def test_webhook_secret_token(fake, tmp_path, caplog):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    channel = make_channel(fake, tmp_path, webhook_url="https://duty.example.org/telegram/webhook",
                           secret_token="s3cret-token", **WEBHOOK_CLOCK)
    dispatch = Recorder()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with running(channel, dispatch):
            yield

    app = Starlette(routes=channel.routes(), lifespan=lifespan)
    update = {"update_id": 500, **message(text="webhook 你好", message_id=50)}
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"), TestClient(app) as client:
        (hook,) = fake.sent("setWebhook")
        assert hook["url"] == "https://duty.example.org/telegram/webhook"
        assert hook["secret_token"] == "s3cret-token"
        assert int(hook["max_connections"]) == 100  # requests stay open while answers are worked out
        wrong = client.post(WEBHOOK_PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
        missing = client.post(WEBHOOK_PATH, json=update)
        bad = client.post(WEBHOOK_PATH, content=b"{not json",
                          headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
        assert (wrong.status_code, missing.status_code, bad.status_code) == (403, 403, 400)
        good = client.post(WEBHOOK_PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
    assert good.status_code == 200
    # the answer rides on the webhook's response (one method call), not a separate sendMessage
    assert good.json() == {"method": "sendMessage", "chat_id": PRIVATE["id"], "text": "echo: webhook 你好"}
    assert "sendMessage" not in [name for name, _ in fake.calls]
    assert len(dispatch.seen) == 1
    assert "getUpdates" not in [name for name, _ in fake.calls]
    assert sum("wrong secret token" in r.getMessage() for r in caplog.records) == 2
    assert any("malformed update" in r.getMessage() for r in caplog.records)


def webhook_app(channel: TelegramChannel, dispatch):
    from starlette.applications import Starlette

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with running(channel, dispatch):
            yield

    return Starlette(routes=channel.routes(), lifespan=lifespan)


def post_update(client, update_id: int, text: str):
    return client.post(WEBHOOK_PATH, json={"update_id": update_id, **message(text=text, message_id=update_id)},
                       headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})


def test_webhook_answer_with_buttons_rides_on_the_response(fake, tmp_path):
    from starlette.testclient import TestClient

    channel = make_channel(fake, tmp_path, webhook_url="https://duty.example.org/telegram/webhook",
                           secret_token="s3cret-token", **WEBHOOK_CLOCK)
    dispatch = Recorder(lambda inc: [Reply(text="请选择类别", choices=("消防", "燃气"))])
    with TestClient(webhook_app(channel, dispatch)) as client:
        answer = post_update(client, 601, "/report").json()
    assert answer["method"] == "sendMessage" and answer["text"] == "请选择类别"
    buttons = [b["text"] for row in answer["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["消防", "燃气"]


def test_webhook_answers_too_slow_or_too_long_go_through_the_api(fake, tmp_path):
    from starlette.testclient import TestClient

    channel = make_channel(fake, tmp_path, webhook_url="https://duty.example.org/telegram/webhook",
                           secret_token="s3cret-token", **WEBHOOK_CLOCK)
    channel.inline.wait = 0.2

    async def dispatch(incoming: Incoming) -> list[Reply]:
        if incoming.text == "慢":
            await asyncio.sleep(0.6)
            return [Reply(text="慢的答复")]
        if incoming.text == "两条":
            return [Reply(text="第一条"), Reply(text="第二条")]
        return [Reply(text="长" * (MAX_TEXT + 10))]

    with TestClient(webhook_app(channel, dispatch)) as client:
        slow, two, long = (post_update(client, n, text).json() for n, text in ((701, "慢"), (702, "两条"), (703, "长")))
        sent = fake.wait_for("sendMessage", 5)
    assert slow == two == long == {"ok": True}
    texts = [s["text"] for s in sent]
    assert {"慢的答复", "第一条", "第二条"} <= set(texts) and texts.index("第一条") < texts.index("第二条")
    assert sum(len(t) for t in texts if set(t) == {"长"}) == MAX_TEXT + 10  # split at the limit, all sent
    assert channel.inline.answered == 0


def test_webhook_answer_to_an_old_message_goes_through_the_api(fake, tmp_path):
    """A message already 10 s old (the server is behind): the webhook is acknowledged at once and
    the answer is sent with sendMessage, instead of holding one of Telegram's connections."""
    from starlette.testclient import TestClient

    channel = make_channel(fake, tmp_path, webhook_url="https://duty.example.org/telegram/webhook",
                           secret_token="s3cret-token", clock=lambda: SENT_AT + 10)
    with TestClient(webhook_app(channel, Recorder())) as client:
        ack = post_update(client, 801, "晚到的问题").json()
        sent = fake.wait_for("sendMessage")
    assert ack == {"ok": True}
    assert sent[0]["text"] == "echo: 晚到的问题"


def test_webhook_address_with_repeated_failures_is_cut_off(fake, tmp_path, caplog):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from bot.channels.flood import FloodGuard

    channel = make_channel(fake, tmp_path, webhook_url="https://duty.example.org/telegram/webhook",
                           secret_token="s3cret-token", **WEBHOOK_CLOCK)
    channel.failures = FloodGuard(2)
    update = {"update_id": 501, **message(text="你好", message_id=51)}
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"), \
            TestClient(Starlette(routes=channel.routes())) as client:
        codes = [client.post(WEBHOOK_PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
                 .status_code for _ in range(4)]
        big = client.post(WEBHOOK_PATH, content=b"x" * 2_000_000).status_code
    assert codes == [403, 403, 403, 429] and big == 429
    assert any("answering 429" in r.getMessage() for r in caplog.records)


def test_flooding_sender_is_told_once_and_the_rest_dropped(fake, tmp_path):
    from bot.channels.flood import TOO_FAST, FloodGuard

    dispatch = Recorder()
    channel = make_channel(fake, tmp_path)
    channel.per_user = FloodGuard(2)

    async def scenario():
        async with running(channel, dispatch):
            for i in range(5):
                fake.add_update(message(text=f"第{i}条", message_id=60 + i))
            sent = await fake.await_for("sendMessage", 3)
            await asyncio.sleep(0.3)  # nothing more arrives
            return fake.sent("sendMessage")

    sent = run(scenario())
    assert [m["text"] for m in sent] == ["echo: 第0条", "echo: 第1条", TOO_FAST]
    assert len(dispatch.seen) == 2


# ---------------------------------------------------------------- push

def test_push_maps_errors_and_resumes_split_parts(fake, tmp_path):
    channel = make_channel(fake, tmp_path)

    async def scenario():
        try:  # push() works without run(): the bot initializes itself
            fake.fail_next("sendMessage", 429, {"ok": False, "error_code": 429,
                                                "description": "Too Many Requests: retry after 7",
                                                "parameters": {"retry_after": 7}})
            with pytest.raises(RateLimited) as limited:
                await channel.push("42", "值班提醒", key="k1")
            await channel.push("42", "值班提醒", key="k1")

            fake.fail_next("sendMessage", 403, {"ok": False, "error_code": 403,
                                                "description": "Forbidden: bot was blocked by the user"})
            with pytest.raises(PermanentError):
                await channel.push("43", "提醒", key="k2")
            fake.fail_next("sendMessage", 400, {"ok": False, "error_code": 400,
                                                "description": "Bad Request: chat not found"})
            with pytest.raises(PermanentError):
                await channel.push("44", "提醒", key="k3")
            fake.fail_next("sendMessage", 500, {"ok": False, "error_code": 500, "description": "Internal"})
            with pytest.raises(TransientError):
                await channel.push("45", "提醒", key="k4")

            # a split push rate-limited on its second part resumes there on retry: no duplicate part
            long_text = "\n".join("巡查记录" * 20 for _ in range(60))
            assert len(split_text(long_text)) == 2
            before = len(fake.sent())
            fake.fail_next("sendMessage", 429, {"ok": False, "error_code": 429, "description": "Too Many",
                                                "parameters": {"retry_after": 1}}, after=1)
            with pytest.raises(RateLimited):
                await channel.push("46", long_text, key="k5")
            await channel.push("46", long_text, key="k5")
            return limited.value, before
        finally:
            await channel.bot.shutdown()

    limited, before = run(scenario())
    assert limited.retry_after == 7
    texts = [s["text"] for s in fake.sent()]
    assert texts[:2] == ["值班提醒", "值班提醒"]
    parts = split_text("\n".join("巡查记录" * 20 for _ in range(60)))
    # part 1, part 2 refused with 429, part 2 again on retry: part 1 is not sent a second time
    assert texts[before:] == [parts[0], parts[1], parts[1]]


# ---------------------------------------------------------------- splitting

def test_split_text_limits():
    assert split_text("短消息") == ["短消息"]
    one_line = "安" * 9000
    parts = split_text(one_line)
    assert [len(p) for p in parts] == [4096, 4096, 808] and "".join(parts) == one_line
    emoji = "😀" * 3000  # 2 UTF-16 units each
    assert all(utf16_len(p) <= MAX_TEXT for p in split_text(emoji))
    assert "".join(split_text(emoji)) == emoji


def test_webhook_body_over_the_limit_is_refused(fake, tmp_path, caplog):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    channel = make_channel(fake, tmp_path, webhook_url="https://duty.example.org/telegram/webhook",
                           secret_token="s3cret-token", **WEBHOOK_CLOCK)
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"), \
            TestClient(Starlette(routes=channel.routes())) as client:
        status = client.post(WEBHOOK_PATH, content=b"{" + b" " * 1_100_000 + b"}",
                             headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}).status_code
    assert status == 413 and "refused 413" in caplog.text


def test_reply_the_platform_did_not_take_goes_to_the_outbox_hook(fake, tmp_path):
    queued = []

    async def later(chat, text, key):
        queued.append((chat, text, key))

    channel = make_channel(fake, tmp_path)
    channel.on_late = later
    dispatch = Recorder(lambda inc: [Reply(text="请选择类别", choices=("消防", "燃气"))])

    async def scenario():
        async with running(channel, dispatch):
            fake.fail_next("sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
            fake.add_update(message(text="我要举报"))
            for _ in range(100):
                if queued:
                    break
                await asyncio.sleep(0.05)

    run(scenario())
    [(chat, text, key)] = queued
    assert chat == str(PRIVATE["id"]) and text == "请选择类别\n1. 消防\n2. 燃气"
    assert key.startswith(f"telegram:reply:{PRIVATE['id']}:")


def test_reply_refused_for_good_is_not_queued(fake, tmp_path, caplog):
    queued = []

    async def later(chat, text, key):
        queued.append(chat)

    channel = make_channel(fake, tmp_path)
    channel.on_late = later

    async def scenario():
        async with running(channel, Recorder()):
            fake.fail_next("sendMessage", 403, {"ok": False, "error_code": 403,
                                                "description": "Forbidden: bot was blocked by the user"})
            fake.add_update(message(text="你好"))
            await fake.await_for("sendMessage")
            await asyncio.sleep(0.2)

    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"):
        run(scenario())
    assert queued == [] and "refused" in caplog.text
