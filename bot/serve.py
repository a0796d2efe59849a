"""`safeduty serve`: every enabled channel, the scheduler and the outbox senders in one asyncio
process, behind one Starlette app served by uvicorn (webhooks, /healthz, the local web chat).

Platform channels are built lazily by name (REGISTRY). A channel is **off** — and the server still
starts — when it is disabled in config.yaml, when one of its secrets is missing from the environment
(config.yaml only names the variables), when its module is not importable, or when building it
fails; /healthz and the start-up lines say which and why.

Contract for a platform channel class (bot.channels.<module>.<Class>):

* built with ``Class.from_config(settings, secrets, services)`` when it has that classmethod, else
  by the keyword factory in FACTORIES below (matching the constructors in bot/channels/);
  `settings` is its pydantic section of `channels:`, `secrets` a dict of the environment values
  keyed by field name without ``_env`` (``{"token": ..., "secret": ...}``);
* ``routes()`` (optional): Starlette routes mounted on the one server;
* ``run(dispatch)`` (optional): background work (polling, token refresh), cancelled at shutdown;
* ``push(chat, text, *, key)`` — or ``send(chat, Reply)`` — delivers outbox rows; one Sender each;
* ``aclose()`` (optional): called at shutdown.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger(__name__)

# channel name -> (module, class, the *_env fields it needs)
REGISTRY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "telegram": ("bot.channels.telegram", "TelegramChannel", ("token_env",)),
    "wecom": ("bot.channels.wecom", "WeComChannel", ("token_env", "aes_key_env", "secret_env")),
    "wecom_robot": ("bot.channels.wecom", "WeComRobotChannel", ("webhook_key_env",)),
    "wechat_mp": ("bot.channels.wechat_mp", "WeChatMPChannel", ("token_env", "aes_key_env", "secret_env")),
}


def _media_dir(services, name: str):
    return services.data_dir / "media" / name


def _api_base(settings) -> dict:
    return {"api_base": settings.api_base} if settings.api_base else {}


# name -> factory(cls, settings, secrets, services): keyword construction, so a reordered
# constructor fails loudly (the channel is reported off with the reason) instead of silently.
FACTORIES = {
    "telegram": lambda cls, st, sec, sv: cls(
        token=sec["token"], base_url=st.base_url or None, webhook_url=st.webhook_url or None,
        secret_token=sec.get("secret") or None, media_dir=_media_dir(sv, "telegram")),
    "wecom": lambda cls, st, sec, sv: cls(
        corp_id=st.corp_id, agent_id=st.agent_id, token=sec["token"], encoding_aes_key=sec["aes_key"],
        secret=sec["secret"], media_dir=_media_dir(sv, "wecom"), **_api_base(st)),
    "wecom_robot": lambda cls, st, sec, sv: cls(webhook_key=sec["webhook_key"], **_api_base(st)),
    "wechat_mp": lambda cls, st, sec, sv: cls(
        app_id=st.app_id, token=sec["token"], encoding_aes_key=sec["aes_key"], secret=sec["secret"],
        media_dir=_media_dir(sv, "wechat_mp"), **_api_base(st)),
}
LABELS = {"web": "本地网页聊天", "telegram": "Telegram", "wecom": "企业微信应用",
          "wecom_robot": "企业微信群机器人", "wechat_mp": "微信公众号"}


@dataclass
class ChannelStatus:
    name: str
    on: bool
    reason: str = ""  # why it is off
    channel: Any = None


def _needed_envs(name: str, settings) -> list[str]:
    fields = list(REGISTRY[name][2])
    if name == "telegram" and settings.webhook_url:
        fields.append("secret_env")  # webhook mode verifies secret_token
    return fields


def _missing_settings(name: str, settings) -> str:
    if name == "wecom" and not settings.corp_id:
        return "channels.wecom.corp_id 未填写"
    if name == "wecom" and not settings.agent_id:
        return "channels.wecom.agent_id 未填写"
    if name == "wechat_mp" and not settings.app_id:
        return "channels.wechat_mp.app_id 未填写"
    return ""


def build_channel(name: str, services, environ=None) -> ChannelStatus:
    """One platform channel from config and environment, or an off status with the reason."""
    environ = os.environ if environ is None else environ
    settings = getattr(services.config.channels, name)
    if not settings.enabled:
        return ChannelStatus(name, False, f"未启用（config.yaml 中 channels.{name}.enabled: false）")
    secrets: dict[str, str] = {}
    missing = []
    for field in _needed_envs(name, settings):
        var = getattr(settings, field)
        value = environ.get(var, "") if var else ""
        if not value:
            missing.append(var or f"channels.{name}.{field}")
        secrets[field.removesuffix("_env")] = value
    if missing:
        reason = "已启用但缺少环境变量 " + "、".join(missing)
        log.warning("channel %s is off: missing environment variable(s) %s", name, ", ".join(missing))
        return ChannelStatus(name, False, reason)
    problem = _missing_settings(name, settings)
    if problem:
        log.warning("channel %s is off: %s", name, problem)
        return ChannelStatus(name, False, f"已启用但 {problem}")
    module_name, class_name, _ = REGISTRY[name]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        log.warning("channel %s is off: %s.%s not importable (%s)", name, module_name, class_name, exc)
        return ChannelStatus(name, False, f"模块 {module_name}.{class_name} 尚不可用（{type(exc).__name__}: {exc}）")
    try:
        channel = (cls.from_config(settings, secrets, services) if hasattr(cls, "from_config")
                   else FACTORIES[name](cls, settings, secrets, services))
    except Exception as exc:  # a broken channel must not stop the others
        log.exception("channel %s failed to build", name)
        return ChannelStatus(name, False, f"创建失败（{type(exc).__name__}: {exc}）")
    return ChannelStatus(name, True, "", channel)


def build_channels(services, environ=None) -> list[ChannelStatus]:
    """web first (it needs the dispatch, so build_app creates its object), then the platforms."""
    web = services.config.channels.web.enabled
    statuses = [ChannelStatus("web", web, "" if web else "未启用（config.yaml 中 channels.web.enabled: false）")]
    return statuses + [build_channel(name, services, environ) for name in REGISTRY]


def describe(statuses: list[ChannelStatus], base_url: str) -> list[str]:
    """The start-up lines (Chinese): which channels are on, which are off and why."""
    lines = [f"SafeDuty 服务已启动：{base_url}/  （健康检查 {base_url}/healthz，Ctrl+C 停止）"]
    for s in statuses:
        label = f"{LABELS.get(s.name, s.name)}（{s.name}）"
        if s.on:
            lines.append(f"  开启  {label}" + (f"：{base_url}/" if s.name == "web" else ""))
        else:
            lines.append(f"  关闭  {label}：{s.reason}")
    return lines


# ---------------------------------------------------------------- the ASGI app

def _health(services, statuses: list[ChannelStatus]) -> dict:
    from bot.delivery import PENDING
    from bot.storage.models import Outbox

    database: dict = {"reachable": False}
    pending = None
    if services.db is None:
        database["reason"] = "未配置数据库"
    else:
        try:
            with services.db() as session:
                session.execute(text("SELECT 1"))
                pending = session.scalar(select(func.count()).select_from(Outbox).where(Outbox.status == PENDING))
            database["reachable"] = True
        except Exception as exc:
            log.warning("healthz: database not reachable: %s", exc)
            database["reason"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return {
        "status": "ok" if database["reachable"] or services.db is None else "degraded",
        "database": database,
        "channels": {s.name: {"on": s.on, "reason": s.reason} for s in statuses},
        "outbox": {"pending": pending},
    }


def build_app(services, channels: list[ChannelStatus], dispatch=None) -> Starlette:
    """The one ASGI app: /healthz, the local web chat when on, and every on channel's routes()."""
    from bot.app import make_dispatch
    from bot.channels.web import WebChatChannel

    dispatch = dispatch or make_dispatch(services)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(_health, services, channels))

    routes: list = [Route("/healthz", healthz, methods=["GET"])]
    for status in channels:
        if status.name == "web" and status.on:
            status.channel = status.channel or WebChatChannel(dispatch)
        if not status.on or not hasattr(status.channel, "routes"):
            continue
        try:
            routes.extend(status.channel.routes())
        except Exception as exc:
            log.exception("channel %s: routes() failed", status.name)
            status.on, status.reason = False, f"路由注册失败（{type(exc).__name__}: {exc}）"
    return Starlette(routes=routes)


# ---------------------------------------------------------------- the process

def late_reply_hook(services, channel_name: str):
    """Replies that missed the 5-second window go through the outbox (durable, retried, rate-limited)
    instead of straight to the platform. They are written by group commit: a server that is behind
    produces late answers by the hundred, and one transaction per answer made it fall further behind."""
    from bot.ledger.outbox import enqueue
    from bot.storage.db import transaction
    from bot.storage.group_commit import GroupCommit

    def write(rows: list[tuple[str, str, str]]) -> list[bool]:
        with transaction(services.db) as session:
            now = services.clock()
            return [enqueue(session, f"late:{key}", text, now, channel=channel_name, recipient=chat)
                    for chat, text, key in rows]

    writer: GroupCommit[tuple[str, str, str], bool] = GroupCommit(write)

    async def late(chat: str, text: str, key: str) -> None:
        await writer.submit((chat, text, key))

    return late


def harden(channel, name: str, services) -> None:
    """Process-wide settings for a webhook channel: flood limits from config; with a database, retry
    dedupe shared by every worker and late replies through the outbox."""
    from bot.channels.flood import FloodGuard

    server = services.config.channels.server
    if hasattr(channel, "per_user"):
        channel.per_user = FloodGuard(server.per_user_per_minute)
    if hasattr(channel, "failures"):
        channel.failures = FloodGuard(server.failures_per_ip_per_minute)
    if services.db is None:
        return
    if hasattr(channel, "dedupe"):
        from bot.channels.dedupe import DatabaseDedupe

        channel.dedupe = DatabaseDedupe(services.db)
    if hasattr(channel, "on_late"):
        channel.on_late = late_reply_hook(services, name)


class PushAdapter:
    """A platform channel as a bot.delivery PushChannel: push(chat, text, key=) when it has it
    (the key reaches the platform), else send(chat, Reply)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    async def send(self, chat: str, text: str, *, key: str) -> Any:
        if hasattr(self.channel, "push"):
            return await self.channel.push(chat, text, key=key)
        from bot.types import Reply

        return await self.channel.send(chat, Reply(text=text, chat=chat))


class _Server:
    """uvicorn.Server whose signals we handle ourselves, so shutdown can finish its awaits."""

    @staticmethod
    def create(app, host: str, port: int):
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

        return Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))


async def _close(channel) -> None:
    closer = getattr(channel, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception:
        log.exception("closing channel %s failed", getattr(channel, "name", channel))


def _channel_ended(status: ChannelStatus, task: asyncio.Task) -> None:
    """A channel whose background work died is shown off in /healthz, with the error."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    log.error("channel %s stopped: %r", status.name, exc)
    status.on, status.reason = False, f"运行出错已停止（{type(exc).__name__}: {str(exc)[:200]}）"


def start_platforms(services, platforms: list[ChannelStatus], dispatch, stop: asyncio.Event):
    """Harden each on platform channel, start one outbox sender per push channel and each channel's
    background work; returns (sender tasks, channel tasks). Used by `serve` and bench/webhook_load.py."""
    from bot.delivery import Sender

    tasks: list[asyncio.Task] = []
    background: list[asyncio.Task] = []
    for s in platforms:
        harden(s.channel, s.name, services)
    for s in platforms:
        if services.db is not None and (hasattr(s.channel, "push") or hasattr(s.channel, "send")):
            sender = Sender(services.db, {s.name: PushAdapter(s.channel)}, services.config.outbox,
                            services.clock, name=f"{s.name}-{os.getpid()}")
            tasks.append(asyncio.create_task(sender.run_forever(stop=stop), name=f"sender-{s.name}"))
    for s in platforms:
        if hasattr(s.channel, "run"):
            task = asyncio.create_task(s.channel.run(dispatch), name=f"channel-{s.name}")
            task.add_done_callback(functools.partial(_channel_ended, s))
            background.append(task)
    return tasks, background


async def serve(services, host: str | None = None, port: int | None = None, echo=print,
                environ=None) -> None:
    """Run until SIGINT/SIGTERM: scheduler, channels, one sender per push channel, the web server."""
    from bot.app import make_dispatch, start_schedules

    server_settings = services.config.channels.server
    host = host or server_settings.host
    port = server_settings.port if port is None else port
    scheduler = start_schedules(services)
    statuses = build_channels(services, environ)
    answerer = None
    if server_settings.answer_processes:
        from bot.answer_pool import ProcessAnswerer

        answerer = ProcessAnswerer(services.config, services.data_dir, server_settings.answer_processes,
                                   cache=services.kb.answers if services.kb is not None else None)
        echo(f"正在启动 {server_settings.answer_processes} 个答复进程……")
        await answerer.warm_up()
    elif services.kb is not None:  # the first question must not pay the model's warm-up inside the 5 s
        await asyncio.to_thread(services.kb.warm_up)
    dispatch = make_dispatch(services, scheduler, answerer)
    app = build_app(services, statuses, dispatch)
    server = _Server.create(app, host, port)

    platforms = [s for s in statuses if s.on and s.name != "web"]
    stop = asyncio.Event()
    tasks, background = start_platforms(services, platforms, dispatch, stop)

    loop = asyncio.get_running_loop()
    handled = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
                handled.append(sig)

    for line in describe(statuses, f"http://{host}:{port}"):
        echo(line)
    try:
        await server.serve()
    finally:
        echo("正在停止……")
        stop.set()
        for task in background:
            task.cancel()
        results = await asyncio.gather(*tasks, *background, return_exceptions=True)
        for task, result in zip([*tasks, *background], results):
            if isinstance(result, Exception) and not task.get_name().startswith("channel-"):
                log.error("%s ended with %r", task.get_name(), result)
        for s in platforms:
            await _close(s.channel)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if answerer is not None:
            answerer.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
        echo("已停止。")
