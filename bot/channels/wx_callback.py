"""The callback half shared by the WeChat Official Account and WeCom channels (no feature logic).

Per request: flood cut-off for addresses that keep failing, timestamp replay window, bounded body,
defusedxml parsing, the subclass's signature check and decryption, retry dedupe by MsgId, a
per-sender flood limit, then the 5-second rule: dispatch is awaited for ``reply_timeout`` (≈4 s);
a ready answer goes back as the passive reply, otherwise "success" is answered at once and the
replies are delivered later (`on_late`: the outbox under `safeduty serve`, else `push`).
"""
from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.channels.flood import FIRST_OVER, OK, TOO_FAST, FloodGuard
from bot.channels.wx_common import (FAILURES_PER_IP_PER_MINUTE, MAX_BODY, PER_USER_PER_MINUTE, REPLAY_WINDOW,
                                    REPLY_TIMEOUT, TEXT_LIMIT_BYTES, ApiClient, BadRequest, TokenCache, TTLSet,
                                    cdata, check_timestamp, dedupe_key, download_media, message_to_incoming,
                                    parse_xml, read_body, refuse, render_text)
from bot.types import Attachment, Reply

log = logging.getLogger("bot.channels.wx")

# Answers being worked on beyond which a new message gets a "busy" note at once instead of joining
# a queue it would leave only minutes later (the sender is told to resend; nothing is dropped silently).
MAX_BACKLOG = 2000
BUSY = "当前咨询人数较多，请稍后再发一次。"


LateHook = Callable[[str, str, str], Any]  # async (chat, text, key) -> None


class CallbackChannel(ABC):
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
        self.max_backlog = MAX_BACKLOG
        self._tasks: set[asyncio.Task] = set()
        self._backlog = 0  # dispatches started and not finished (answers being worked on)
        self._busy, self._busy_logged_at = 0, float("-inf")

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

    @abstractmethod
    async def push(self, chat: str, text: str, *, key: str) -> None:
        """Deliver a text to a user through the platform's API (late answers, outbox rows)."""

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for late deliveries in flight (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())

    # ------------------------------------------------------------ subclass hooks

    @abstractmethod
    def _verify_get(self, q: dict[str, str]) -> str:
        """The echo of a URL-verification GET, or BadRequest."""

    @abstractmethod
    def _open(self, q: dict[str, str], envelope: dict[str, str], body: bytes) -> str:
        """The plain XML of a verified, decrypted POST, or BadRequest."""

    @abstractmethod
    def _seal(self, q: dict[str, str], xml: str) -> str:
        """A passive reply wrapped (encrypted and signed) for the platform."""

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
        # The platform's 5 s start when it sent the request: count from arrival, not from dispatch,
        # and from its `timestamp` (whole seconds) when that is earlier — a request that waited in
        # our accept queue during a burst has less time left.
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        q = dict(request.query_params)
        if (cut := self._cut_off(request)) is not None:
            return cut
        try:
            check_timestamp(q.get("timestamp", ""), self.clock(), self.replay_window)
            # `timestamp` is the send time rounded down to the second: count from it, the earliest the
            # platform can have sent. (Counting from the middle of that second let ~1% of a 10x burst
            # get their "success" after 4.5 s: bench/webhook_load.py, docs/benchmarks.md.)
            left = int(q["timestamp"]) + self.reply_timeout - self.clock()
            deadline = arrived + max(0.0, min(self.reply_timeout, left))
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
        if self._backlog >= self.max_backlog:
            self._busy += 1
            if loop.time() - self._busy_logged_at > 10:  # one line per 10 s, not one per message
                log.warning("%s: %d answers in progress; %d sender(s) asked to resend so far",
                            self.name, self._backlog, self._busy)
                self._busy_logged_at = loop.time()
            return Response(self._seal(q, self._reply_xml(msg, BUSY)), media_type="application/xml")
        task = asyncio.ensure_future(self._process(msg))
        self._backlog += 1
        task.add_done_callback(self._finished)
        remaining = deadline - loop.time()
        # no time left: even an instant answer would reach the platform after it gave up
        done = (await asyncio.wait({task}, timeout=remaining))[0] if remaining > 0 else set()
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

    def _finished(self, task: asyncio.Task) -> None:
        self._backlog -= 1

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
