"""`safeduty hazards …`: the hazard ledger in and out — export to .xlsx, import an existing ledger,
list as JSON. These commands need only the ledger database, never the knowledge base.
"""
from __future__ import annotations

import functools
import json
import re
import sys
from datetime import date

import click

from bot.cli import UserError, common_options, main
from bot.config import resolve_data_dir

_SPLIT = re.compile(r"[,，、\s]+")


def _many(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated options and comma lists alike: --state 待核实 --state 整改中, or --state 待核实,整改中."""
    return tuple(v for value in values for v in _SPLIT.split(value) if v)


def _date_option(value: str | None, name: str) -> date | None:
    if not value:
        return None
    from bot.ledger.columns import parse_date

    try:
        return parse_date(value)
    except ValueError as exc:
        raise UserError(f"{name}：{exc}") from None


def filter_options(func):
    @click.option("--state", "states", multiple=True, help="整改状态（名称如 待核实，或 reported）；可重复或用逗号分隔")
    @click.option("--open", "open_only", is_flag=True, help="只要未销号、未关闭的隐患")
    @click.option("--overdue", is_flag=True, help="只要已过整改时限仍未关闭的隐患")
    @click.option("--category", "categories", multiple=True, help="类别，如 消防、燃气；可重复")
    @click.option("--severity", "severities", multiple=True, help="等级：一般 / 重大")
    @click.option("--unit", default="", help="单位名称（行业主管部门、属地或责任单位）")
    @click.option("--from", "date_from", default=None, help="发现/举报时间起（含），如 2026-01-01")
    @click.option("--to", "date_to", default=None, help="发现/举报时间止（含）")
    @functools.wraps(func)
    def wrapper(*args, states, open_only, overdue, categories, severities, unit, date_from, date_to,
                **kwargs):
        from bot.ledger.listing import LedgerFilter

        filters = LedgerFilter(
            states=_many(states), open_only=open_only, overdue=overdue, categories=_many(categories),
            severities=_many(severities), unit=unit.strip(),
            reported_from=_date_option(date_from, "--from"), reported_to=_date_option(date_to, "--to"),
        )
        return func(*args, filters=filters, **kwargs)

    return wrapper


def _ledger(config, data_dir):
    """The migrated ledger database (an un-migrated one is refused) and 'now' in the district's zone."""
    from bot.app import open_database
    from bot.clock import system_clock
    from bot.storage.db import session_factory

    resolved = resolve_data_dir(config, data_dir)
    resolved.mkdir(parents=True, exist_ok=True)
    engine = open_database(config, resolved)
    return engine, session_factory(engine), system_clock(config.bot.timezone)()


def _ledger_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from bot.ledger.listing import LedgerError

        try:
            return func(*args, **kwargs)
        except LedgerError as exc:
            raise UserError(str(exc)) from exc

    return wrapper


@main.group()
def hazards():
    """隐患台账：导出 / 导入 Excel，列出隐患。"""


@hazards.command("export")
@click.option("--xlsx", "xlsx_path", required=True, type=click.Path(dir_okay=False), help="输出的 .xlsx 文件")
@filter_options
@common_options
@_ledger_errors
def hazards_export(xlsx_path, filters, config, data_dir):
    """按台账格式导出隐患（不含举报人身份信息）。"""
    from bot.ledger.xlsx import export

    engine, factory, now = _ledger(config, data_dir)
    try:
        with factory() as session:
            count = export(session, xlsx_path, filters, now=now)
    except OSError as exc:
        raise UserError(f"无法写入 {xlsx_path}：{exc.strerror or exc}") from exc
    finally:
        engine.dispose()
    click.echo(f"已导出 {count} 条隐患：{xlsx_path}")


@hazards.command("import")
@click.option("--xlsx", "xlsx_path", required=True, help="要导入的台账 .xlsx 文件")
@click.option("--dry-run", is_flag=True, help="只校验，不写入")
@click.option("--actor", default="台账导入（命令行）", show_default=True, help="记入处理记录的操作人")
@common_options
@_ledger_errors
def hazards_import(xlsx_path, dry_run, actor, config, data_dir):
    """导入已有台账：逐行校验，全部无误才写入（一处有误则一条也不写入）。"""
    from sqlalchemy.exc import IntegrityError

    from bot.ledger.xlsx import import_ledger
    from bot.storage.db import transaction

    engine, factory, now = _ledger(config, data_dir)
    try:
        with transaction(factory) as session:
            report = import_ledger(session, xlsx_path, now, actor_label=actor, dry_run=dry_run)
    except IntegrityError as exc:  # a code taken meanwhile by a report or another import
        raise UserError("写入时隐患编号与刚录入的隐患冲突，未写入任何数据，请重新导入。") from exc
    finally:
        engine.dispose()
    click.echo(report.text())
    if not report.ok:
        sys.exit(1)


@hazards.command("list")
@click.option("--json", "as_json", is_flag=True, help="输出一个 JSON 数组")
@filter_options
@common_options
@_ledger_errors
def hazards_list(as_json, filters, config, data_dir):
    """列出隐患（可按状态、逾期、类别、等级、单位、时间筛选）。"""
    from bot.ledger.listing import iter_rows

    engine, factory, now = _ledger(config, data_dir)
    try:
        with factory() as session:
            rows = list(iter_rows(session, filters, now.date()))
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in rows], ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo("没有符合条件的隐患。")
        return
    for r in rows:
        deadline = f"  时限 {r.deadline:%Y-%m-%d}" if r.deadline else ""
        flag = "  【逾期】" if r.overdue else ""
        head = f"{r.code}  [{r.state}] {r.category} {r.severity}{deadline}{flag}"
        click.echo(f"{head}  {r.place}  {r.description[:40]}")
    click.echo(f"共 {len(rows)} 条。")
