"""`safeduty supervision …`: 督办事项 in and out.

    safeduty supervision import --xlsx 督办事项.xlsx   # row-by-row report; nothing saved when a row is wrong
    safeduty supervision list [--all] [--json]
"""
from __future__ import annotations

import json
import sys

import click

from bot.cli import UserError, common_options, main
from bot.cli_hazards import _ledger, _ledger_errors


@main.group()
def supervision():
    """督办事项：从 Excel 导入，列出。"""


@supervision.command("import")
@click.option("--xlsx", "xlsx_path", required=True, help="督办事项 .xlsx（列：督办事项、责任人、办结时限，可选 单位）")
@click.option("--actor", default="督办事项导入（命令行）", show_default=True, help="操作人")
@common_options
@_ledger_errors
def supervision_import(xlsx_path, actor, config, data_dir):
    """导入督办事项：逐行校验，全部无误才写入，并通知各责任人。"""
    from sqlalchemy.exc import IntegrityError

    from bot.ledger.supervision import import_items, run_with_code_retry

    engine, factory, now = _ledger(config, data_dir)
    try:
        report = run_with_code_retry(factory, lambda session: import_items(session, xlsx_path, now, actor))
    except IntegrityError as exc:
        raise UserError("写入时督办编号冲突，未写入任何数据，请重新导入。") from exc
    finally:
        engine.dispose()
    click.echo(report.text())
    if not report.ok:
        sys.exit(1)


@supervision.command("list")
@click.option("--all", "include_done", is_flag=True, help="包括已办结的事项")
@click.option("--json", "as_json", is_flag=True, help="输出一个 JSON 数组")
@common_options
@_ledger_errors
def supervision_list(include_done, as_json, config, data_dir):
    """列出督办事项（默认只列未办结的）。"""
    from bot.ledger.supervision import deadline_text, list_items
    from bot.storage.models import Person, Unit

    engine, factory, now = _ledger(config, data_dir)
    today = now.date()
    try:
        with factory() as session:
            items = list_items(session, open_only=not include_done)
            people = {p.id: p.name for p in session.query(Person)}
            units = {u.id: u.name for u in session.query(Unit)}
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([{
            "code": i.code, "task": i.task, "owner": people.get(i.owner_id, ""), "owner_id": i.owner_id,
            "unit": units.get(i.unit_id, "") if i.unit_id else "", "deadline": i.deadline.isoformat(),
            "state": i.state, "overdue": i.state == "open" and i.deadline < today,
            "created_at": i.created_at.isoformat(), "done_at": i.done_at.isoformat() if i.done_at else None,
            "note": i.note,
        } for i in items], ensure_ascii=False, indent=1))
        return
    if not items:
        click.echo("没有督办事项。")
        return
    for i in items:
        click.echo(f"{i.code}  {deadline_text(i, today)}  {people.get(i.owner_id, '')}  {i.task[:40]}")
    click.echo(f"共 {len(items)} 条。")
