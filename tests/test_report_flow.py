"""The intake conversation (隐患举报/随手拍) driven through the router, with an injected clock."""
import io
import os
import re
import sqlite3
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import Services
from bot.ledger import receipts
from bot.router import safe_route
from bot.storage.db import make_engine, session_factory, transaction
from bot.storage.models import Attachment, Conversation, Hazard, HazardHistory, Outbox, Person, Unit
from bot.types import Attachment as Att
from handlers import report
from tests.conftest import make_incoming

STEPS = ["/report", "楼道里好几辆电动车在充电，还拉了飞线", "幸福社区3栋2单元楼道", "跳过", "1", "匿名"]
RECEIPT = re.compile(r"回执码：(YH-\d{8}-\d{4})\n查询密码：(\w{6})")


def say(services, text="", **kw) -> str:
    return "\n".join(r.text for r in safe_route(make_incoming(text, **kw), services))


def fill(services, steps=STEPS, **kw) -> str:
    out = ""
    for text in steps:
        out = say(services, text, **kw)
    return out


def file_one(services, steps=STEPS, **kw) -> tuple[str, str]:
    fill(services, steps, **kw)
    m = RECEIPT.search(say(services, "确认", **kw))
    assert m, "no receipt"
    return m.group(1), m.group(2)


def rows(services, model, *where):
    with transaction(services.db) as s:
        return s.scalars(select(model).where(*where)).all()


def draft(services, user="u1"):
    found = rows(services, Conversation, Conversation.user == user)
    return found[0] if found else None


def photo(tmp_path, name="p.jpg", gps=None, color="red") -> Att:
    buf = io.BytesIO()
    kwargs = {}
    if gps:
        exif = Image.Exif()
        exif[0x8825] = gps
        kwargs["exif"] = exif
    Image.new("RGB", (8, 8), color).save(buf, "JPEG", **kwargs)
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return Att(kind="photo", path=str(path))


def test_happy_path_ends_with_a_receipt(ledger_services):
    code, secret = file_one(ledger_services)
    assert code == "YH-20261122-0001"
    [h] = rows(ledger_services, Hazard)
    assert (h.state, h.category, h.place, h.anonymous) == ("reported", "电动自行车", "幸福社区3栋2单元楼道", True)
    reporter = (h.reporter_channel, h.reporter_user, h.reporter_name, h.reporter_contact)
    assert reporter == ("console", "u1", "", "")
    assert receipts.verify_secret(secret, h.secret_hash) and secret not in h.secret_hash
    [first] = rows(ledger_services, HazardHistory)
    assert (first.hazard_id, first.from_state, first.to_state) == (h.id, None, "reported")


def test_codes_count_per_day(ledger_services, clock):
    assert file_one(ledger_services)[0].endswith("-0001")
    assert file_one(ledger_services, user="u2")[0] == "YH-20261122-0002"
    clock.advance(days=1)
    assert file_one(ledger_services, user="u3")[0] == "YH-20261123-0001"


def test_assignees_are_notified_through_the_outbox(ledger_services):
    with transaction(ledger_services.db) as s:
        for name in ("区消防救援大队", "区安委办"):
            unit = s.scalar(select(Unit).where(Unit.name == name))
            leader = Person(name=f"{name}领导", unit_id=unit.id, roles="leader")
            s.add(leader)
            s.flush()
            unit.leader_id = leader.id
    code, _ = file_one(ledger_services)
    out = rows(ledger_services, Outbox)
    assert len(out) == 2  # department leader + triage (the place matched no 属地)
    assert {o.idempotency_key.rsplit(":", 1)[0] for o in out} == {f"hazard-new:{code}:person"}
    assert all(code in o.text and "u1" not in o.text for o in out)


@pytest.mark.parametrize("steps_done", range(1, len(STEPS) + 1))
def test_cancel_at_every_step(ledger_services, steps_done):
    fill(ledger_services, STEPS[:steps_done])
    assert "已取消" in say(ledger_services, "/cancel")
    assert draft(ledger_services) is None and rows(ledger_services, Hazard) == []
    assert "回执码" not in say(ledger_services, "确认")


def test_cancel_word_at_confirmation(ledger_services):
    fill(ledger_services)
    assert "已取消" in say(ledger_services, "取消")
    assert rows(ledger_services, Hazard) == []


def test_a_photo_starts_a_report_and_its_location_is_offered(ledger_services, tmp_path):
    gps = {1: "N", 2: (30.0, 15.0, 36.0), 3: "E", 4: (120.0, 10.0, 30.0)}
    out = say(ledger_services, attachments=(photo(tmp_path, gps=gps),))
    assert "已收到照片" in out and "描述" in out
    assert "照片带有拍摄位置" in say(ledger_services, "消防通道被杂物堵死了")
    assert "已收到 1 张照片" in say(ledger_services, "1")
    code, _ = file_one(ledger_services, ["好了", "1", "匿名"])
    [h] = rows(ledger_services, Hazard)
    assert h.code == code and h.lat == pytest.approx(30.26) and "照片定位" in h.place
    assert [a.hazard_id for a in rows(ledger_services, Attachment)] == [h.id]


def test_several_photos_and_the_same_one_twice(ledger_services, tmp_path):
    fill(ledger_services, STEPS[:3])
    say(ledger_services, attachments=(photo(tmp_path, "a.jpg"),))
    assert "第 2 张" in say(ledger_services, attachments=(photo(tmp_path, "b.jpg", color="blue"),))
    assert "已经收到过" in say(ledger_services, attachments=(photo(tmp_path, "c.jpg"),))
    assert "照片：2 张" in fill(ledger_services, ["好了", "1", "匿名"])


def test_executable_named_jpg_is_refused(ledger_services, tmp_path):
    fill(ledger_services, STEPS[:3])
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\0" * 500)
    out = say(ledger_services, attachments=(Att(kind="photo", path=str(fake)),))
    assert "不是照片" in out and "可执行程序" in out
    assert rows(ledger_services, Attachment) == [] and draft(ledger_services).state == report.PHOTOS


def test_zip_named_jpg_is_refused(ledger_services, tmp_path):
    fill(ledger_services, STEPS[:3])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x", b"\0" * 100_000)
    (tmp_path / "z.jpg").write_bytes(buf.getvalue())
    assert "压缩包" in say(ledger_services, attachments=(Att(kind="photo", path=str(tmp_path / "z.jpg")),))


def test_50_mb_image_is_refused(ledger_services, tmp_path):
    big = tmp_path / "big.jpg"
    with big.open("wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0")
        fh.truncate(50 * 1024 * 1024)
    out = say(ledger_services, attachments=(Att(kind="photo", path=str(big)),))
    assert "照片太大" in out and rows(ledger_services, Attachment) == []


def test_draft_expires_after_30_minutes(ledger_services, clock, tmp_path):
    fill(ledger_services, STEPS[:2])
    say(ledger_services, attachments=(photo(tmp_path),))
    clock.advance(minutes=31)
    out = say(ledger_services, "安全生产法第三条讲什么")
    assert "已作废" in out and "第三条" in out  # the note, then the message handled as usual
    assert draft(ledger_services) is None and rows(ledger_services, Attachment) == []


def test_each_answer_keeps_the_draft_alive(ledger_services, clock):
    for text in STEPS:
        clock.advance(minutes=29)
        assert "已作废" not in say(ledger_services, text)
    assert draft(ledger_services).state == report.CONFIRM


def test_draft_survives_a_restart(ledger_services, db_engine):
    fill(ledger_services, STEPS[:3])
    engine = make_engine(str(db_engine.url))  # a new process: new engine, new services, same database
    old = ledger_services
    restarted = Services(config=old.config, data_dir=old.data_dir, kb=old.kb, db=session_factory(engine),
                         clock=old.clock)
    assert "请选择隐患类别" in say(restarted, "跳过")
    code, _ = file_one(restarted, ["1", "匿名"])
    assert [h.code for h in rows(restarted, Hazard)] == [code]
    engine.dispose()


def test_repeated_confirmation_after_a_lost_reply_creates_no_duplicate(ledger_services, monkeypatch):
    fill(ledger_services)
    real = report._receipt
    monkeypatch.setattr(report, "_receipt", lambda *a, **k: (_ for _ in ()).throw(SystemError("died")))
    assert "出错" in say(ledger_services, "确认")  # committed, but the reply never went out
    monkeypatch.setattr(report, "_receipt", real)
    out = say(ledger_services, "确认")
    [h] = rows(ledger_services, Hazard)
    code, secret = RECEIPT.search(out).groups()
    assert code == h.code and receipts.verify_secret(secret, h.secret_hash) and "此前已提交成功" in out


def test_confirming_twice_answers_the_same_receipt(ledger_services):
    first = file_one(ledger_services)
    assert RECEIPT.search(say(ledger_services, "确认")).groups() == first
    assert len(rows(ledger_services, Hazard)) == 1
    say(ledger_services, "谢谢")  # the conversation is over: the receipt is forgotten
    assert draft(ledger_services) is None


def test_concurrent_code_collision_is_retried(ledger_services, monkeypatch):
    taken, _ = file_one(ledger_services, user="u9")
    fill(ledger_services)
    real, calls = receipts.next_code, []

    def racing(session, day):
        calls.append(day)
        return taken if len(calls) == 1 else real(session, day)  # another writer took it first

    monkeypatch.setattr(receipts, "next_code", racing)
    code, _ = RECEIPT.search(say(ledger_services, "确认")).groups()
    assert code == "YH-20261122-0002" and len(calls) == 2 and len(rows(ledger_services, Hazard)) == 2


def test_daily_limit_per_reporter(ledger_services, clock):
    ledger_services.config.ledger.max_reports_per_day = 2
    clock.now = clock.now.replace(hour=23, minute=40)
    fill(ledger_services, chat="other")  # a draft opened before the limit was reached
    file_one(ledger_services)
    file_one(ledger_services)
    assert "每日上限" in say(ledger_services, "/report")
    assert "每日上限" in say(ledger_services, "确认", chat="other")
    assert len(rows(ledger_services, Hazard)) == 2
    assert "回执码" not in say(ledger_services, "确认", chat="other")
    clock.advance(minutes=25)  # past midnight: a new day, and the draft is still alive
    assert "回执码" in say(ledger_services, "确认", chat="other")


def test_likely_duplicate_is_shown_and_recorded(ledger_services):
    first, _ = file_one(ledger_services)
    similar = ["/report", "幸福社区3栋楼道里好几辆电动车充电", "幸福社区3栋2单元", "跳过", "1", "匿名"]
    assert f"可能已有人反映过：{first}" in fill(ledger_services, similar, user="u2")
    file_one(ledger_services, [], user="u2")
    notes = [h.note for h in rows(ledger_services, HazardHistory)]
    assert first in notes[1] and first not in notes[0]


def test_unrelated_report_shows_no_duplicate(ledger_services):
    file_one(ledger_services)
    other = ["/report", "饭店后厨煤气味很重", "人民路88号", "跳过", "1", "匿名"]
    assert "可能已有人反映过" not in fill(ledger_services, other, user="u2")


def test_unknown_category_answer_asks_again(ledger_services):
    fill(ledger_services, STEPS[:4])
    assert "没有“外星人”这个类别" in say(ledger_services, "外星人")
    assert "请选择隐患类别" in say(ledger_services, "9")
    assert len(safe_route(make_incoming("全部"), ledger_services)[0].choices) == 20
    assert "联系方式" in say(ledger_services, "群租房")
    assert draft(ledger_services).data["category"] == "出租房/群租房"


def test_contact_name_and_phone_are_kept(ledger_services):
    fill(ledger_services, STEPS[:5])
    assert "没有识别到电话号码" in say(ledger_services, "张三")
    assert "张三 13800000000" in say(ledger_services, "张三 13800000000")
    say(ledger_services, "确认")
    [h] = rows(ledger_services, Hazard)
    assert (h.anonymous, h.reporter_name, h.reporter_contact) == (False, "张三", "13800000000")


def test_sql_looking_text_is_stored_verbatim(ledger_services):
    evil = "'); DROP TABLE hazards; -- 楼道\"堆物\""
    file_one(ledger_services, ["/report", evil, "x' OR '1'='1", "跳过", "1", "匿名"])
    [h] = rows(ledger_services, Hazard)
    assert (h.description, h.place) == (evil, "x' OR '1'='1")


def test_100_kb_description_is_refused_and_the_draft_waits(ledger_services):
    say(ledger_services, "/report")
    assert "太长" in say(ledger_services, "隐" * 100_000)
    assert "描述太长" in say(ledger_services, "隐" * 3000)
    assert draft(ledger_services).state == report.WHAT
    assert "地方" in say(ledger_services, "楼道堆满纸箱")


def test_empty_description_is_asked_again(ledger_services):
    say(ledger_services, "/report")
    assert "请用一两句话描述" in say(ledger_services, "   ")
    assert draft(ledger_services).state == report.WHAT


def test_intent_words_start_a_report_with_the_description(ledger_services):
    assert "什么地方" in say(ledger_services, "举报：饭店后厨有很重的煤气味")
    assert draft(ledger_services).data["description"] == "饭店后厨有很重的煤气味"


@pytest.mark.parametrize("question", ["事故报告要多久", "举报电话是多少", "随手拍怎么用", "隐患排查治理是什么"])
def test_questions_about_reporting_do_not_start_a_report(ledger_services, question):
    say(ledger_services, question)
    assert draft(ledger_services) is None


def test_a_resent_answer_is_not_taken_for_the_next_one(ledger_services):
    fill(ledger_services, STEPS[:2])
    assert "已经收到" in say(ledger_services, STEPS[1])
    d = draft(ledger_services)
    assert d.state == report.WHERE and "place" not in d.data


def test_location_answers_where(ledger_services):
    fill(ledger_services, STEPS[:2])
    where = Att(kind="location", data={"lat": 30.1, "lon": 120.2, "address": "人民路1号"})
    say(ledger_services, attachments=(where,))
    d = draft(ledger_services)
    assert d.state == report.PHOTOS and d.data["lat"] == 30.1 and "人民路1号" in d.data["place"]


def test_other_commands_pass_through_and_the_draft_waits(ledger_services):
    fill(ledger_services, STEPS[:2])
    assert "/article" in say(ledger_services, "/help")
    assert "接着来" in say(ledger_services, "/report")
    assert draft(ledger_services).state == report.WHERE


def test_whole_intake_through_the_console_process(kb_dir, bundled_kb, lexical_config_file):
    """`safeduty chat` with scripted stdin runs the whole intake; the receipt is in the database."""
    script = "\n".join([*STEPS, "确认"]) + "\n"
    env = {**os.environ, "SAFEDUTY_DATA_DIR": str(kb_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--user", "intake-cli", "--chat", "dm",
         "--config", str(lexical_config_file)],
        input=script, capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    replies = [r.strip() for r in proc.stdout.split("---\n") if r.strip()]
    assert len(replies) == len(STEPS) + 1 and "Traceback" not in proc.stderr
    code, _ = RECEIPT.search(replies[-1]).groups()
    with sqlite3.connect(Path(kb_dir) / "safeduty.db") as conn:
        found = conn.execute("SELECT reporter_user, category FROM hazards WHERE code = ?", (code,)).fetchall()
    assert found == [("intake-cli", "电动自行车")]


def test_filing_works_on_every_database(any_ledger_services):
    """SQLite always; PostgreSQL too when a server is reachable (otherwise skipped)."""
    code, secret = file_one(any_ledger_services)
    assert RECEIPT.search(say(any_ledger_services, "确认")).groups() == (code, secret)
    [h] = rows(any_ledger_services, Hazard)
    assert h.code == code and receipts.verify_secret(secret, h.secret_hash)


def test_concurrent_confirmations_file_each_draft_once(any_ledger_services):
    users = [f"c{i}" for i in range(4)]
    for user in users:
        fill(any_ledger_services, user=user)
    barrier, replies = threading.Barrier(len(users) * 2), {}

    def confirm(user, n):
        barrier.wait()
        replies[(user, n)] = say(any_ledger_services, "确认", user=user)

    threads = [threading.Thread(target=confirm, args=(u, n)) for u in users for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = {u: {RECEIPT.search(replies[(u, n)]).group(1) for n in (0, 1)} for u in users}
    assert all(len(c) == 1 for c in codes.values())  # both taps of one user: the same receipt
    hazards = rows(any_ledger_services, Hazard)
    assert len(hazards) == len(users) and len({h.code for h in hazards}) == len(users)


def test_periodic_purge_drops_expired_drafts_and_receipts(ledger_services, clock, tmp_path):
    from bot.ledger.intake import purge_expired

    file_one(ledger_services, user="done")
    fill(ledger_services, STEPS[:3], user="abandoned")
    say(ledger_services, attachments=(photo(tmp_path),), user="abandoned")
    fill(ledger_services, STEPS[:2], user="fresh")
    clock.advance(minutes=20)
    say(ledger_services, "幸福社区", user="fresh")
    clock.advance(minutes=15)
    with transaction(ledger_services.db) as s:
        assert purge_expired(s, clock()) == 2
    assert [c.user for c in rows(ledger_services, Conversation)] == ["fresh"]
    assert rows(ledger_services, Attachment) == []


def test_a_photo_sent_late_is_added_and_the_question_stands(ledger_services, tmp_path):
    fill(ledger_services, STEPS[:5])
    out = say(ledger_services, attachments=(photo(tmp_path),))
    assert "已收到照片" in out and "联系方式" in out and "电话号码" not in out
    assert "照片：1 张" in say(ledger_services, "匿名")
    assert "照片：2 张" in say(ledger_services, attachments=(photo(tmp_path, "b.jpg", color="blue"),))


def test_a_command_with_a_photo_does_not_start_a_report(ledger_services, tmp_path):
    say(ledger_services, "/nosuchcommand", attachments=(photo(tmp_path),))
    assert draft(ledger_services) is None and rows(ledger_services, Attachment) == []
