"""Who may see and do what: citizens see only their own reports, a wrong secret is "not found",
queries are rate-limited, cadres act only within their unit, grid members cannot close, and the
reporter's identity is masked except for the roles allowed by config."""
from __future__ import annotations

import pytest

from bot.ledger.actions import ActionError, apply, in_scope
from bot.ledger.queries import mask_name, mask_phone, visible_reporter
from bot.storage.db import transaction
from bot.storage.models import Hazard, Person
from handlers import query
from handlers.ledger_text import BIND_HINT, STAFF_ONLY
from tests.conftest import make_incoming
from tests.ledger_world import REPORTER, SECRET, build_world, new_hazard
from tests.test_workflow import FIVE


@pytest.fixture
def services(any_ledger_services):
    return any_ledger_services


@pytest.fixture
def world(services, clock):
    with transaction(services.db) as s:
        return build_world(s, clock())


def say(services, user: str, text: str) -> str:
    from bot.router import route

    return "\n".join(r.text for r in route(make_incoming(text, user=user), services))


# ---------------------------------------------------------------- citizens


def test_myreports_lists_only_the_senders_own_reports(services, world, clock):
    mine = new_hazard(services, world, clock)
    other = new_hazard(services, world, clock, reporter=("console", "citizen-2"))
    assert mine.code in say(services, REPORTER[1], "/myreports")
    assert other.code not in say(services, REPORTER[1], "/myreports")
    assert mine.code not in say(services, "citizen-2", "/myreports")


def test_query_shows_state_and_public_notes_only(services, world, clock):
    h = new_hazard(services, world, clock)
    with transaction(services.db) as s:
        apply(s, s.get(Hazard, h.id), "reject", s.get(Person, world.cadre_a.id), clock(),
              note="经核实已整改完毕。内部：业主是某局亲戚")
    text = say(services, "someone", f"/query {h.code} {SECRET}")
    assert "不予受理" in text and "经核实已整改完毕" in text
    assert "亲戚" not in text and "楼道" not in text  # no internal note, no description


def test_wrong_secret_reads_exactly_like_an_unknown_code(services, world, clock):
    h = new_hazard(services, world, clock)
    wrong_secret = say(services, "u-x", f"/query {h.code} WRONG1")
    unknown_code = say(services, "u-y", f"/query YH-20990101-0001 {SECRET}")
    forged = say(services, "u-z", "/query YH-2026'; DROP TABLE hazards;-- x")
    assert wrong_secret == unknown_code == query.NOT_FOUND
    assert forged in (query.NOT_FOUND, query.USAGE)


def test_query_attempts_are_rate_limited_per_user(services, world, clock):
    h = new_hazard(services, world, clock)
    limit = services.config.ledger.query_attempts_per_hour
    for _ in range(limit):
        assert say(services, "prober", f"/query {h.code} BAD999") == query.NOT_FOUND
    assert say(services, "prober", f"/query {h.code} {SECRET}") == query.TOO_MANY  # even the right one
    assert "状态" in say(services, "someone-else", f"/query {h.code} {SECRET}")
    clock.advance(hours=1, seconds=1)
    assert "状态" in say(services, "prober", f"/query {h.code} {SECRET}")


def test_unbound_and_citizen_accounts_cannot_use_cadre_commands(services, world, clock):
    h = new_hazard(services, world, clock)
    assert say(services, "stranger", f"/hazard {h.code}") == BIND_HINT
    assert say(services, "citizen-bound", f"/hazard {h.code}") == STAFF_ONLY
    assert say(services, "citizen-bound", f"/reject {h.code} 无效") == STAFF_ONLY
    assert say(services, "stranger", "/mine") == BIND_HINT


# ---------------------------------------------------------------- unit scope and roles


def test_cadre_of_unit_b_cannot_act_on_unit_a_hazard(services, world, clock):
    h = new_hazard(services, world, clock)
    with transaction(services.db) as s, pytest.raises(ActionError, match="不属于您的单位"):
        apply(s, s.get(Hazard, h.id), "accept", s.get(Person, world.cadre_b.id), clock(), **FIVE)
    reply = say(services, "cadre-b", f"/reject {h.code} 不属实")
    assert "不属于您的单位" in reply
    assert "不属于您的单位" in say(services, "cadre-b", f"/hazard {h.code}")
    with services.db() as s:
        assert s.get(Hazard, h.id).state == "reported"


def test_township_cadre_acts_on_hazards_of_its_communities(services, world, clock):
    h = new_hazard(services, world, clock, department=None)
    with services.db() as s:
        assert in_scope(s, s.get(Hazard, h.id), s.get(Person, world.town_cadre.id))
        assert not in_scope(s, s.get(Hazard, h.id), s.get(Person, world.cadre_b.id))


def test_responsible_person_outside_the_unit_is_in_scope(services, world, clock):
    h = new_hazard(services, world, clock, state="accepted", responsible=world.cadre_b)
    assert "开始整改" in say(services, "cadre-b", f"/start {h.code}")


def test_grid_member_cannot_close(services, world, clock):
    h = new_hazard(services, world, clock, state="awaiting_acceptance")
    reply = say(services, "grid-1", f"/close {h.code}")
    assert "需要以下角色" in reply and "领导" in reply
    with services.db() as s:
        assert s.get(Hazard, h.id).state == "awaiting_acceptance"


def test_cadre_cannot_close_but_unit_leader_can(services, world, clock):
    h = new_hazard(services, world, clock, state="awaiting_acceptance")
    assert "需要以下角色" in say(services, "cadre-a", f"/close {h.code}")
    assert "已销号" in say(services, "leader-a", f"/close {h.code} 验收合格")


def test_leader_of_another_unit_cannot_close(services, world, clock):
    with transaction(services.db) as s:
        s.get(Person, world.cadre_b.id).roles = "cadre,leader"
    h = new_hazard(services, world, clock, state="awaiting_acceptance")
    assert "不属于您的单位" in say(services, "cadre-b", f"/close {h.code}")


def test_admin_acts_anywhere(services, world, clock):
    h = new_hazard(services, world, clock, department=world.town_b, territorial=world.town_b, grid=None)
    assert "已不予受理" in say(services, "admin-1", f"/reject {h.code} 不属实")


# ---------------------------------------------------------------- reporter identity


def test_identity_is_masked_for_cadres_and_visible_to_admins(services, world, clock):
    h = new_hazard(services, world, clock, anonymous=False, reporter_name="张小明", reporter_contact="13812341234")
    cadre_view = say(services, "cadre-a", f"/hazard {h.code}")
    admin_view = say(services, "admin-1", f"/hazard {h.code}")
    assert "张**" in cadre_view and "138****1234" in cadre_view and "张小明" not in cadre_view
    assert "13812341234" not in cadre_view
    assert "张小明 13812341234" in admin_view


def test_identity_visibility_follows_config(services, world, clock):
    h = new_hazard(services, world, clock, anonymous=False, reporter_name="张小明", reporter_contact="13812341234")
    config = services.config.model_copy(deep=True)
    config.ledger.identity_visible_to = ["admin", "leader"]
    with services.db() as s:
        hazard = s.get(Hazard, h.id)
        assert visible_reporter(hazard, s.get(Person, world.leader_a.id), config) == "张小明 13812341234"
        assert visible_reporter(hazard, s.get(Person, world.cadre_a.id), config) == "张** 138****1234"
        assert visible_reporter(hazard, None, config) == "张** 138****1234"


def test_anonymous_reporter_is_anonymous_to_everyone(services, world, clock):
    h = new_hazard(services, world, clock, anonymous=True)
    with services.db() as s:
        assert visible_reporter(s.get(Hazard, h.id), s.get(Person, world.admin.id), services.config) == "匿名"


def test_masks():
    assert mask_name("欧阳娜娜") == "欧**" and mask_name("") == ""
    assert mask_phone("138-1234-5678") == "138****5678"
    assert mask_phone("8765-4321") == "****4321"
    assert mask_phone("110") == "****"
