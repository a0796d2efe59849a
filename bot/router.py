"""Routing of one incoming message: commands through a table, free text to the question handler.

Bad input (empty, binary, oversized, unknown commands, group chatter not addressed to the bot)
gets a short Chinese reply or silence and a log line — never an exception to the channel.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable

from bot.types import Incoming, Reply
from handlers import admin, ask, duty, groups, help as help_handler, ledger, query, report, supervision

log = logging.getLogger(__name__)

Handler = Callable[[Incoming, object, str], list[Reply]]

COMMANDS: dict[str, Handler] = {
    "start": help_handler.handle,
    "help": help_handler.handle,
    "ask": ask.handle,
    "article": ask.article,
    # each feature module owns its commands
    **report.COMMANDS,
    **ledger.COMMANDS,
    **query.COMMANDS,
    **admin.COMMANDS,
    **groups.COMMANDS,
    **duty.COMMANDS,
    **supervision.COMMANDS,
}
# Chinese spellings people type instead of slash commands
ALIASES = {"帮助": "help", "全文": "article", "查条文": "article"}

MAX_MESSAGE_CHARS = 8000  # anything longer is refused before any work is done

# What the features can take; channels pass any other platform type through as an attachment of
# that kind (voice, video, sticker, link ...) and the note below names it.
SUPPORTED_ATTACHMENTS = frozenset({"photo", "document", "location"})
KIND_NAMES = {"voice": "语音", "audio": "音频", "video": "视频", "shortvideo": "小视频", "video_note": "视频",
              "sticker": "表情", "animation": "动图", "link": "链接", "file": "文件", "contact": "名片",
              "poll": "投票", "dice": "骰子", "game": "游戏", "emotion": "表情", "miniprogram": "小程序"}
ACCEPTS = "可以发送：文字问题或命令（/help 查看用法）、隐患照片或位置。"


def unsupported_note(kinds: list[str]) -> str:
    names = "、".join(dict.fromkeys(KIND_NAMES.get(k, "这类消息") for k in kinds))
    return f"暂不支持{names}。{ACCEPTS}"
_COMMAND_RE = re.compile(r"^/([A-Za-z_]+)(?:@\S+)?\s*(.*)$", re.S)


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    controls = sum(1 for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co") and ch not in "\n\r\t")
    return controls > max(3, len(text) // 20)


def parse_command(text: str) -> tuple[str, str] | None:
    m = _COMMAND_RE.match(text)
    if m:
        return m.group(1).lower(), m.group(2).strip()
    for word, command in ALIASES.items():
        if text.startswith(word + " ") or text == word:
            return command, text[len(word) :].strip()
    return None


def route(incoming: Incoming, services) -> list[Reply]:
    text = (incoming.text or "").strip()
    if incoming.is_group and not incoming.mentioned and not text.startswith("/"):
        return []  # group chatter not addressed to the bot
    unsupported = [a.kind for a in incoming.attachments if a.kind not in SUPPORTED_ATTACHMENTS]
    if unsupported:
        log.info("unsupported message type(s) %s from %s/%s", ",".join(unsupported), incoming.channel, incoming.user)
        return [Reply(unsupported_note(unsupported))]
    if len(text) > MAX_MESSAGE_CHARS:
        log.info("oversized message (%d chars) from %s/%s", len(text), incoming.channel, incoming.user)
        return [Reply(f"消息太长了（{len(text)} 字），请精简后再发，一次问一件事。")]
    if _looks_binary(text):
        log.info("binary-looking message from %s/%s", incoming.channel, incoming.user)
        return [Reply("这条消息无法识别（像是二进制或乱码内容），请发送文字。")]
    if services.db is not None:
        replies = report.intercept(incoming, services)  # an open report conversation, or one starting
        if replies is not None:
            return replies
        replies = duty.intercept(incoming, services)  # 今天谁值班 / 国庆谁带班 / 到岗
        if replies is not None:
            return replies
    if not text:
        if incoming.attachments:
            return [Reply("已收到附件。目前我只能回答文字提问；随手拍举报功能即将开放。")]
        return [Reply("请直接输入问题，或发送 /help 查看用法。")]
    command = parse_command(text)
    if command is None:
        return ask.handle(incoming, services, text)
    name, args = command
    handler = COMMANDS.get(name)
    if handler is None:
        log.info("unknown command /%s from %s/%s", name, incoming.channel, incoming.user)
        return [Reply(f"没有 /{name} 这个命令。发送 /help 查看可用命令。")]
    return handler(incoming, services, args)


def safe_route(incoming: Incoming, services) -> list[Reply]:
    """route() with a last line of defence: an unexpected error is logged, the user gets an apology."""
    try:
        return route(incoming, services)
    except Exception:
        log.exception("handler failed for %s/%s: %r", incoming.channel, incoming.user, incoming.text[:200])
        return [Reply("抱歉，处理这条消息时出错了，已记录。请稍后再试或换个说法。")]
