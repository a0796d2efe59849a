"""Shared plumbing of the WeChat Official Account and WeCom callback channels (no feature logic).

Both platforms use the same callback shape (signed query string, AES "safe mode" XML body, a
5-second answer budget, up to 3 retries of the same MsgId) and the same access-token style APIs,
so the security checks and the 5-second rule live here once:

* XML is parsed ONLY with defusedxml (DOCTYPE, entity declarations and external references are
  refused: billion laughs and XXE never reach an expander) — the outer envelope *and* the
  decrypted inner message. wechatpy's own xmltodict parsing is bypassed by handing it a dict.
* Bodies larger than ``max_body`` are refused (413) before they are fully read.
* Timestamps outside ``replay_window`` seconds of the injected clock are refused (403).
* Platform retries are dropped by MsgId (events: FromUserName+CreateTime): a bounded in-memory
  TTL set by default; `safeduty serve` passes bot.channels.dedupe.DatabaseDedupe, shared by every
  worker process on the same database (any ``seen(key)`` returning a bool or an awaitable works).
* The 5-second rule: dispatch is awaited for ``reply_timeout`` (≈4 s). A ready answer goes back
  as the passive reply; otherwise "success" is answered at once and the replies are delivered
  later through the channel's ``push`` (customer-service / app message API).
"""
from __future__ import annotations

import asyncio
import hashlib
import inspect
import json as _json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from bot.channels.flood import FIRST_OVER, OK, TOO_FAST, FloodGuard
from bot.delivery_limits import PermanentError, RateLimited, TransientError
from bot.types import Attachment, Incoming, Reply

log = logging.getLogger("bot.channels.wx")

MAX_BODY = 64 * 1024
REPLAY_WINDOW = 300.0
REPLY_TIMEOUT = 4.0
PER_USER_PER_MINUTE = 30  # messages one sender may have answered per minute
FAILURES_PER_IP_PER_MINUTE = 20  # refused requests (bad signature, bad XML ...) before an address gets 429
TEXT_LIMIT_BYTES = 2048  # WeChat/WeCom text message content limit
RATE_LIMIT_ERRCODES = frozenset({45009, 45033, 45011})  # api freq / quota limits → RateLimited
TOKEN_ERRCODES = {40001, 40014, 42001}  # invalid / expired access_token: refresh once and retry


class BadRequest(Exception):
    """The request is refused; `status` is the HTTP status to answer."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def is_rate_limited(errcode: int) -> bool:
    # 45009: api freq out of limit; 45033: user/app call limit; 45011: api minute-quota; -1 busy is transient
    return errcode in RATE_LIMIT_ERRCODES


def parse_xml(data: bytes | str) -> dict[str, str]:
    """A flat dict of the children of <xml>, parsed with defusedxml (DTD/entities forbidden)."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadRequest(400, f"unsafe XML refused ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise BadRequest(400, f"malformed XML ({exc})") from exc
    if root.tag != "xml":
        raise BadRequest(400, f"unexpected XML root <{root.tag}>")
    return {child.tag: (child.text or "") for child in root}


def cdata(text: str) -> str:
    return "<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_text(reply: Reply) -> str:
    text = reply.text
    if reply.choices:
        text += "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(reply.choices, start=1))
    return text


def split_bytes(text: str, limit: int) -> list[str]:
    """Split `text` into pieces of at most `limit` UTF-8 bytes, at line ends where possible."""
    if len(text.encode()) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # one over-long line: cut by characters
            cut = ""
            for ch in line:
                if len((cut + ch).encode()) > limit:
                    break
                cut += ch
            if current:
                parts.append(current)
                current = ""
            parts.append(cut)
            line = line[len(cut):]
        if len((current + line).encode()) > limit:
            parts.append(current)
            current = line
        else:
            current += line
    if current:
        parts.append(current)
    return [p.rstrip("\n") or p for p in parts if p.strip()]


class TTLSet:
    """A bounded in-memory 'seen recently' set (per process; see the module docstring)."""

    def __init__(self, ttl: float = 600.0, max_items: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_items, self.clock = ttl, max_items, clock
        self._items: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True when `key` was seen within the TTL; otherwise records it and returns False."""
        now = self.clock()
        while self._items:
            oldest, at = next(iter(self._items.items()))
            if now - at <= self.ttl and len(self._items) < self.max_items:
                break
            self._items.popitem(last=False)
        if key in self._items:
            return True
        self._items[key] = now
        return False


class TokenCache:
    """An access token cached until shortly before it expires; one refresh at a time."""

    def __init__(self, fetch: Callable[[], Any], margin: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch, self.margin, self.clock = fetch, margin, clock
        self.token: str | None = None
        self.expires_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def invalidate(self) -> None:
        self.token, self.expires_at = None, 0.0

    async def get(self) -> str:
        if self.token and self.clock() < self.expires_at:
            return self.token
        async with self._get_lock():
            if self.token and self.clock() < self.expires_at:
                return self.token
            token, expires_in = await self.fetch()
            self.token = token
            self.expires_at = self.clock() + max(float(expires_in) - self.margin, 60.0)
            return token


async def call_with_token(api: "ApiClient", tokens: TokenCache, path: str, payload: dict) -> dict:
    """POST with the cached access token; an expired token is refreshed and the call retried once."""
    try:
        return await api.call("POST", path, params={"access_token": await tokens.get()}, json=payload)
    except TokenExpired:
        tokens.invalidate()
        return await api.call("POST", path, params={"access_token": await tokens.get()}, json=payload)


class ApiClient:
    """httpx calls to a WeChat-style JSON API, errors mapped onto bot.delivery_limits."""

    def __init__(self, api_base: str, timeout: float = 10.0) -> None:
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: Any = None

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client belongs to one event loop
            self._client, self._loop = httpx.AsyncClient(timeout=self.timeout), loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(self, method: str, path: str, *, params: dict | None = None,
                      json: Any = None) -> httpx.Response:
        kwargs: dict[str, Any] = {}
        if json is not None:  # UTF-8 JSON as WeChat expects (not \\u escapes)
            kwargs = {"content": _json.dumps(json, ensure_ascii=False).encode(),
                      "headers": {"Content-Type": "application/json; charset=utf-8"}}
        try:
            response = await self.client().request(method, self.api_base + path, params=params, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"transport: {exc}") from exc
        if response.status_code == 429:
            raise RateLimited(_retry_after(response), f"HTTP 429 from {path}")
        if response.status_code >= 500:
            raise TransientError(f"HTTP {response.status_code} from {path}")
        if response.status_code >= 400:
            raise PermanentError(f"HTTP {response.status_code} from {path}")
        return response

    async def call(self, method: str, path: str, *, params: dict | None = None, json: Any = None) -> dict:
        response = await self.request(method, path, params=params, json=json)
        try:
            data = response.json()
        except ValueError as exc:
            raise TransientError(f"non-JSON answer from {path}") from exc
        check_errcode(data, path)
        return data


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def check_errcode(data: dict, what: str) -> None:
    code = int(data.get("errcode", 0) or 0)
    if code == 0:
        return
    msg = f"{what}: errcode {code} {data.get('errmsg', '')}".strip()
    if is_rate_limited(code):
        raise RateLimited(60.0, msg)
    if code == -1:  # system busy
        raise TransientError(msg)
    if code in TOKEN_ERRCODES:
        raise TokenExpired(msg)
    raise PermanentError(msg)


class TokenExpired(TransientError):
    """The access token was refused (the caller refreshes it once)."""


async def read_body(request: Request, max_body: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > max_body:
                raise BadRequest(413, f"body of {length} bytes over {max_body}")
        except ValueError as exc:
            raise BadRequest(400, "bad Content-Length") from exc
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise BadRequest(413, f"body over {max_body} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise BadRequest(400, "client disconnected") from exc
    return b"".join(chunks)


def check_timestamp(timestamp: str, now: float, window: float) -> None:
    try:
        ts = int(timestamp)
    except (TypeError, ValueError) as exc:
        raise BadRequest(403, f"bad timestamp {timestamp!r}") from exc
    if abs(now - ts) > window:
        raise BadRequest(403, f"timestamp {ts} outside the {window:.0f}s replay window (now {now:.0f})")


def refuse(channel: str, request: Request, exc: BadRequest) -> Response:
    client = request.client.host if request.client else "?"
    log.warning("%s callback refused %d from %s: %s", channel, exc.status, client, exc)
    return PlainTextResponse("", status_code=exc.status)


def message_to_incoming(channel: str, msg: dict[str, str], photo: Attachment | None = None) -> Incoming | None:
    """Text / image / location / event → Incoming; None for events the bot ignores. Other types
    (voice, video, file, link ...) become an attachment of that kind: the router says what it accepts."""
    user = msg.get("FromUserName", "")
    kind = msg.get("MsgType", "")
    if kind == "text":
        return Incoming(channel=channel, chat=user, user=user, text=msg.get("Content", ""))
    if kind == "image":
        att = photo or Attachment(kind="photo", data={"url": msg.get("PicUrl", ""),
                                                        "media_id": msg.get("MediaId", "")})
        return Incoming(channel=channel, chat=user, user=user, attachments=(att,))
    if kind == "location":
        try:
            lat, lon = float(msg.get("Location_X", "")), float(msg.get("Location_Y", ""))
        except ValueError:
            return Incoming(channel=channel, chat=user, user=user)
        att = Attachment(kind="location", data={"lat": lat, "lon": lon, "address": msg.get("Label", ""),
                                                "scale": msg.get("Scale", "")})
        return Incoming(channel=channel, chat=user, user=user, attachments=(att,))
    if kind == "event":
        event = msg.get("Event", "").lower()
        if event == "subscribe":
            return Incoming(channel=channel, chat=user, user=user, text="/start")
        if event == "click" and msg.get("EventKey"):
            return Incoming(channel=channel, chat=user, user=user, text=msg["EventKey"])
        return None
    return Incoming(channel=channel, chat=user, user=user,
                    attachments=(Attachment(kind=kind or "unknown", data={"media_id": msg.get("MediaId", "")}),))


def dedupe_key(msg: dict[str, str]) -> str:
    if msg.get("MsgId"):
        return "id:" + msg["MsgId"]
    return f"ev:{msg.get('FromUserName', '')}:{msg.get('CreateTime', '')}:{msg.get('Event', '')}"


async def download_media(api: ApiClient, tokens: TokenCache, media_id: str, media_dir: Path) -> Path:
    response = await api.request("GET", "/cgi-bin/media/get",
                                 params={"access_token": await tokens.get(), "media_id": media_id})
    if response.headers.get("content-type", "").startswith(("application/json", "text/plain")):
        check_errcode(response.json(), "media/get")
    data = response.content
    media_dir.mkdir(parents=True, exist_ok=True)
    path = media_dir / hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    return path


LateHook = Callable[[str, str, str], Any]  # async (chat, text, key) -> None


class CallbackChannel:
    """The callback half shared by WeChatMPChannel and WeComChannel. Subclasses provide `name`,
    `path`, `_verify_get`, `_open` (verify + decrypt a POST), `_seal` (wrap a passive reply),
    `push` and `_media_api` (ApiClient, TokenCache) for image downloads."""

    name = "wx"
    path = "/wx/callback"

    def __init__(self, *, max_body: int = MAX_BODY, replay_window: float = REPLAY_WINDOW,
                 reply_timeout: float = REPLY_TIMEOUT, clock: Callable[[], float] = time.time,
                 media_dir: str | Path | None = None, dispatch: Any = None, dedupe: Any = None,
                 on_late: LateHook | None = None) -> None:
        self.max_body = max_body
        self.replay_window = replay_window
        self.reply_timeout = reply_timeout
        self.clock = clock
        self.media_dir = Path(media_dir) if media_dir else None
        self.dispatch = dispatch
        self.dedupe = dedupe or TTLSet()
        # Where late replies go (after "success"): default push() now; serve can enqueue them in the
        # outbox instead (its retries/back-off then apply) by passing on_late.
        self.on_late = on_late
        # Flood limits (per process; `safeduty serve` sets them from channels.server.flood).
        self.per_user = FloodGuard(PER_USER_PER_MINUTE)
        self.failures = FloodGuard(FAILURES_PER_IP_PER_MINUTE)
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ WebhookChannel

    def bind(self, dispatch: Any) -> None:
        self.dispatch = dispatch

    def routes(self) -> list:
        from starlette.routing import Route

        return [Route(self.path, self._get, methods=["GET"]), Route(self.path, self._post, methods=["POST"])]

    async def run(self, dispatch: Any) -> None:
        """Bind `dispatch` for the routes; nothing to poll (tokens refresh on demand)."""
        self.bind(dispatch)
        await asyncio.Event().wait()

    async def send(self, chat: str, reply: Reply | str, *, key: str = "") -> None:
        """Channel style send(chat, Reply) or outbox PushChannel style send(chat, text, key=)."""
        if isinstance(reply, str):
            await self.push(chat, reply, key=key)
        else:
            await self.push(reply.chat or chat, render_text(reply), key=key)

    async def push(self, chat: str, text: str, *, key: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for late deliveries in flight (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())

    # ------------------------------------------------------------ subclass hooks

    def _verify_get(self, q: dict[str, str]) -> str:
        raise NotImplementedError

    def _open(self, q: dict[str, str], envelope: dict[str, str], body: bytes) -> str:
        raise NotImplementedError

    def _seal(self, q: dict[str, str], xml: str) -> str:
        raise NotImplementedError

    def _media_api(self) -> tuple[ApiClient, TokenCache] | None:
        return None

    # ------------------------------------------------------------ HTTP handlers

    def _refuse(self, request: Request, exc: BadRequest) -> Response:
        """Log and answer a refused request; an address that keeps failing is cut off for a minute."""
        client = request.client.host if request.client else "?"
        if self.failures.hit(client) == FIRST_OVER:
            log.warning("%s: %s sent over %d refused requests in a minute; answering 429 for now",
                        self.name, client, self.failures.limit)
        return refuse(self.name, request, exc)

    def _cut_off(self, request: Request) -> Response | None:
        client = request.client.host if request.client else "?"
        if self.failures.blocked(client):
            return PlainTextResponse("", status_code=429)
        return None

    async def _get(self, request: Request) -> Response:
        q = dict(request.query_params)
        if (cut := self._cut_off(request)) is not None:
            return cut
        try:
            check_timestamp(q.get("timestamp", ""), self.clock(), self.replay_window)
            echo = self._verify_get(q)
        except BadRequest as exc:
            return self._refuse(request, exc)
        return PlainTextResponse(echo)

    async def _post(self, request: Request) -> Response:
        q = dict(request.query_params)
        if (cut := self._cut_off(request)) is not None:
            return cut
        try:
            check_timestamp(q.get("timestamp", ""), self.clock(), self.replay_window)
            body = await read_body(request, self.max_body)
            envelope = parse_xml(body)
            plain = self._open(q, envelope, body)
            msg = parse_xml(plain)
        except BadRequest as exc:
            return self._refuse(request, exc)
        if self.dispatch is None:
            log.error("%s callback before the channel was bound to a dispatcher", self.name)
            return PlainTextResponse("", status_code=503)
        key = dedupe_key(msg)
        seen = self.dedupe.seen(f"{self.name}:{key}")
        if inspect.isawaitable(seen):  # a shared store (bot.channels.dedupe) answers asynchronously
            seen = await seen
        if seen:
            log.info("%s retry of %s dropped", self.name, key)
            return PlainTextResponse("success")
        sender = msg.get("FromUserName", "")
        flood = self.per_user.hit(sender)
        if flood != OK:
            if flood != FIRST_OVER:
                return PlainTextResponse("success")
            log.warning("%s: %s sent over %d messages in a minute; dropping the rest of the minute",
                        self.name, sender, self.per_user.limit)
            return Response(self._seal(q, self._reply_xml(msg, TOO_FAST)), media_type="application/xml")
        task = asyncio.ensure_future(self._process(msg))
        done, _ = await asyncio.wait({task}, timeout=self.reply_timeout)
        if not done:
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._late(t, msg, key))
            return PlainTextResponse("success")
        replies = self._result(task, key)
        passive, rest = self._split_passive(replies, msg.get("FromUserName", ""))
        if rest:
            self._spawn(self._deliver(rest, msg.get("FromUserName", ""), key, start=1))
        if passive is None:
            return PlainTextResponse("success")
        xml = self._reply_xml(msg, passive)
        return Response(self._seal(q, xml), media_type="application/xml")

    # ------------------------------------------------------------ processing

    async def _process(self, msg: dict[str, str]) -> list[Reply]:
        photo = None
        if msg.get("MsgType") == "image":
            photo = await self._fetch_photo(msg)
        incoming = message_to_incoming(self.name, msg, photo)
        if incoming is None:
            return []
        return list(await self.dispatch(incoming))

    async def _fetch_photo(self, msg: dict[str, str]) -> Attachment | None:
        api = self._media_api()
        data = {"url": msg.get("PicUrl", ""), "media_id": msg.get("MediaId", "")}
        if self.media_dir is None or api is None or not msg.get("MediaId"):
            return None
        try:
            path = await download_media(api[0], api[1], msg["MediaId"], self.media_dir)
        except Exception as exc:  # keep the PicUrl; the handler tells the user if it needs the file
            log.warning("%s media download failed for %s: %s", self.name, msg.get("MediaId"), exc)
            return None
        return Attachment(kind="photo", path=str(path), data=data)

    def _result(self, task: asyncio.Task, key: str) -> list[Reply]:
        if task.cancelled():
            return []
        exc = task.exception()
        if exc is not None:
            log.error("%s dispatch of %s failed", self.name, key, exc_info=exc)
            return []
        return task.result()

    @staticmethod
    def _split_passive(replies: list[Reply], chat: str) -> tuple[str | None, list[Reply]]:
        """One passive text for the replies to this chat, if it fits; the rest are pushed."""
        here = [r for r in replies if not r.chat or r.chat == chat]
        elsewhere = [r for r in replies if r.chat and r.chat != chat]
        if not here:
            return None, elsewhere
        text = "\n\n".join(render_text(r) for r in here)
        if len(text.encode()) > TEXT_LIMIT_BYTES:
            return None, replies
        return text, elsewhere

    def _reply_xml(self, msg: dict[str, str], text: str) -> str:
        return ("<xml>"
                f"<ToUserName>{cdata(msg.get('FromUserName', ''))}</ToUserName>"
                f"<FromUserName>{cdata(msg.get('ToUserName', ''))}</FromUserName>"
                f"<CreateTime>{int(self.clock())}</CreateTime>"
                "<MsgType><![CDATA[text]]></MsgType>"
                f"<Content>{cdata(text)}</Content>"
                "</xml>")

    def _late(self, task: asyncio.Task, msg: dict[str, str], key: str) -> None:
        self._tasks.discard(task)
        replies = self._result(task, key)
        if replies:
            self._spawn(self._deliver(replies, msg.get("FromUserName", ""), key, start=0))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, replies: list[Reply], chat: str, key: str, start: int) -> None:
        for i, reply in enumerate(replies, start=start):
            target, text, k = reply.chat or chat, render_text(reply), f"{self.name}:{key}:{i}"
            try:
                if self.on_late is not None:
                    await self.on_late(target, text, k)
                else:
                    await self.push(target, text, key=k)
            except Exception:
                log.exception("%s late reply %s to %s not delivered", self.name, k, target)
