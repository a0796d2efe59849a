"""People and identity: binding a chat account with a one-time code (expired, used and unknown codes
all give the same answer; attempts are rate-limited), units and roles, admin chat commands."""
from __future__ import annotations

import pytest

from bot.ledger import people
from bot.ledger.people import BIND_FAILED, BIND_TOO_MANY, BindingError, PeopleError
from bot.storage.db import transaction
from bot.storage.models import Person, RoutingRule
from tests.conftest import make_incoming
from tests.ledger_world import build_world, person, unit


@pytest.fixture
def db(ledger_services):
    return ledger_services.db


@pytest.fixture
def world(db, clock):
    with transaction(db) as s:
        return build_world(s, clock())


def issue(db, clock, who_id: int) -> str:
    with transaction(db) as s:
        return people.issue_binding_code(s, s.get(Person, who_id), None, clock())


def try_bind(db, clock, code: str, user: str = "new-phone") -> Person | str:
    with transaction(db) as s:  # committed even when refused, as the handler does
        try:
            return people.bind(s, "console", user, code, clock())
        except BindingError as exc:
            return str(exc)


def say(services, user: str, text: str, **kw) -> str:
    from bot.router import route

    return "\n".join(r.text for r in route(make_incoming(text, user=user, **kw), services))


# ---------------------------------------------------------------- binding


def test_binding_flow_recognises_the_account_afterwards(db, world, clock):
    code = issue(db, clock, world.cadre_a.id)
    assert len(code) == 8 and code.isalnum()
    bound = try_bind(db, clock, code.lower()[:4] + "-" + code.lower()[4:])  # case and dashes forgiven
    assert isinstance(bound, Person) and bound.id == world.cadre_a.id
    with db() as s:
        assert people.person_for(s, "console", "new-phone").id == world.cadre_a.id
        assert people.person_for(s, "console", "somebody-else") is None


def test_code_is_one_time(db, world, clock):
    code = issue(db, clock, world.cadre_a.id)
    assert isinstance(try_bind(db, clock, code), Person)
    assert try_bind(db, clock, code, user="another-phone") == BIND_FAILED


def test_code_expires_after_24_hours(db, world, clock):
    code = issue(db, clock, world.cadre_a.id)
    clock.advance(hours=24)
    assert try_bind(db, clock, code) == BIND_FAILED


def test_unknown_code_gives_the_same_message(db, world, clock):
    assert try_bind(db, clock, "ZZZZZZZZ") == BIND_FAILED


def test_a_new_code_supersedes_the_old_one(db, world, clock):
    old = issue(db, clock, world.cadre_a.id)
    new = issue(db, clock, world.cadre_a.id)
    assert try_bind(db, clock, old) == BIND_FAILED
    assert isinstance(try_bind(db, clock, new), Person)


def test_bind_attempts_are_rate_limited(db, world, clock):
    good = issue(db, clock, world.cadre_a.id)
    for _ in range(people.BIND_ATTEMPTS_PER_HOUR):
        assert try_bind(db, clock, "WRONG123") == BIND_FAILED
    assert try_bind(db, clock, good) == BIND_TOO_MANY
    clock.advance(hours=1, seconds=1)
    assert isinstance(try_bind(db, clock, good), Person)


def test_rebinding_an_account_moves_it_to_the_new_person(db, world, clock):
    assert isinstance(try_bind(db, clock, issue(db, clock, world.cadre_a.id)), Person)
    assert isinstance(try_bind(db, clock, issue(db, clock, world.cadre_b.id)), Person)
    with db() as s:
        assert people.person_for(s, "console", "new-phone").id == world.cadre_b.id


def test_inactive_person_is_not_recognised(db, world, clock):
    with transaction(db) as s:
        s.get(Person, world.cadre_a.id).active = False
    with db() as s:
        assert people.person_for(s, "console", "cadre-a") is None


# ---------------------------------------------------------------- units and people


def test_roles_accept_chinese_names_and_refuse_unknown_ones():
    assert people.normalise_roles("干部, 领导，cadre") == "cadre,leader"
    with pytest.raises(PeopleError, match="未知角色"):
        people.normalise_roles("boss")


def test_add_unit_and_person_and_leader(db, clock):
    with transaction(db) as s:
        town = people.add_unit(s, "南山街道", "街道")
        community = people.add_unit(s, "南山社区", "community", "南山街道")
        boss = people.add_person(s, "冯主任", "139", "南山街道", "leader")
        assert community.parent_id == town.id and town.leader_id == boss.id
        assert people.unit_and_descendants(s, town.id) == {town.id, community.id}
        with pytest.raises(PeopleError, match="已存在"):
            people.add_unit(s, "南山街道", "township")
        with pytest.raises(PeopleError, match="没有名为"):
            people.add_person(s, "某人", "", "不存在的单位", "cadre")


def test_find_person_asks_to_disambiguate_namesakes(db, clock):
    with transaction(db) as s:
        a = unit(s, "甲单位", "department")
        first = person(s, "张伟", a, "cadre")
        person(s, "张伟", None, "grid")
        with pytest.raises(PeopleError, match="#编号"):
            people.find_person(s, "张伟")
        assert people.find_person(s, f"#{first.id}").id == first.id


# ---------------------------------------------------------------- chat commands


def test_bind_command_end_to_end(ledger_services, world, clock):
    code = issue(ledger_services.db, clock, world.grid.id)
    reply = say(ledger_services, "fresh-phone", f"/bind {code}")
    assert "绑定成功" in reply and "李网格（幸福社区）" in reply and "网格员" in reply
    assert "我负责的隐患" in say(ledger_services, "fresh-phone", "/mine")


def test_bindcode_is_for_admins_in_private_chats(ledger_services, world, clock):
    assert say(ledger_services, "cadre-a", "/bindcode 李网格") == "该命令仅限安委办管理员使用。"
    assert "私聊" in say(ledger_services, "admin-1", "/bindcode 李网格", is_group=True)
    reply = say(ledger_services, "admin-1", "/bindcode 李网格")
    code = reply.split("绑定码：")[1].split()[0]
    assert "绑定成功" in say(ledger_services, "grid-new", f"/bind {code}")


def test_route_commands_edit_the_routing_table(ledger_services, world, clock):
    assert say(ledger_services, "cadre-a", "/route 燃气 测试消防大队") == "该命令仅限安委办管理员使用。"
    assert "燃气 类隐患 → 测试消防大队" in say(ledger_services, "admin-1", "/route 煤气 测试消防大队")
    assert "未知类别" in say(ledger_services, "admin-1", "/route 火星 测试消防大队")
    assert "没有名为" in say(ledger_services, "admin-1", "/route 燃气 不存在局")
    assert "网格员 李网格" in say(ledger_services, "admin-1", "/route 地点=幸福小区 幸福社区 李网格")
    with ledger_services.db() as s:
        rules = {(r.kind, r.key): r for r in s.query(RoutingRule)}
        assert rules[("category", "燃气")].unit_id == world.dept_a.id
        assert rules[("place", "幸福小区")].grid_person_id == world.grid.id
    listing = say(ledger_services, "admin-1", "/routes")
    assert "燃气 → 测试消防大队" in listing and "幸福小区 → 幸福社区（网格员 李网格）" in listing
