"""`safeduty people|units|routing …`: who works in the ledger and where reports go.

    safeduty units add --name 幸福社区 --kind community --parent 城关街道
    safeduty people add --name 张三 --phone 13800001234 --unit 区应急管理局 --roles cadre
    safeduty people bind-code 张三          # a one-time code for /bind in chat
    safeduty routing set --category 燃气 --unit 区城市管理局
    safeduty routing set --place 幸福小区 --unit 幸福社区 --grid 李网格

These commands need only the ledger database, never the knowledge base.
"""
from __future__ import annotations

import functools
import json

import click
from sqlalchemy import select

from bot.cli import UserError, common_options, main
from bot.config import resolve_data_dir


def _ledger(config, data_dir):
    """A session factory on the migrated ledger, and 'now' in the district's zone."""
    from bot.app import open_database
    from bot.clock import system_clock
    from bot.storage.db import session_factory

    resolved = resolve_data_dir(config, data_dir)
    resolved.mkdir(parents=True, exist_ok=True)
    return session_factory(open_database(config, resolved)), system_clock(config.bot.timezone)()


def _people_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from bot.ledger.people import PeopleError

        try:
            return func(*args, **kwargs)
        except PeopleError as exc:
            raise UserError(str(exc)) from exc

    return wrapper


# ---------------------------------------------------------------- people


@main.group()
def people():
    """人员：登记、列出、签发绑定码。"""


@people.command("add")
@click.option("--name", required=True, help="姓名")
@click.option("--phone", default="", help="手机号")
@click.option("--unit", default="", help="所属单位名称（先用 safeduty units add 登记）")
@click.option("--roles", default="cadre", show_default=True,
              help="角色，逗号分隔：citizen, grid, cadre, leader, admin（或 网格员/干部/领导/管理员）")
@click.option("--leads-unit", is_flag=True, help="设为所属单位的领导（重大隐患默认督办人）")
@common_options
@_people_errors
def people_add(name, phone, unit, roles, leads_unit, config, data_dir):
    """登记一名人员。"""
    from bot.ledger.people import add_person, roles_label
    from bot.storage.db import transaction

    factory, _ = _ledger(config, data_dir)
    with transaction(factory) as session:
        person = add_person(session, name, phone, unit or None, roles, leads_unit=leads_unit)
        where = f"，单位 {person.unit.name}" if person.unit else ""
        click.echo(f"已登记 #{person.id} {person.name}{where}，角色：{roles_label(person)}")


@people.command("list")
@click.option("--json", "as_json", is_flag=True, help="输出 JSON 数组")
@common_options
def people_list(as_json, config, data_dir):
    """列出人员及其绑定的聊天账号数。"""
    from sqlalchemy import func

    from bot.storage.models import ChatIdentity, Person, Unit

    factory, _ = _ledger(config, data_dir)
    with factory() as session:
        rows = session.execute(
            select(Person, Unit.name, func.count(ChatIdentity.id))
            .outerjoin(Unit, Unit.id == Person.unit_id)
            .outerjoin(ChatIdentity, ChatIdentity.person_id == Person.id)
            .group_by(Person.id, Unit.name)
            .order_by(Person.id)
        ).all()
    items = [{"id": p.id, "name": p.name, "phone": p.phone, "unit": unit or "", "roles": p.roles.split(","),
              "active": p.active, "bound_accounts": bound} for p, unit, bound in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=1))
        return
    if not items:
        click.echo("还没有登记人员。用 safeduty people add 登记。")
    for it in items:
        bound = f"已绑定 {it['bound_accounts']} 个账号" if it["bound_accounts"] else "未绑定"
        active = "" if it["active"] else "（已停用）"
        click.echo(f"#{it['id']} {it['name']}  {it['unit'] or '无单位'}  {','.join(it['roles'])}  "
                   f"{it['phone']}  {bound}{active}")


@people.command("bind-code")
@click.argument("name")
@common_options
@_people_errors
def people_bind_code(name, config, data_dir):
    """为 NAME（重名时用 #编号）签发一次性绑定码，24 小时内有效。"""
    from bot.ledger.people import find_person, issue_binding_code
    from bot.storage.db import transaction

    factory, now = _ledger(config, data_dir)
    with transaction(factory) as session:
        person = find_person(session, name)
        code = issue_binding_code(session, person, None, now)
        click.echo(f"{person.name} 的绑定码：{code}（24 小时内有效，只能用一次；在聊天中发送 /bind {code}）")


# ---------------------------------------------------------------- units


@main.group()
def units():
    """单位：行业主管部门、乡镇/街道、社区/村、网格、安委办。"""


@units.command("add")
@click.option("--name", required=True, help="单位名称（唯一）")
@click.option("--kind", required=True, help="department | township | community | grid | office（或中文：部门/街道/社区/网格/安委办）")
@click.option("--parent", default="", help="上级单位名称（如社区的街道）")
@common_options
@_people_errors
def units_add(name, kind, parent, config, data_dir):
    """登记一个单位。"""
    from bot.ledger.people import UNIT_KINDS, add_unit
    from bot.storage.db import transaction

    factory, _ = _ledger(config, data_dir)
    with transaction(factory) as session:
        unit = add_unit(session, name, kind, parent or None)
        under = f"，上级 {parent}" if parent else ""
        click.echo(f"已登记单位 #{unit.id} {unit.name}（{UNIT_KINDS[unit.kind]}{under}）")


@units.command("list")
@common_options
def units_list(config, data_dir):
    """列出单位（按层级缩进）。"""
    from bot.ledger.people import UNIT_KINDS
    from bot.storage.models import Unit

    factory, _ = _ledger(config, data_dir)
    with factory() as session:
        rows = session.execute(select(Unit.id, Unit.name, Unit.kind, Unit.parent_id).order_by(Unit.id)).all()
    children: dict = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)

    def show(parent, depth):
        for row in children.get(parent, []):
            click.echo(f"{'  ' * depth}#{row.id} {row.name}（{UNIT_KINDS.get(row.kind, row.kind)}）")
            show(row.id, depth + 1)

    show(None, 0)


# ---------------------------------------------------------------- routing


@main.group()
def routing():
    """分办规则：类别 → 行业主管部门，地点 → 属地单位和网格员。"""


@routing.command("list")
@click.option("--json", "as_json", is_flag=True, help="输出 JSON 数组")
@common_options
def routing_list(as_json, config, data_dir):
    """列出分办规则。"""
    from bot.ledger.routing_admin import list_routes

    factory, _ = _ledger(config, data_dir)
    with factory() as session:
        rows = list_routes(session)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], ensure_ascii=False, indent=1))
        return
    for r in rows:
        label = "类别" if r.kind == "category" else "地点"
        grid = f"（网格员 {r.grid}）" if r.grid else ""
        click.echo(f"{label} {r.key} → {r.unit}{grid}")
    click.echo(f"未匹配的举报转 {config.ledger.triage_unit} 分办。")


@routing.command("set")
@click.option("--category", default="", help="隐患类别，如 燃气")
@click.option("--place", default="", help="地点名称（举报地点中包含它即匹配），如 幸福小区")
@click.option("--unit", required=True, help="单位名称：类别对应行业主管部门，地点对应属地单位")
@click.option("--grid", default="", help="地点规则的网格员姓名（可选）")
@common_options
@_people_errors
def routing_set(category, place, unit, grid, config, data_dir):
    """设置一条分办规则（--category 或 --place，二选一）。"""
    from bot.ledger.routing_admin import set_category_route, set_place_route
    from bot.storage.db import transaction

    if bool(category) == bool(place):
        raise UserError("请给出 --category 或 --place 之一。")
    if grid and not place:
        raise UserError("--grid 只用于 --place 规则。")
    factory, _ = _ledger(config, data_dir)
    with transaction(factory) as session:
        if category:
            name, target = set_category_route(session, category, unit)
            click.echo(f"已设置：{name} 类隐患 → {target.name}")
        else:
            target, member = set_place_route(session, place, unit, grid)
            extra = f"，网格员 {member.name}" if member else ""
            click.echo(f"已设置：地点含“{place.strip()}”的举报 → 属地 {target.name}{extra}")
