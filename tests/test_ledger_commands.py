"""The cadre chat commands through the router: lists with filters, one hazard's card, and the
action commands' syntax (key=value 五落实, guided template, reasons, duplicates, evidence)."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.router import route
from bot.storage.db import transaction
from bot.storage.models import Attachment, Hazard, Outbox
from bot.types import Attachment as IncomingAttachment
from handlers.help import HELP_TEXT
from handlers.ledger_text import ParseError, parse_date, parse_fields, parse_filters
from tests.conftest import make_incoming
from tests.ledger_world import build_world, new_hazard


@pytest.fixture
def services(ledger_services):
    return ledger_services


@pytest.fixture
def world(services, clock):
    with transaction(services.db) as s:
        return build_world(s, clock())


def say(services, user: str, text: str, **kw) -> str:
    return "\n".join(r.text for r in route(make_incoming(text, user=user, **kw), services))


def hazard(services, code: str) -> Hazard:
    with services.db() as s:
        return s.scalar(select(Hazard).where(Hazard.code == code))


# ---------------------------------------------------------------- /accept


def test_accept_with_key_value_fields_on_one_line(services, world, clock):
    h = new_hazard(services, world, clock)
    reply = say(services, "cadre-a", f"/accept {h.code} 责任人=张老板 措施=清理楼道 加装充电桩 资金=自筹2000元 "
                                     f"时限=2026-12-01 预案=专人巡查")
    assert "已受理" in reply and "2026-12-01" in reply and "已通知举报人" in reply
    got = hazard(services, h.code)
    assert (got.state, got.measures, got.funds, got.deadline) == ("accepted", "清理楼道 加装充电桩", "自筹2000元",
                                                                  date(2026, 12, 1))


def test_accept_with_one_field_per_line_and_major_severity(services, world, clock):
    h = new_hazard(services, world, clock)
    reply = say(services, "cadre-a", f"/accept {h.code}\n责任人：张老板\n措施：清理\n资金：自筹\n预案：巡查\n等级：重大")
    assert "已挂牌督办，督办领导：钱领导" in reply and "重大隐患默认期限" in reply
    assert hazard(services, h.code).deadline == clock().date() + timedelta(days=30)


def test_accept_without_fields_shows_the_template(services, world, clock):
    h = new_hazard(services, world, clock)
    reply = say(services, "cadre-a", f"/accept {h.code}")
    assert f"/accept {h.code} 责任人=" in reply and "测试消防大队" in reply
    assert hazard(services, h.code).state == "reported"


def test_accept_with_missing_fields_names_them_and_shows_the_template(services, world, clock):
    h = new_hazard(services, world, clock)
    reply = say(services, "cadre-a", f"/accept {h.code} 责任人=张老板")
    assert "还缺：整改措施、整改资金、应急预案" in reply and f"/accept {h.code}" in reply


def test_accept_with_a_bad_date_explains(services, world, clock):
    h = new_hazard(services, world, clock)
    reply = say(services, "cadre-a", f"/accept {h.code} 责任人=a 措施=b 资金=c 预案=d 时限=明年")
    assert "整改时限" in reply and "2026-12-01" in reply


def test_accept_in_the_wrong_state_lists_what_is_possible(services, world, clock):
    h = new_hazard(services, world, clock, state="awaiting_acceptance")
    reply = say(services, "admin-1", f"/accept {h.code}")
    assert "待验收" in reply and "「销号」" in reply and "「验收不通过」" in reply


# ---------------------------------------------------------------- other actions


def test_reject_return_and_reopen_need_reasons(services, world, clock):
    h = new_hazard(services, world, clock)
    assert "需要说明原因" in say(services, "cadre-a", f"/reject {h.code}")
    assert "已不予受理" in say(services, "cadre-a", f"/reject {h.code} 经核实不属实")
    assert "需要说明原因" in say(services, "admin-1", f"/reopen {h.code}")
    assert "重新打开" in say(services, "admin-1", f"/reopen {h.code} 群众再次反映")


def test_dup_links_to_the_original(services, world, clock):
    original = new_hazard(services, world, clock)
    h = new_hazard(services, world, clock)
    reply = say(services, "cadre-a", f"/dup {h.code} {original.code.lower()}")
    assert "已关联原隐患" in reply and original.code in reply
    assert hazard(services, h.code).duplicate_of_id == original.id
    assert "重复于：" + original.code in say(services, "cadre-a", f"/hazard {h.code}")


def test_bare_start_is_still_the_greeting(services, world, clock):
    assert say(services, "anyone", "/start") == HELP_TEXT
    h = new_hazard(services, world, clock, state="accepted")
    assert "已开始整改" in say(services, "grid-1", f"/start {h.code}")


def _photo_message(tmp_path, text: str, user: str):
    from PIL import Image

    photo = tmp_path / "after.jpg"
    Image.new("RGB", (32, 32), "white").save(photo, "JPEG")
    return make_incoming(text, user=user, attachments=(IncomingAttachment(kind="photo", path=str(photo),
                                                                          mime="image/jpeg"),))


def test_submit_with_an_evidence_photo(services, world, clock, tmp_path):
    from handlers import ledger

    h = new_hazard(services, world, clock, state="rectifying")
    incoming = _photo_message(tmp_path, f"/submit {h.code} 电动车已清走", "grid-1")
    reply = "\n".join(r.text for r in ledger.COMMANDS["submit"](incoming, services, f"{h.code} 电动车已清走"))
    assert "已提交验收" in reply
    with services.db() as s:
        (evidence,) = s.scalars(select(Attachment).where(Attachment.hazard_id == h.id)).all()
        assert evidence.purpose == "evidence"
    assert "整改 1 张" in say(services, "grid-1", f"/hazard {h.code}")


def test_submit_with_a_photo_through_the_router(services, world, clock, tmp_path):
    h = new_hazard(services, world, clock, state="rectifying")
    replies = route(_photo_message(tmp_path, f"/submit {h.code} 电动车已清走", "grid-1"), services)
    assert "已提交验收" in "\n".join(r.text for r in replies)


def test_action_without_a_code_shows_usage(services, world):
    assert say(services, "cadre-a", "/reject") == "用法：/reject 编号 原因"
    assert "没有找到隐患" in say(services, "cadre-a", "/reject YH-20990101-0001 无")


def test_actions_write_one_outbox_row_per_reporter_notification(services, world, clock):
    h = new_hazard(services, world, clock)
    say(services, "cadre-a", f"/reject {h.code} 不属实")
    say(services, "cadre-a", f"/reject {h.code} 不属实")  # refused the second time: already closed
    with services.db() as s:
        assert len(s.scalars(select(Outbox).where(Outbox.recipient == "citizen-1")).all()) == 1


# ---------------------------------------------------------------- lists and the card


def test_mine_lists_open_hazards_with_deadlines(services, world, clock):
    today = clock().date()
    overdue = new_hazard(services, world, clock, state="rectifying", responsible=world.cadre_a,
                         deadline=today - timedelta(days=3))
    new_hazard(services, world, clock, state="closed", responsible=world.cadre_a)
    reply = say(services, "cadre-a", "/mine")
    assert "共 1 条" in reply and overdue.code in reply and "逾期 3 天" in reply


def test_unit_with_filters(services, world, clock):
    today = clock().date()
    late = new_hazard(services, world, clock, state="rectifying", deadline=today - timedelta(days=1), severity="重大")
    new_hazard(services, world, clock, state="rectifying", deadline=today + timedelta(days=9))
    reply = say(services, "town-cadre", "/unit 逾期 重大")
    assert "城关街道的隐患（逾期）：共 1 条" in reply and late.code in reply
    assert "不认识的筛选条件" in say(services, "town-cadre", "/unit 火星")
    assert "没有符合条件" in say(services, "town-cadre", "/unit 待验收")


def test_unit_pages(services, world, clock):
    for _ in range(12):
        new_hazard(services, world, clock)
    first = say(services, "cadre-a", "/unit 待核实")
    assert "共 12 条，第 1/2 页" in first and "下一页：/unit 待核实 2" in first
    assert "第 2/2 页" in say(services, "cadre-a", "/unit 待核实 2")


def test_hazard_card_shows_five_and_history(services, world, clock):
    h = new_hazard(services, world, clock)
    say(services, "cadre-a", f"/accept {h.code} 责任人=张老板 措施=清理 资金=自筹 预案=巡查")
    card = say(services, "cadre-a", f"/hazard {h.code}")
    for part in ("已受理", "五落实", "责任人：张老板", "整改措施：清理", "整改时限：", "举报人：匿名", "处理记录",
                 "赵干部（测试消防大队）", "可进行：开始整改 /start"):
        assert part in card


# ---------------------------------------------------------------- parsing


def test_parse_fields_and_dates():
    assert parse_fields("责任人=张三 措施=拆除 隔断，资金：5000元") == {
        "responsible_person": "张三", "measures": "拆除 隔断", "funds": "5000元"}
    with pytest.raises(ParseError):
        parse_fields("随便写点")
    today = date(2026, 11, 22)
    assert parse_date("2026年12月1日", today) == parse_date("12-01", today) == date(2026, 12, 1)
    assert parse_date("15天", today) == date(2026, 12, 7)
    with pytest.raises(ParseError):
        parse_date("2026-02-30", today)


def test_parse_filters():
    assert parse_filters("逾期 重大 煤气 2") == {"page": 2, "open_only": True, "overdue": True, "severity": "重大",
                                               "category": "燃气"}
    assert parse_filters("全部")["open_only"] is False
    assert parse_filters("整改中") == {"page": 1, "open_only": False, "state": "rectifying"}


def test_admins_can_list_the_whole_district(services, world, clock):
    h = new_hazard(services, world, clock, department=world.town_b, territorial=world.town_b, grid=None)
    assert h.code not in say(services, "admin-1", "/unit")  # the 安委办's own (triage) queue
    assert h.code in say(services, "admin-1", "/unit 全区")
    assert "仅限安委办" in say(services, "cadre-a", "/unit 全区")
