"""Shared plumbing of the WeChat Official Account and WeCom channels: XML, limits, API client, tokens
(the callback request handling itself is bot.channels.wx_callback; no feature logic here).

Both platforms use the same callback shape (signed query string, AES "safe mode" XML body, a
5-second answer budget, up to 3 retries of the same MsgId) and the same access-token style APIs,
so the security checks live here once (applied per request by bot.channels.wx_callback):

* XML is parsed ONLY with defusedxml (DOCTYPE, entity declarations and external references are
  refused: billion laughs and XXE never reach an expander) — the outer envelope *and* the
  decrypted inner message. wechatpy's own xmltodict parsing is bypassed by handing it a dict.
* Bodies larger than ``max_body`` are refused (413) before they are fully read.
* Timestamps outside ``replay_window`` seconds of the injected clock are refused (403).
* Platform retries are dropped by MsgId (events: FromUserName+CreateTime): a bounded in-memory
  TTL set by default; `safeduty serve` passes bot.channels.dedupe.DatabaseDedupe, shared by every
  worker process on the same database (any ``seen(key)`` returning a bool or an awaitable works).
* Flood limits (bot.channels.flood): per sender after decryption, per address for refused requests.
"""
from __future__ import annotations

import asyncio
import hashlib
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
