"""Group chats as push targets: /bindgroup in the group, resolution by the sender, the CLI."""
from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.config import ChannelLimits, OutboxSettings
from bot.delivery import Sender
from bot.ledger.outbox import enqueue
from bot.router import route
from bot.storage.db import transaction
from bot.storage.models import GroupChat, Outbox
from tests.conftest import make_incoming
from tests.ledger_world import build_world
from tests.test_delivery import FakeChannel


@pytest.fixture
def world(ledger_services, clock):
    with transaction(ledger_services.db) as s:
        return build_world(s, clock())


def say(services, user: str, text: str, **kw) -> str:
    return "\n".join(r.text for r in route(make_incoming(text, user=user, channel="console", **kw), services))


def in_group(services, user: str, text: str, chat: str = "g-100") -> str:
    return say(services, user, text, chat=chat, is_group=True)


def bindings(services) -> list[tuple[str, str, str]]:
    with services.db() as s:
        return [(g.name, g.channel, g.chat) for g in s.scalars(select(GroupChat).order_by(GroupChat.name))]


def test_admin_binds_the_group_it_writes_in(ledger_services, world):
    reply = in_group(ledger_services, "admin-1", "/bindgroup 安委办工作群")
    assert reply.startswith("已绑定：发给「安委办工作群」的群推送今后发到本群。")
    assert bindings(ledger_services) == [("安委办工作群", "console", "g-100")]


def test_rebinding_a_chat_moves_it_to_the_new_name(ledger_services, world):
    in_group(ledger_services, "admin-1", "/bindgroup 城关街道群")
    reply = in_group(ledger_services, "admin-1", "/bindgroup 安委办工作群")
    assert "原绑定「城关街道群」已解除" in reply
    assert bindings(ledger_services) == [("安委办工作群", "console", "g-100")]


def test_only_admins_bind_groups(ledger_services, world):
    assert in_group(ledger_services, "cadre-a", "/bindgroup 安委办工作群") == "该命令仅限安委办管理员使用。"
    assert in_group(ledger_services, "stranger", "/bindgroup 安委办工作群") == "该命令仅限安委办管理员使用。"
    assert bindings(ledger_services) == []


def test_bindgroup_in_a_private_chat_is_explained(ledger_services, world):
    assert say(ledger_services, "admin-1", "/bindgroup 安委办工作群") == "请在要接收推送的群里发送这个命令。"


def test_unbindgroup_and_listing(ledger_services, world):
    ledger_services.config.schedules.office_groups = ["安委办工作群", "值班群"]
    in_group(ledger_services, "admin-1", "/bindgroup 安委办工作群")
    listing = say(ledger_services, "admin-1", "/groups")
    assert "· 安委办工作群 → console（群内绑定）" in listing and "尚未绑定（推送会无法送达）：值班群" in listing
    assert in_group(ledger_services, "admin-1", "/unbindgroup") == "已解除：本群不再接收「安委办工作群」的群推送。"
    assert bindings(ledger_services) == []


def _sender(services, clock, channel):
    settings = OutboxSettings(limits={"console": ChannelLimits(per_second=1000, per_chat_per_minute=1000)})
    return Sender(services.db, {"console": channel}, settings, clock)


def test_push_to_a_bound_group_name_reaches_that_chat(ledger_services, world, clock):
    in_group(ledger_services, "admin-1", "/bindgroup 安委办工作群")
    with transaction(ledger_services.db) as s:
        enqueue(s, "weekly:2026-47:office", "本周隐患周报", clock(), recipient="安委办工作群")
    channel = FakeChannel()
    asyncio.run(_sender(ledger_services, clock, channel).drain_once())
    assert channel.sent == [("g-100", "本周隐患周报", "weekly:2026-47:office")]


def test_push_to_an_unbound_group_is_reported_to_admins(ledger_services, world, clock):
    with transaction(ledger_services.db) as s:
        enqueue(s, "weekly:2026-47:town", "周报", clock(), recipient="城关街道群")
    channel = FakeChannel()
    sender = _sender(ledger_services, clock, channel)
    assert asyncio.run(sender.drain_once()).unroutable == 1
    asyncio.run(sender.drain_once())  # the report to the admin goes out
    with ledger_services.db() as s:
        row = s.scalar(select(Outbox).where(Outbox.idempotency_key == "weekly:2026-47:town"))
    assert (row.status, row.last_error) == ("unroutable", "群「城关街道群」没有绑定群聊")
    assert channel.sent[0][0] == "admin-1" and "/bindgroup 城关街道群" in channel.sent[0][1]


def test_cli_binds_lists_and_removes(tmp_path):
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    bound = runner.invoke(main, ["groups", "bind", "安委办工作群", "--channel", "wecom_robot", "--chat", "default", *args])
    assert bound.exit_code == 0, bound.output
    listed = runner.invoke(main, ["groups", "list", *args])
    assert "安委办工作群\twecom_robot\tdefault" in listed.output
    assert runner.invoke(main, ["groups", "remove", "安委办工作群", *args]).exit_code == 0
    missing = runner.invoke(main, ["groups", "remove", "安委办工作群", *args])
    assert missing.exit_code != 0 and "没有找到「安委办工作群」的绑定" in missing.output
