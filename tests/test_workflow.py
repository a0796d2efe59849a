"""The hazard state machine through bot.ledger.actions.apply: every transition, refusals with the
allowed ones listed, history rows, 五落实 and deadlines by severity, 挂牌督办, the reporter's
notification (public part only), reopening. Runs on SQLite and, when reachable, PostgreSQL."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.ledger.actions import ActionError, MissingFields, apply, public_part, split_note
from bot.storage import workflow
from bot.storage.db import session_factory, transaction
from bot.storage.models import Attachment, Hazard, HazardHistory, Outbox, Person
from tests.ledger_world import REPORTER, build_world

FIVE = {"responsible_person": "张老板", "measures": "清理楼道电动车，安装充电桩", "funds": "企业自筹 2000 元",
        "emergency_plan": "楼道设专人巡查，配灭火器"}


@pytest.fixture
def db(any_db_engine):
    return session_factory(any_db_engine)


@pytest.fixture
def world(db, clock):
    with transaction(db) as s:
        return build_world(s, clock())


def new_hazard(db, world, clock, **kw) -> int:
    with transaction(db) as s:
        return world.hazard(s, clock(), **kw).id


def act(db, hazard_id: int, action: str, who: Person, now, **fields):
    with transaction(db) as s:
        return apply(s, s.get(Hazard, hazard_id), action, s.get(Person, who.id), now, **fields)


def state_of(db, hazard_id: int) -> str:
    with db() as s:
        return s.get(Hazard, hazard_id).state


def history_of(db, hazard_id: int) -> list[HazardHistory]:
    with db() as s:
        return list(s.scalars(select(HazardHistory).where(HazardHistory.hazard_id == hazard_id)
                              .order_by(HazardHistory.id)))


def outbox_rows(db) -> list[Outbox]:
    with db() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


# ---------------------------------------------------------------- acceptance and 五落实


def test_accept_fills_five_with_default_deadline_for_general(db, world, clock):
    hid = new_hazard(db, world, clock)
    act(db, hid, "accept", world.cadre_a, clock(), **FIVE)
    with db() as s:
        h = s.get(Hazard, hid)
        assert h.state == "accepted"
        assert h.deadline == clock().date() + timedelta(days=7)
        assert (h.responsible_person, h.measures, h.funds, h.emergency_plan) == (
            FIVE["responsible_person"], FIVE["measures"], FIVE["funds"], FIVE["emergency_plan"])
        assert h.responsible_unit == "测试消防大队"  # defaults to the 行业主管部门
        assert h.supervising_leader_id is None


def test_major_hazard_gets_30_days_and_the_unit_leader_as_supervisor(db, world, clock):
    hid = new_hazard(db, world, clock)
    act(db, hid, "accept", world.cadre_a, clock(), severity="重大", **FIVE)
    with db() as s:
        h = s.get(Hazard, hid)
        assert h.deadline == clock().date() + timedelta(days=30)
        assert h.supervising_leader_id == world.leader_a.id
    to_leader = [o for o in outbox_rows(db) if o.person_id == world.leader_a.id]
    assert len(to_leader) == 1 and "挂牌督办" in to_leader[0].text


def test_major_hazard_without_any_leader_is_refused(db, world, clock):
    hid = new_hazard(db, world, clock, department=world.town_b, territorial=world.town_b, grid=None)
    with pytest.raises(ActionError, match="督办"):
        act(db, hid, "accept", world.cadre_b, clock(), severity="重大", **FIVE)
    assert state_of(db, hid) == "reported"


def test_deadline_days_come_from_config(db, world, clock):
    from bot.config import LedgerSettings

    hid = new_hazard(db, world, clock)
    act(db, hid, "accept", world.cadre_a, clock(), settings=LedgerSettings(deadline_days={"一般": 3, "重大": 15}),
        **FIVE)
    with db() as s:
        assert s.get(Hazard, hid).deadline == clock().date() + timedelta(days=3)


def test_accept_without_the_five_lists_what_is_missing(db, world, clock):
    hid = new_hazard(db, world, clock)
    with pytest.raises(MissingFields) as exc:
        act(db, hid, "accept", world.cadre_a, clock(), responsible_person="张老板")
    assert "整改措施" in str(exc.value) and "整改资金" in str(exc.value) and "应急预案" in str(exc.value)
    assert state_of(db, hid) == "reported" and len(history_of(db, hid)) == 1


def test_accept_refuses_a_deadline_in_the_past(db, world, clock):
    hid = new_hazard(db, world, clock)
    with pytest.raises(ActionError, match="早于今天"):
        act(db, hid, "accept", world.cadre_a, clock(), deadline=date(2026, 1, 1), **FIVE)


# ---------------------------------------------------------------- the lifecycle


def test_full_lifecycle_writes_one_history_row_per_change(db, world, clock):
    hid = new_hazard(db, world, clock)
    act(db, hid, "accept", world.cadre_a, clock(), **FIVE)
    clock.advance(days=1)
    act(db, hid, "start", world.grid, clock())
    clock.advance(days=2)
    act(db, hid, "submit", world.grid, clock(), note="电动车已清理，充电桩已安装")
    clock.advance(hours=3)
    act(db, hid, "close", world.leader_a, clock(), note="现场验收合格")
    rows = history_of(db, hid)
    assert [(r.from_state, r.to_state) for r in rows] == [
        (None, "reported"), ("reported", "accepted"), ("accepted", "rectifying"),
        ("rectifying", "awaiting_acceptance"), ("awaiting_acceptance", "closed")]
    assert rows[-1].actor_id == world.leader_a.id and "钱领导" in rows[-1].actor_label
    with db() as s:
        assert s.get(Hazard, hid).closed_at == clock()


@pytest.mark.parametrize("transition", workflow.TRANSITIONS, ids=lambda t: t.action)
def test_every_transition_from_every_source_state(db, world, clock, transition):
    for source in transition.source:
        hid = new_hazard(db, world, clock, state=source, responsible=world.cadre_a)
        original = new_hazard(db, world, clock)
        with db() as s:
            original_code = s.get(Hazard, original).code
        fields = {"note": "原因说明", **FIVE, "duplicate_of": original_code}
        act(db, hid, transition.action, world.admin, clock(), **fields)
        assert state_of(db, hid) == transition.target
        last = history_of(db, hid)[-1]
        assert (last.from_state, last.to_state, last.actor_id) == (source, transition.target, world.admin.id)


def test_invalid_transition_is_refused_with_the_allowed_ones(db, world, clock):
    hid = new_hazard(db, world, clock)
    with pytest.raises(ActionError) as exc:
        act(db, hid, "close", world.admin, clock())
    message = str(exc.value)
    assert "待核实" in message and "销号" in message
    for t in workflow.allowed_from("reported"):
        assert t.label in message
    assert state_of(db, hid) == "reported"


def test_submit_needs_evidence(db, world, clock):
    hid = new_hazard(db, world, clock, state="rectifying")
    with pytest.raises(ActionError, match="整改情况"):
        act(db, hid, "submit", world.grid, clock())


def test_submit_links_evidence_photos(db, world, clock):
    hid = new_hazard(db, world, clock, state="rectifying")
    with transaction(db) as s:
        photo = Attachment(sha256="a" * 64, mime="image/jpeg", size=10, purpose="report", created_at=clock())
        s.add(photo)
        s.flush()
        photo_id = photo.id
    act(db, hid, "submit", world.grid, clock(), note="已整改", attachment_ids=[photo_id])
    with db() as s:
        photo = s.get(Attachment, photo_id)
        assert (photo.hazard_id, photo.purpose) == (hid, "evidence")


def test_return_sends_back_to_rectifying_with_a_reason(db, world, clock):
    hid = new_hazard(db, world, clock, state="awaiting_acceptance")
    with pytest.raises(ActionError, match="原因"):
        act(db, hid, "return", world.leader_a, clock())
    act(db, hid, "return", world.leader_a, clock(), note="充电桩未通电")
    assert state_of(db, hid) == "rectifying"
    assert history_of(db, hid)[-1].note == "充电桩未通电"


def test_reject_needs_a_reason(db, world, clock):
    hid = new_hazard(db, world, clock)
    with pytest.raises(ActionError, match="原因"):
        act(db, hid, "reject", world.cadre_a, clock(), note="  ")


def test_duplicate_links_the_original_by_code(db, world, clock):
    original = new_hazard(db, world, clock)
    hid = new_hazard(db, world, clock)
    with db() as s:
        code = s.get(Hazard, original).code
    act(db, hid, "duplicate", world.cadre_a, clock(), duplicate_of=code.lower())
    with db() as s:
        assert s.get(Hazard, hid).duplicate_of_id == original
    assert code in history_of(db, hid)[-1].note


def test_duplicate_of_an_unknown_code_or_itself_is_refused(db, world, clock):
    hid = new_hazard(db, world, clock)
    with db() as s:
        own = s.get(Hazard, hid).code
    with pytest.raises(ActionError, match="找不到"):
        act(db, hid, "duplicate", world.cadre_a, clock(), duplicate_of="YH-20990101-0001")
    with pytest.raises(ActionError, match="自身"):
        act(db, hid, "duplicate", world.cadre_a, clock(), duplicate_of=own)


def test_reopen_a_closed_hazard(db, world, clock):
    hid = new_hazard(db, world, clock, state="awaiting_acceptance")
    act(db, hid, "close", world.admin, clock())
    clock.advance(days=10)
    act(db, hid, "reopen", world.admin, clock(), note="群众反映又有电动车充电")
    with db() as s:
        h = s.get(Hazard, hid)
        assert (h.state, h.closed_at) == ("rectifying", None)


# ---------------------------------------------------------------- the reporter's notification


def test_reporter_is_told_with_the_public_part_of_the_note_only(db, world, clock):
    hid = new_hazard(db, world, clock)
    act(db, hid, "reject", world.cadre_a, clock(), note="经现场核实，不属于安全隐患。内部：举报人疑为竞争对手")
    rows = [o for o in outbox_rows(db) if o.recipient == REPORTER[1]]
    assert len(rows) == 1
    assert (rows[0].channel, rows[0].recipient) == REPORTER
    assert "不属于安全隐患" in rows[0].text and "竞争对手" not in rows[0].text
    last = history_of(db, hid)[-1]
    assert rows[0].idempotency_key == f"hazard:{_code(db, hid)}:rejected:{last.id}"
    assert last.public and public_part(last.note) == "经现场核实，不属于安全隐患。"
    assert "竞争对手" in last.note  # staff still see the internal part


def _code(db, hid):
    with db() as s:
        return s.get(Hazard, hid).code


def test_accept_tells_the_reporter_the_deadline(db, world, clock):
    hid = new_hazard(db, world, clock)
    act(db, hid, "accept", world.cadre_a, clock(), **FIVE)
    (row,) = [o for o in outbox_rows(db) if o.recipient == REPORTER[1]]
    assert "已受理" in row.text and (clock().date() + timedelta(days=7)).isoformat() in row.text


def test_internal_transitions_do_not_notify_the_reporter(db, world, clock):
    hid = new_hazard(db, world, clock, state="accepted", responsible=world.cadre_a)
    act(db, hid, "start", world.cadre_a, clock(), note="已约谈业主")
    assert [o for o in outbox_rows(db) if o.recipient == REPORTER[1]] == []
    assert history_of(db, hid)[-1].public is False


def test_a_report_without_a_chat_reporter_writes_no_outbox_row(db, world, clock):
    hid = new_hazard(db, world, clock, reporter=None)
    act(db, hid, "reject", world.cadre_a, clock(), note="重复录入")
    assert [o for o in outbox_rows(db) if o.recipient] == []


def test_split_note_markers():
    assert split_note("公开部分 内部：不公开") == ("公开部分", "不公开")
    assert split_note("〔内部〕只给干部看") == ("", "只给干部看")
    assert split_note("全部公开") == ("全部公开", "")


# ---------------------------------------------------------------- concurrency


def test_two_cadres_cannot_both_act_on_the_same_state(db, world, clock):
    hid = new_hazard(db, world, clock)
    first, second = db(), db()
    try:
        h1, h2 = first.get(Hazard, hid), second.get(Hazard, hid)  # both saw 待核实
        apply(first, h1, "accept", first.get(Person, world.cadre_a.id), clock(), **FIVE)
        first.commit()
        with pytest.raises(ActionError):
            apply(second, h2, "reject", second.get(Person, world.leader_a.id), clock(), note="不属实")
        second.rollback()
    finally:
        first.close(), second.close()
    assert state_of(db, hid) == "accepted"
    assert [r.to_state for r in history_of(db, hid)] == ["reported", "accepted"]


def test_guarded_update_refuses_when_the_state_changed_after_the_check(db_engine, clock, monkeypatch):
    """SQLite has no row locks: the state change itself is conditional on the state that was checked."""
    from bot.ledger import actions

    db = session_factory(db_engine)
    with transaction(db) as s:
        world = build_world(s, clock())
        hid = world.hazard(s, clock()).id
    real_check = actions.check_allowed

    def check_then_someone_else_acts(session, hazard, action, actor):
        t = real_check(session, hazard, action, actor)
        with db_engine.begin() as other:  # another worker rejects it meanwhile
            other.execute(Hazard.__table__.update().where(Hazard.id == hid).values(state="rejected"))
        return t

    monkeypatch.setattr(actions, "check_allowed", check_then_someone_else_acts)
    with pytest.raises(ActionError, match="刚被他人更新"):
        act(db, hid, "accept", world.cadre_a, clock(), **FIVE)
    assert state_of(db, hid) == "rejected"
    assert len(history_of(db, hid)) == 1
