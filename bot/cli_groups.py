"""`safeduty groups …`: which group chat receives the pushes for a group name.

    safeduty groups list [--json]
    safeduty groups bind 安委办工作群 --channel wecom_robot --chat default
    safeduty groups remove 安委办工作群 [--channel telegram]

In chat, an admin sends `/bindgroup 名称` inside the group instead (the chat id is taken from the
message). Names fixed in config.yaml `schedules.targets` take precedence over these bindings.
"""
from __future__ import annotations

import json

import click

from bot.cli import UserError, common_options, main
from bot.cli_people import _ledger, _people_errors

CHANNELS = ("telegram", "wecom", "wecom_robot", "wechat_mp", "console", "web")


@main.group()
def groups():
    """群推送去向：把群名称（如 安委办工作群）绑定到具体群聊。"""


@groups.command("list")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@common_options
def groups_list(config, data_dir, as_json):
    """列出 config.yaml 指定的和群内绑定的群推送去向，以及尚未绑定的群名称。"""
    from bot.ledger.groups import list_groups

    sessions, _ = _ledger(config, data_dir)
    with sessions() as session:
        bound = [{"name": r.name, "channel": r.channel, "chat": r.chat, "source": "binding",
                  "bound_at": r.bound_at.isoformat(timespec="minutes")} for r in list_groups(session)]
    fixed = [{"name": t.name, "channel": t.channel, "chat": t.chat, "source": "config"}
             for t in config.schedules.targets]
    wanted = list(dict.fromkeys(config.schedules.office_groups + config.schedules.duty_groups))
    missing = [g for g in wanted if g not in {r["name"] for r in fixed + bound}]
    if as_json:
        click.echo(json.dumps({"groups": fixed + bound, "unbound": missing}, ensure_ascii=False, indent=2))
        return
    if not fixed and not bound:
        click.echo("还没有群推送去向。在目标群里发送 /bindgroup 群名称，或用 safeduty groups bind。")
    for r in fixed + bound:
        origin = "config.yaml" if r["source"] == "config" else f"绑定于 {r['bound_at']}"
        click.echo(f"{r['name']}\t{r['channel']}\t{r['chat']}\t（{origin}）")
    if missing:
        click.echo("尚未绑定（推送会无法送达）：" + "、".join(missing))


@groups.command("bind")
@click.argument("name")
@click.option("--channel", required=True, type=click.Choice(CHANNELS), help="渠道")
@click.option("--chat", required=True, help="该渠道上的群聊 ID（群机器人填 default）")
@common_options
@_people_errors
def groups_bind(config, data_dir, name, channel, chat):
    """把群名称绑定到某渠道的一个群聊。"""
    from bot.ledger.groups import bind_group

    sessions, now = _ledger(config, data_dir)
    with sessions() as session, session.begin():
        row, old = bind_group(session, name, channel, chat.strip(), now)
        click.echo(f"已绑定：{row.name} → {channel} {row.chat}" + (f"（该群原绑定「{old}」已解除）" if old else ""))


@groups.command("remove")
@click.argument("name")
@click.option("--channel", default=None, type=click.Choice(CHANNELS), help="只解除这个渠道上的绑定")
@common_options
def groups_remove(config, data_dir, name, channel):
    """解除群名称的绑定。"""
    from bot.ledger.groups import unbind_name

    sessions, _ = _ledger(config, data_dir)
    with sessions() as session, session.begin():
        removed = unbind_name(session, name, channel)
    if not removed:
        raise UserError(f"没有找到「{name}」的绑定。")
    click.echo(f"已解除 {removed} 个绑定。")
