"""Telegram channel (python-telegram-bot 22): long polling by default, or a webhook route with
`secret_token` verification when a public URL is configured.

The adapter only converts: Telegram updates -> `Incoming`, `Reply` -> Bot API calls. It holds no
feature logic.

* Private chats: everything is passed on. Groups: every message is passed on, but only commands
  for this bot, @mentions of it and replies to its messages carry ``mentioned=True`` (the router
  ignores the rest); commands addressed to *another* bot (``/help@OtherBot``) are dropped.
* Photos (largest size), documents and locations become `Attachment`s; files are downloaded to
  `media_dir` with getFile.
* `Reply.choices` become an inline keyboard; pressing a button comes back as an `Incoming` whose
  text is the choice. callback_data is limited to 64 bytes, so longer choices travel as a short
  token that maps back to the text.
* Texts longer than 4,096 characters are split at line boundaries.
* `push` maps Bot API errors onto bot.delivery_limits errors (429 -> RateLimited, network/5xx ->
  TransientError, other 4xx -> PermanentError).
* Updates are processed concurrently across chats but in order within a chat.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.channels.base import Dispatch
from bot.channels.flood import FIRST_OVER, OK, TOO_FAST, FloodGuard
from bot.channels.telegram_bot_api import (MAX_CONCURRENT_UPDATES, MAX_TEXT, PerChatUpdateProcessor,  # noqa: F401
                                           map_error, retry_after_seconds, split_text, utf16_len)
from bot.channels.telegram_inline import InlineReplies
from bot.delivery_limits import PermanentError
from bot.types import Attachment, Incoming, Reply

log = logging.getLogger(__name__)

NAME = "telegram"
MAX_CALLBACK_BYTES = 64
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_BASE_FILE_URL = "https://api.telegram.org/file/bot"
MAX_WEBHOOK_BODY = 1_000_000
REPLY_RETRY_AFTER_CAP = 30.0  # interactive replies wait out a 429 at most this long, then give up
PER_USER_PER_MINUTE = 30  # messages one sender may have answered per minute
FAILURES_PER_IP_PER_MINUTE = 20  # refused webhook calls before an address gets 429 for the minute
# Replies sent through the Bot API at once. Beyond this they wait in an asyncio queue (cheap)
# instead of httpx's connection pool, whose cost per request grew with the requests queued in it
# (py-spy, bench/webhook_load.py); Telegram takes ~30 messages a second anyway.
SEND_CONCURRENCY = 32
# Webhook connections Telegram may open at once (its maximum): a webhook request stays open while
# its answer is worked out (telegram_inline), so the default 40 would throttle delivery.
WEBHOOK_CONNECTIONS = 100

DOWNLOAD_FAILED_NOTE = "附件下载失败，请稍后重新发送。"

# Message types passed on as an attachment of that kind, undownloaded: the router says what it accepts.
UNSUPPORTED_KINDS = ("voice", "video", "video_note", "sticker", "audio", "animation", "contact", "poll",
                     "dice", "game", "story", "invoice", "paid_media")


class TelegramChannel:
    name = NAME

    def __init__(self, token: str, base_url: str | None = None, webhook_url: str | None = None,
                 secret_token: str | None = None, media_dir: str | Path = "data/media/telegram",
                 bot_username: str | None = None, *, base_file_url: str | None = None,
                 poll_timeout: float = 30.0, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES,
                 clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.base_url = base_url or DEFAULT_BASE_URL
        if base_file_url is None:
            base_file_url = (self.base_url[:-len("/bot")] + "/file/bot") if self.base_url.endswith("/bot") \
                else DEFAULT_BASE_FILE_URL
        self.base_file_url = base_file_url
        self.webhook_url = webhook_url
        self.secret_token = secret_token
        self.media_dir = Path(media_dir)
        self.bot_username = bot_username.lstrip("@") if bot_username else None
        self.poll_timeout = poll_timeout
        self.application = (Application.builder().token(token).base_url(self.base_url)
                            .base_file_url(self.base_file_url)
                            .concurrent_updates(PerChatUpdateProcessor(max_concurrent_updates))
                            .build())
        self.application.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        self.application.add_handler(CallbackQueryHandler(self._on_callback))
        self.application.add_error_handler(self._on_error)
        self._dispatch: Dispatch | None = None
        self._ready = asyncio.Event()
        self._choice_tokens: OrderedDict[str, str] = OrderedDict()  # long choice texts by token
        self._pushed_parts: OrderedDict[str, int] = OrderedDict()  # key -> parts already delivered
        # Where a reply the platform did not take goes (async (chat, text, key)); serve: the outbox.
        self.on_late = None
        # Flood limits (per process; `safeduty serve` sets them from channels.server.flood).
        self.per_user = FloodGuard(PER_USER_PER_MINUTE)
        self.clock = clock
        self.inline = InlineReplies()  # webhook mode: a plain answer rides on the webhook's response
        self._send_slots = asyncio.Semaphore(SEND_CONCURRENCY)
        self.failures = FloodGuard(FAILURES_PER_IP_PER_MINUTE)

    @property
    def bot(self):
        return self.application.bot

    # ------------------------------------------------------------------ running

    async def run(self, dispatch: Dispatch) -> None:
        """Long polling without a webhook URL; with one, register the webhook and process what the
        route receives. Runs until cancelled."""
        self._dispatch = dispatch
        app = self.application
        await app.initialize()
        try:
            await app.start()
            try:
                if self.webhook_url:
                    await self.bot.set_webhook(self.webhook_url, secret_token=self.secret_token,
                                               allowed_updates=["message", "callback_query"],
                                               max_connections=WEBHOOK_CONNECTIONS)
                    log.info("telegram: webhook mode, %s", self.webhook_url)
                else:
                    await app.updater.start_polling(timeout=int(self.poll_timeout), poll_interval=0.0,
                                                    allowed_updates=["message", "callback_query"])
                    log.info("telegram: long polling as @%s", self._username())
                self._ready.set()
                await asyncio.Event().wait()
            finally:
                self._ready.clear()
                if app.updater and app.updater.running:
                    await app.updater.stop()
                await app.stop()
        finally:
            await app.shutdown()

    def routes(self) -> list:
        from starlette.routing import Route

        return [Route(WEBHOOK_PATH, self._webhook, methods=["POST"])]

    async def _webhook(self, request):
        from starlette.responses import JSONResponse, PlainTextResponse

        from bot.channels.wx_common import BadRequest, read_body

        client = request.client.host if request.client else "?"
        if self.failures.blocked(client):
            return PlainTextResponse("too many failures", status_code=429)

        def refused(status: int, text: str, why: str):
            log.warning("telegram webhook: refused %d from %s: %s", status, client, why)
            if self.failures.hit(client) == FIRST_OVER:
                log.warning("telegram webhook: %s sent over %d refused requests in a minute; answering 429 for now",
                            client, self.failures.limit)
            return PlainTextResponse(text, status_code=status)

        given = request.headers.get(SECRET_HEADER, "")
        if self.secret_token and not hmac.compare_digest(given.encode(), self.secret_token.encode()):
            return refused(403, "forbidden", "wrong secret token")
        try:
            body = await read_body(request, MAX_WEBHOOK_BODY)  # stops reading past the limit
        except BadRequest as exc:
            return refused(exc.status, "bad request", str(exc))
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(data, self.bot)
        except Exception as exc:  # malformed JSON or not an Update
            return refused(400, "bad request", f"malformed update ({exc})")
        if not self._ready.is_set():
            log.warning("telegram webhook: update %s before the channel is running", data["update_id"])
            return PlainTextResponse("not ready", status_code=503)  # Telegram retries
        waiter = self.inline.open(update.update_id)
        await self.application.update_queue.put(update)
        sent = getattr(update.effective_message, "date", None)
        age = max(0.0, self.clock() - sent.timestamp()) if sent is not None else 0.0
        return JSONResponse(await self.inline.response_for(update.update_id, waiter, age) or {"ok": True})

    # ------------------------------------------------------------------ inbound

    def _username(self) -> str:
        if self.bot_username:
            return self.bot_username
        try:
            return self.bot.username or ""
        except RuntimeError:  # not initialized
            return ""

    def _bot_id(self) -> int | None:
        try:
            return self.bot.id
        except RuntimeError:
            return None

    def _addressing(self, message: Message) -> tuple[bool, bool, str]:
        """(mentioned, for_other_bot, cleaned text) of a group message."""
        username = self._username().lower()
        text = message.text or message.caption or ""
        entities = message.parse_entities() if message.text else message.parse_caption_entities()
        mentioned, other = False, False
        for entity, value in entities.items():
            if entity.type == "bot_command" and entity.offset == 0:
                target = value.partition("@")[2].lower()
                if not target or target == username:
                    mentioned = True
                else:
                    other = True
            elif entity.type == "mention" and username and value.lower() == "@" + username:
                mentioned = True
            elif entity.type == "text_mention" and entity.user and entity.user.id == self._bot_id():
                mentioned = True
        reply_to = message.reply_to_message
        if reply_to and reply_to.from_user and reply_to.from_user.id == self._bot_id():
            mentioned = True
        return mentioned, other and not mentioned, self._clean(text)

    def _clean(self, text: str) -> str:
        username = self._username()
        if not username:
            return text
        text = re.sub(r"^(/\w+)@" + re.escape(username) + r"\b", r"\1", text, flags=re.IGNORECASE)
        text = re.sub(r"@" + re.escape(username) + r"\b", "", text, flags=re.IGNORECASE)
        return text.strip()

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        chat = message.chat
        is_group = chat.type in ("group", "supergroup")
        if chat.type == "channel":
            return
        if is_group:
            mentioned, for_other, text = self._addressing(message)
            if for_other:
                return
        else:
            mentioned, text = True, self._clean(message.text or message.caption or "")

        other = [kind for kind in UNSUPPORTED_KINDS if getattr(message, kind, None)]
        if other:
            if mentioned:
                await self._deliver(Incoming(channel=NAME, chat=str(chat.id), user=str(message.from_user.id),
                                             attachments=tuple(Attachment(kind=k) for k in other),
                                             mentioned=True, is_group=is_group))
            return

        if is_group and not mentioned:  # the router ignores it: no downloads for unaddressed chatter
            if text:
                await self._deliver(Incoming(channel=NAME, chat=str(chat.id), user=str(message.from_user.id),
                                             text=text, mentioned=False, is_group=True), update.update_id)
            return

        attachments: list[Attachment] = []
        try:
            if message.photo:
                attachments.append(await self._download_photo(message))
            if message.document:
                attachments.append(await self._download_document(message))
        except TelegramError as exc:
            log.warning("telegram: download failed in chat %s: %s", chat.id, exc)
            if mentioned:
                await self._send_reply(chat.id, Reply(text=DOWNLOAD_FAILED_NOTE), reply_to=message.message_id)
            return
        location = message.location or (message.venue.location if message.venue else None)
        if location:
            attachments.append(Attachment(kind="location",
                                          data={"lat": location.latitude, "lon": location.longitude}))
        if not text and not attachments:
            return  # service messages (members joined, title changed, ...)
        incoming = Incoming(channel=NAME, chat=str(chat.id), user=str(message.from_user.id), text=text,
                            attachments=tuple(attachments), mentioned=mentioned, is_group=is_group)
        await self._deliver(incoming, update.update_id)

    async def _download_photo(self, message: Message) -> Attachment:
        photo = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        path = self._media_path(message, photo.file_unique_id, ".jpg")
        file = await photo.get_file()
        await file.download_to_drive(path)
        return Attachment(kind="photo", path=str(path), mime="image/jpeg")

    async def _download_document(self, message: Message) -> Attachment:
        document = message.document
        suffix = Path(document.file_name or "").suffix[:10]
        path = self._media_path(message, document.file_unique_id, suffix)
        file = await document.get_file()
        await file.download_to_drive(path)
        return Attachment(kind="document", path=str(path), mime=document.mime_type or "",
                          name=document.file_name or "")

    def _media_path(self, message: Message, unique_id: str, suffix: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", unique_id)
        safe_suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{0,9}", suffix or "") else ""
        self.media_dir.mkdir(parents=True, exist_ok=True)
        return self.media_dir / f"{message.chat.id}_{message.message_id}_{safe}{safe_suffix}"

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await query.answer()
        except TelegramError as exc:  # an expired query must not stop the choice
            log.info("telegram: answerCallbackQuery failed: %s", exc)
        data = query.data or ""
        text = self._choice_tokens.get(data, data)
        message = query.message
        chat_id = message.chat.id if message is not None else query.from_user.id
        is_group = message is not None and message.chat.type in ("group", "supergroup")
        if not text:
            return
        incoming = Incoming(channel=NAME, chat=str(chat_id), user=str(query.from_user.id), text=text,
                            mentioned=True, is_group=is_group)
        await self._deliver(incoming, update.update_id)

    async def _deliver(self, incoming: Incoming, update_id: int | None = None) -> None:
        if self._dispatch is None:
            log.error("telegram: update for chat %s before dispatch was set", incoming.chat)
            return
        flood = self.per_user.hit(incoming.user) if incoming.mentioned else OK  # group chatter is not ours
        if flood != OK:
            if flood == FIRST_OVER:
                log.warning("telegram: %s sent over %d messages in a minute; dropping the rest of the minute",
                            incoming.user, self.per_user.limit)
                await self._send_reply(incoming.chat, Reply(text=TOO_FAST))
            return
        replies = await self._dispatch(incoming)
        if len(replies) == 1 and self._answer_inline(update_id, incoming.chat, replies[0]):
            return
        for reply in replies:
            await self._send_reply(reply.chat or incoming.chat, reply)

    def _answer_inline(self, update_id: int | None, chat: str, reply: Reply) -> bool:
        """A lone reply that fits one message, to the chat it answers, goes back in the webhook's
        response while that request is still open (one reply only: a second one sent through the
        API could overtake it)."""
        parts = split_text(reply.text or "…")
        if update_id is None or len(parts) != 1 or (reply.chat and reply.chat != chat):
            return False
        payload: dict = {"method": "sendMessage", "chat_id": int(chat) if chat.lstrip("-").isdigit() else chat,
                         "text": parts[0]}
        if reply.choices:
            payload["reply_markup"] = self.keyboard(reply.choices).to_dict()
        return self.inline.offer(update_id, payload)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update: %r", context.error, exc_info=context.error)

    # ------------------------------------------------------------------ outbound

    def _choice_data(self, choice: str) -> str:
        if len(choice.encode()) <= MAX_CALLBACK_BYTES:
            return choice
        token = "c:" + hashlib.sha1(choice.encode()).hexdigest()[:20]
        self._choice_tokens[token] = choice
        self._choice_tokens.move_to_end(token)
        while len(self._choice_tokens) > 10_000:
            self._choice_tokens.popitem(last=False)
        return token

    def keyboard(self, choices: tuple[str, ...] | list[str]) -> InlineKeyboardMarkup:
        buttons = [InlineKeyboardButton(c, callback_data=self._choice_data(c)) for c in choices]
        per_row = 2 if all(utf16_len(c) <= 8 for c in choices) else 1
        return InlineKeyboardMarkup([buttons[i:i + per_row] for i in range(0, len(buttons), per_row)])

    async def _send_reply(self, chat: str | int, reply: Reply, reply_to: int | None = None) -> None:
        """Interactive reply: waits out a short 429 once per part. A part the platform did not take
        for a passing reason (timeout, 5xx, a long 429) goes, with the rest, to `on_late` (the outbox
        under `safeduty serve`, retried with back-off); without it, or on a permanent error, it is logged."""
        parts = split_text(reply.text or "…")
        for index, part in enumerate(parts):
            markup = self.keyboard(reply.choices) if reply.choices and index == len(parts) - 1 else None
            for attempt in range(2):
                try:
                    async with self._send_slots:
                        await self.bot.send_message(chat_id=chat, text=part, reply_markup=markup,
                                                    reply_to_message_id=reply_to if index == 0 else None)
                    break
                except RetryAfter as exc:
                    wait = retry_after_seconds(exc)
                    if attempt or wait > REPLY_RETRY_AFTER_CAP:
                        await self._reply_later(chat, parts[index:], reply, f"rate limited for {wait}s")
                        return
                    await asyncio.sleep(wait)
                except TelegramError as exc:
                    if isinstance(map_error(exc), PermanentError):
                        log.warning("telegram: reply to %s refused: %s", chat, exc)
                    else:
                        await self._reply_later(chat, parts[index:], reply, str(exc))
                    return

    async def _reply_later(self, chat: str | int, parts: list[str], reply: Reply, why: str) -> None:
        if self.on_late is None:
            log.warning("telegram: reply to %s dropped (%s)", chat, why)
            return
        text = "\n".join(parts)
        if reply.choices:  # buttons cannot travel through the outbox: number them instead
            text += "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(reply.choices, start=1))
        key = f"telegram:reply:{chat}:{uuid.uuid4().hex}"
        try:
            await self.on_late(str(chat), text, key)
            log.info("telegram: reply to %s queued in the outbox (%s)", chat, why)
        except Exception:
            log.exception("telegram: reply to %s lost: sending failed (%s) and queueing failed", chat, why)

    async def send(self, chat: str, reply: Reply) -> None:
        """Channel protocol: deliver a Reply to a chat (buttons included); errors are raised mapped."""
        try:
            await self.bot.initialize()  # idempotent; lets pushes go out before run() started
        except TelegramError as exc:
            raise map_error(exc) from exc
        parts = split_text(reply.text or "…")
        for index, part in enumerate(parts):
            markup = self.keyboard(reply.choices) if reply.choices and index == len(parts) - 1 else None
            try:
                await self.bot.send_message(chat_id=chat, text=part, reply_markup=markup)
            except TelegramError as exc:
                raise map_error(exc) from exc

    async def push(self, chat: str, text: str, *, key: str) -> None:
        """Outbox delivery. Telegram cannot deduplicate by key, but parts of a split message that
        already went out are remembered per key, so a retry in this process resumes after them."""
        try:
            await self.bot.initialize()  # idempotent (getMe once)
        except TelegramError as exc:
            raise map_error(exc) from exc
        parts = split_text(text)
        done = self._pushed_parts.get(key, 0)
        for index in range(done, len(parts)):
            try:
                await self.bot.send_message(chat_id=chat, text=parts[index])
            except TelegramError as exc:
                raise map_error(exc) from exc
            self._pushed_parts[key] = index + 1
            self._pushed_parts.move_to_end(key)
            while len(self._pushed_parts) > 10_000:
                self._pushed_parts.popitem(last=False)
        self._pushed_parts.pop(key, None)
