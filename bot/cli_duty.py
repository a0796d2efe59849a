"""`safeduty roster …`: duty rosters (值班表).

    safeduty roster import 国庆值班表.xlsx      # validation report; nothing saved when there are errors
    safeduty roster import 值班表.csv --check   # report only
    safeduty roster show --from 2026-10-01 --to 2026-10-07
"""
from __future__ import annotations

import click

from bot.cli import UserError, common_options, main
from bot.config import resolve_data_dir


def _ledger(config, data_dir):
    from bot.app import open_database
    from bot.clock import system_clock
    from bot.storage.db import session_factory

    resolved = resolve_data_dir(config, data_dir)
    resolved.mkdir(parents=True, exist_ok=True)
    return session_factory(open_database(config, resolved)), system_clock(config.bot.timezone)()


def _day(text: str, year: int):
    from schedules.roster_read import parse_dates

    try:
        first, _ = parse_dates(text, year)
    except ValueError as exc:
        raise UserError(f"日期「{text}」无法识别，请写成 2026-10-01 或 10月1日。") from exc
    return first


@main.group()
def roster():
    """值班表：导入、查看。"""


@roster.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="只校验，不保存")
@common_options
def roster_import(file, check, config, data_dir):
    """导入 .xlsx/.csv 值班表：先输出校验报告；有错误时不保存任何数据（退出码 1）。"""
    from bot.storage.db import transaction
    from schedules.calendar import HolidayCalendar
    from schedules.roster import RosterFileError, import_roster

    factory, now = _ledger(config, data_dir)
    try:
        with transaction(factory) as session:
            report = import_roster(session, file, now, HolidayCalendar(config.schedules), dry_run=check)
    except RosterFileError as exc:
        raise UserError(str(exc)) from exc
    click.echo(report.text())
    if not report.ok:
        click.get_current_context().exit(1)


@roster.command("show")
@click.option("--from", "start", required=True, help="开始日期，如 2026-10-01")
@click.option("--to", "end", default="", help="结束日期（默认同开始日期）")
@common_options
def roster_show_cmd(start, end, config, data_dir):
    """按日期列出带班领导和值班员。"""
    from schedules.calendar import HolidayCalendar
    from schedules.roster import roster_show

    factory, now = _ledger(config, data_dir)
    first = _day(start, now.year)
    last = _day(end, first.year) if end else first
    if last < first:
        raise UserError("结束日期早于开始日期。")
    with factory() as session:
        click.echo(roster_show(session, first, last, HolidayCalendar(config.schedules)))
