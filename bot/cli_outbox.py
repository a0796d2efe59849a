"""`safeduty outbox status`: what is waiting, sent, dead or unroutable in the push outbox.

    safeduty outbox status [--json] [--data-dir D]

Needs only the ledger database, never the knowledge base.
"""
from __future__ import annotations

import json
from datetime import datetime

import click
from sqlalchemy import func, select

from bot.cli import common_options, main
from bot.config import resolve_data_dir

STATUS_LABELS = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "dead": "失败（死信）",
                 "missed": "已错过", "unroutable": "无法投递（未绑定）"}


def outbox_summary(session, now: datetime, dead_limit: int = 10) -> dict:
    """Counts by status and channel, the oldest due pending push, the latest dead rows."""
    from bot.storage.models import Outbox

    counts: dict[str, dict[str, int]] = {}
    for status, channel, n in session.execute(
            select(Outbox.status, Outbox.channel, func.count()).group_by(Outbox.status, Outbox.channel)):
        counts.setdefault(status, {})[channel or "(待解析)"] = n
    oldest = session.scalar(select(func.min(Outbox.not_before)).where(Outbox.status.in_(["pending", "sending"]),
                                                                     Outbox.not_before <= now))
    dead = session.execute(select(Outbox.id, Outbox.idempotency_key, Outbox.channel, Outbox.recipient,
                                  Outbox.attempts, Outbox.last_error)
                           .where(Outbox.status == "dead").order_by(Outbox.id.desc()).limit(dead_limit)).all()
    return {
        "now": now.isoformat(),
        "total": sum(sum(c.values()) for c in counts.values()),
        "by_status": {s: sum(c.values()) for s, c in sorted(counts.items())},
        "by_status_channel": {s: dict(sorted(c.items())) for s, c in sorted(counts.items())},
        "oldest_pending_due": oldest.isoformat() if oldest else None,
        "oldest_pending_age_seconds": int((now - oldest).total_seconds()) if oldest else 0,
        "dead": [{"id": r.id, "key": r.idempotency_key, "channel": r.channel, "recipient": r.recipient,
                  "attempts": r.attempts, "last_error": r.last_error} for r in dead],
    }


def _age(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} 秒"
    if seconds < 3600:
        return f"{seconds // 60} 分钟"
    return f"{seconds // 3600} 小时 {seconds % 3600 // 60} 分钟"


@main.group()
def outbox():
    """推送发件箱：查看待发送、已发送、失败的推送。"""


@outbox.command("status")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@common_options
def outbox_status(config, data_dir, as_json):
    """按状态和渠道统计推送，最早待发推送的等待时长，最近的失败原因。"""
    from bot.app import open_database
    from bot.clock import system_clock
    from bot.storage.db import session_factory

    resolved = resolve_data_dir(config, data_dir)
    resolved.mkdir(parents=True, exist_ok=True)
    engine = open_database(config, resolved)
    try:
        with session_factory(engine)() as session:
            summary = outbox_summary(session, system_clock(config.bot.timezone)())
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    if not summary["total"]:
        click.echo("发件箱为空。")
        return
    click.echo(f"推送共 {summary['total']} 条：")
    for status, channels in summary["by_status_channel"].items():
        detail = "，".join(f"{c} {n}" for c, n in channels.items())
        click.echo(f"  {STATUS_LABELS.get(status, status)}：{summary['by_status'][status]}（{detail}）")
    if summary["oldest_pending_due"]:
        click.echo(f"最早一条到期未发的推送已等待 {_age(summary['oldest_pending_age_seconds'])}"
                   f"（应发时间 {summary['oldest_pending_due']}）。")
    else:
        click.echo("没有到期未发的推送。")
    if summary["dead"]:
        click.echo("最近的失败推送：")
        for d in summary["dead"]:
            click.echo(f"  #{d['id']} {d['key']} → {d['channel']}:{d['recipient']}，"
                       f"尝试 {d['attempts']} 次：{d['last_error'] or '（无错误信息）'}")
