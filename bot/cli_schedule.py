"""`safeduty schedule preview --from DATE --to DATE [--json]`: every push the scheduler would make in
a window (duty reminders, check-in escalation, deadline nudges, digests), without sending anything.

Needs only the ledger database, never the knowledge base.
"""
from __future__ import annotations

from datetime import date, datetime, time

import click

from bot.cli import UserError, common_options, main
from bot.config import resolve_data_dir


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise UserError(f"{option} 应为日期，例如 2026-10-01（收到：{value}）") from exc


@main.group()
def schedule():
    """定时推送：预览值班提醒、到岗催办、整改时限提醒和通报。"""


@schedule.command("preview")
@click.option("--from", "date_from", required=True, help="起始日期，如 2026-09-25")
@click.option("--to", "date_to", required=True, help="结束日期（含当天），如 2026-10-08")
@click.option("--json", "as_json", is_flag=True, help="每条推送一行 JSON（JSON Lines）")
@common_options
def schedule_preview(date_from, date_to, as_json, config, data_dir):
    """列出窗口内将要发送的每条推送（不发送）。"""
    from bot.app import open_database
    from bot.storage.db import session_factory
    from schedules.calendar import HolidayCalendar
    from schedules.plan import plan

    start = datetime.combine(_date(date_from, "--from"), time.min)
    end = datetime.combine(_date(date_to, "--to"), time(23, 59, 59))
    if end < start:
        raise UserError("--to 不能早于 --from")
    resolved = resolve_data_dir(config, data_dir)
    resolved.mkdir(parents=True, exist_ok=True)
    engine = open_database(config, resolved)
    try:
        with session_factory(engine)() as session:
            pushes = plan(session, config, HolidayCalendar(config.schedules), start, end)
    finally:
        engine.dispose()
    out = click.get_text_stream("stdout")
    if as_json:
        out.write("".join(p.json_line() for p in pushes))
        return
    if not pushes:
        click.echo(f"{start:%Y-%m-%d} 至 {end:%Y-%m-%d} 没有待发送的推送。")
        return
    lines = [f"{p.time:%Y-%m-%d %H:%M}  {p.kind:<18} {p.recipient:<24} {p.key}\n    "
             + p.text.replace("\n", "\n    ") + "\n" for p in pushes]
    out.write("".join(lines))
    click.echo(f"共 {len(pushes)} 条推送（{start:%Y-%m-%d} 至 {end:%Y-%m-%d}），仅预览，未发送。")
