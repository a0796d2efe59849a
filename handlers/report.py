"""Hazard tip-offs (隐患举报/随手拍): the intake conversation.

A state machine in the style of python-telegram-bot's ConversationHandler (examples/conversationbot.py):
named states, one handler per state, /cancel as the fallback at every step. The state lives only in
the `conversations` table, so a draft survives a restart and expires after
`ledger.draft_expiry_minutes` without an answer. See docs/report_flow.mmd for the diagram.

    WHAT -> WHERE -> PHOTOS -> CATEGORY -> CONTACT -> CONFIRM -> DONE (receipt kept for a repeated 确认)

Started by /report, by a message opening with clear intent (举报…, 随手拍…, 我要举报, 反映隐患 …),
or by a photo. Photos are accepted at any step before the receipt.
"""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field

from bot.ledger import intake
from bot.ledger.routing import CATEGORIES, OTHER, canonical_category, suggest_category
from bot.media import MediaError, discard_unlinked, store_photo
from bot.storage.db import transaction
from bot.types import Incoming, Reply

log = logging.getLogger(__name__)

# ---- states (named constants; stored in conversations.state)
WHAT, WHERE, PHOTOS, CATEGORY, CONTACT, CONFIRM, DONE = (
    "what", "where", "photos", "category", "contact", "confirm", "done",
)
FILE = object()  # a step's request to file the draft once its transaction is over

_START_RE = re.compile(
    r"^(?:/report(?:@\S+)?|我要举报|我要报告隐患|我要反映隐患|我要反映|反映隐患|报告隐患|举报隐患|隐患举报|随手拍|举报)"
    r"(?![A-Za-z_])[\s:：,，。.!！、]*(.*)$", re.S | re.I,
)
_QUESTION_RE = re.compile(r"[?？吗]|怎么|如何|怎样|哪里|哪儿|哪个|哪些|什么|多少|是否|能不能|谁")
CANCEL_WORDS = {"/cancel", "取消", "取消举报", "不报了", "算了", "退出举报"}
SKIP_WORDS = {"好了", "好", "完成", "发完了", "跳过", "没有", "没有照片", "不用", "无", "下一步", "ok", "OK"}
ANONYMOUS_WORDS = {"匿名", "不留", "不用", "否", "跳过", "不", "不需要", "无"}
CONFIRM_WORDS = {"确认", "确定", "提交", "是", "对", "好", "确认提交", "ok", "OK"}
PHOTO_PLACE = "用照片位置"
SHOW_ALL = {"全部", "更多", "全部类别", "更多类别"}
_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")
MAX_PLACE_CHARS = 200
COMMON_CATEGORIES = ("消防", "燃气", "电动自行车", "九小场所", "建筑施工")
_LIMIT_TEXT = "您今天已提交 {n} 条举报，达到每日上限，请明天再报。情况紧急请拨打 119 或 110。"
_EXPIRED_TEXT = "您之前未完成的举报草稿已超过 {m} 分钟没有操作，已作废。"


@dataclass
class Turn:
    """One message inside an open draft: what the state handlers work with."""

    session: object
    conv: object  # bot.storage.models.Conversation
    data: dict
    text: str
    incoming: Incoming
    services: object
    notes: list[str] = field(default_factory=list)

    @property
    def now(self):
        return self.services.clock()

    def ask(self, state: str, *lead: str) -> list[Reply]:
        """Move to `state` (or stay), save the draft, and prompt for that state."""
        raw = (self.incoming.text or "").strip()
        if state != self.conv.state and raw:
            self.data["last"] = {"text": raw, "state": state}  # for the resend guard
        reply = _prompt(state, self.data, self.session, self.services)
        intake.save_draft(self.session, self.conv, (), state, self.data, self.now,
                          self.services.config.ledger.draft_expiry_minutes)
        return [Reply("\n".join([*[n for n in (*self.notes, *lead) if n], reply.text]), choices=reply.choices)]


# ---- prompts


def _summary(data: dict) -> str:
    contact = "匿名"
    if not data.get("anonymous", True):
        contact = f"{data.get('name') or '未留姓名'} {data.get('contact', '')}"
    photos = len(data.get("photos", []))
    return "\n".join([
        f"描述：{data.get('description', '')}",
        f"地点：{data.get('place', '')}",
        f"照片：{photos} 张" if photos else "照片：无",
        f"类别：{data.get('category', '')}",
        f"联系方式：{contact}",
    ])


def _category_choices(data: dict) -> tuple[str, ...]:
    """Suggestions from the text, padded with the most common categories; 其他 last."""
    text = data.get("description", "") + " " + data.get("place", "")
    picks = [c for c in suggest_category(text) if c != OTHER]
    picks += [c for c in COMMON_CATEGORIES if c not in picks][: max(0, 4 - len(picks))]
    return (*picks, OTHER)


def _prompt(state: str, data: dict, session, services) -> Reply:
    ledger = services.config.ledger
    choices: tuple[str, ...] = ()
    if state == WHAT:
        text = "请用一两句话描述您看到的隐患（什么问题、有多严重），如：楼道里有多辆电动车在充电。"
    elif state == WHERE:
        text = "隐患在什么地方？请发送详细地址（如：幸福社区3栋2单元楼道），或直接发送位置。"
        if data.get("exif"):
            lat, lon = data["exif"]
            text += f"\n照片带有拍摄位置（纬度 {lat:.5f}，经度 {lon:.5f}），回复“1”即可采用。"
            choices = (PHOTO_PLACE,)
    elif state == PHOTOS:
        have = len(data.get("photos", []))
        text = (f"已收到 {have} 张照片。还可以继续发送（最多 {ledger.max_photos} 张），发完请回复“好了”。" if have
                else f"有现场照片吗？可以直接发送（最多 {ledger.max_photos} 张），发完回复“好了”；没有请回复“跳过”。")
        choices = ("好了",) if have else ("跳过",)
    elif state == CATEGORY:
        choices = tuple(data.get("choices") or ()) or _category_choices(data)
        text = "请选择隐患类别，回复序号（也可直接输入类别名称，回复“全部”查看所有类别）："
    elif state == CONTACT:
        text = ("是否留下联系方式，方便核实时联系您？请回复“姓名 电话”，如：张三 13800000000；"
                "不留请回复“匿名”。您的身份信息严格保密。")
        choices = ("匿名",)
    elif state == CONFIRM:
        text = "请核对举报内容：\n" + _summary(data)
        duplicates = intake.find_duplicates(session, data["category"], data.get("place", ""),
                                            data.get("description", ""), services.clock())
        data["duplicates"] = duplicates
        if duplicates:
            text += f"\n可能已有人反映过：{'、'.join(duplicates)}。如是同一问题，可回复“取消”；不同则继续提交。"
        text += "\n确认无误请回复“确认”，放弃请回复“取消”。"
        choices = ("确认", "取消")
    else:
        raise ValueError(state)
    data["choices"] = list(choices)
    return Reply(text, choices=choices)


def _receipt(code: str, secret: str, again: bool = False) -> Reply:
    head = "这份举报此前已提交成功，回执如下：" if again else "举报已提交，谢谢您！我们会尽快核实处理。"
    return Reply(
        f"{head}\n回执码：{code}\n查询密码：{secret}\n"
        f"请截图或记下回执码和密码。查询办理进度请发送：/query {code} {secret}"
    )


# ---- state handlers


def _choice(turn: Turn) -> str:
    """A numbered answer mapped to the choice it names."""
    choices = turn.data.get("choices") or []
    if turn.text.isdigit() and 1 <= int(turn.text) <= len(choices):
        return choices[int(turn.text) - 1]
    return turn.text


def on_what(turn: Turn) -> list[Reply]:
    limit = turn.services.config.ledger.max_description_chars
    if not turn.text:
        return turn.ask(WHAT)
    if len(turn.text) > limit:
        return turn.ask(WHAT, f"描述太长了（{len(turn.text)} 字），请精简到 {limit} 字以内再发。")
    if len(turn.text) < 2:
        return turn.ask(WHAT, "描述太短了，请说明看到了什么问题。")
    turn.data["description"] = turn.text
    return turn.ask(WHERE)


def on_where(turn: Turn) -> list[Reply]:
    location = turn.data.pop("location", None)
    answer = _choice(turn)
    if location:  # a typed address wins as the text; the location still gives the coordinates
        lat, lon = location["lat"], location["lon"]
        turn.data.update(lat=lat, lon=lon)
    if location and not turn.text:
        label = location.get("label") or ""
        turn.data["place"] = (f"{label}（定位 {lat:.5f},{lon:.5f}）" if label else f"定位 {lat:.5f},{lon:.5f}")[
            :MAX_PLACE_CHARS]
    elif answer == PHOTO_PLACE and turn.data.get("exif"):
        lat, lon = turn.data["exif"]
        turn.data.update(place=f"照片定位 {lat:.5f},{lon:.5f}", lat=lat, lon=lon)
    elif not turn.text:
        return turn.ask(WHERE)
    elif len(turn.text) > MAX_PLACE_CHARS:
        return turn.ask(WHERE, f"地址太长了，请控制在 {MAX_PLACE_CHARS} 字以内。")
    elif len(turn.text) < 2:
        return turn.ask(WHERE, "地址太简略了，请写清楚在哪个社区/村、哪条路或哪栋楼。")
    else:
        turn.data["place"] = turn.text
    return turn.ask(PHOTOS)


def on_photos(turn: Turn) -> list[Reply]:
    full = len(turn.data.get("photos", [])) >= turn.services.config.ledger.max_photos
    if full or _choice(turn) in SKIP_WORDS:
        turn.data["choices"] = []
        return turn.ask(CATEGORY)
    if turn.text:
        return turn.ask(PHOTOS, "请发送照片；发完或没有照片请回复“好了”。")
    return turn.ask(PHOTOS)


def on_category(turn: Turn) -> list[Reply]:
    answer = _choice(turn)
    if answer in SHOW_ALL:
        turn.data["choices"] = list(CATEGORIES)
        return turn.ask(CATEGORY)
    category = canonical_category(answer)
    if not category:
        return turn.ask(CATEGORY, f"没有“{answer[:20]}”这个类别。" if answer else "")
    turn.data["category"] = category
    return turn.ask(CONTACT)


def on_contact(turn: Turn) -> list[Reply]:
    answer = _choice(turn)
    if answer in ANONYMOUS_WORDS:
        turn.data.update(anonymous=True, name="", contact="")
        return turn.ask(CONFIRM)
    phone = _PHONE_RE.search(answer)
    if not phone:
        return turn.ask(CONTACT, "没有识别到电话号码。")
    name = re.sub(r"[\s,，:：;；、。]+|姓名|电话|手机|联系方式", "", answer.replace(phone.group(1), ""))[:20]
    turn.data.update(anonymous=False, name=name, contact=phone.group(1))
    return turn.ask(CONFIRM)


def on_confirm(turn: Turn):
    if _choice(turn) in CONFIRM_WORDS:
        return FILE
    return turn.ask(CONFIRM)


STATES = {WHAT: on_what, WHERE: on_where, PHOTOS: on_photos, CATEGORY: on_category, CONTACT: on_contact,
          CONFIRM: on_confirm}


# ---- entry points


def _start_text(incoming: Incoming, text: str) -> str | None:
    """The description carried by a message that starts a report ('' for none); None: not a start."""
    m = _START_RE.match(text)
    if m:
        rest = m.group(1).strip()
        if text.startswith("/") or not _QUESTION_RE.search(rest):
            return rest
        return None
    if not text.startswith("/") and any(a.kind == "photo" and a.path for a in incoming.attachments):
        return text  # a photo, its caption (if any) as the description; /commands with photos pass
    return None


def _take_attachments(turn: Turn) -> None:
    """Store photos (refusals become notes) and remember a location for the WHERE step."""
    ledger = turn.services.config.ledger
    for att in turn.incoming.attachments:
        if att.kind == "location":
            lat, lon = att.data.get("lat"), att.data.get("lon")
            if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
                label = str(att.data.get("address") or att.data.get("name") or att.data.get("title") or "")
                turn.data["location"] = {"lat": float(lat), "lon": float(lon), "label": label[:150]}
            continue
        if not att.path:
            turn.notes.append("附件没有收到，请重新发送。")
            continue
        photos = turn.data.setdefault("photos", [])
        if len(photos) >= ledger.max_photos:
            turn.notes.append(f"照片已达 {ledger.max_photos} 张上限，多出的未保存。")
            break
        try:
            row = store_photo(turn.session, turn.services.data_dir, att.path, ledger, turn.now)
        except MediaError as exc:
            turn.notes.append(str(exc))
            continue
        if row.sha256 in turn.data.setdefault("hashes", []):
            turn.session.delete(row)
            turn.notes.append("这张照片已经收到过了。")
            continue
        photos.append(row.id)
        turn.data["hashes"].append(row.sha256)
        if row.exif_lat is not None and not turn.data.get("exif"):
            turn.data["exif"] = [row.exif_lat, row.exif_lon]
        turn.notes.append(f"已收到照片（第 {len(photos)} 张）。")


def _step(turn: Turn):
    conv, text = turn.conv, turn.text
    if text.lower() in CANCEL_WORDS or (conv.state == CONFIRM and _choice(turn) == "取消"):
        discard_unlinked(turn.session, turn.data.get("photos", []))
        turn.session.delete(conv)
        return [Reply("已取消本次举报，草稿已删除。需要时可随时发送 /report 重新开始。")]
    start = _START_RE.match(text)
    if start and (text.startswith("/") or not start.group(1).strip()):
        return turn.ask(conv.state, "您有一份正在填写的举报，我们接着来（发送 /cancel 可放弃）。")
    if text.startswith("/"):
        return None  # other commands (/help, /query ...) pass through; the draft waits
    last = turn.data.get("last") or {}
    resent = last.get("text") == text and last.get("state") == conv.state
    if text and resent and not turn.incoming.attachments:
        return turn.ask(conv.state, "上一条消息已经收到了。")  # a resend after a lost reply
    if turn.incoming.attachments:
        _take_attachments(turn)
        if conv.state == CONFIRM or (not text and conv.state in (CATEGORY, CONTACT)):
            return turn.ask(conv.state)  # noted; the question (or the updated summary) stands
    return STATES[conv.state](turn)


def _begin(session, key, incoming: Incoming, services, description: str, lead: list[str]) -> list[Reply]:
    ledger = services.config.ledger
    now = services.clock()
    if intake.reports_today(session, incoming.channel, incoming.user, now) >= ledger.max_reports_per_day:
        return [Reply("\n".join([*lead, _LIMIT_TEXT.format(n=ledger.max_reports_per_day)]))]
    conv = intake.save_draft(session, None, key, WHAT, {"photos": []}, now, ledger.draft_expiry_minutes)
    turn = Turn(session, conv, copy.deepcopy(conv.data), description, incoming, services,
                notes=[*lead, "好的，开始登记隐患举报（随时发送 /cancel 可放弃）。如遇火灾、燃气泄漏等紧急情况，请立即拨打 119。"])
    _take_attachments(turn)
    if not description:
        return turn.ask(WHAT)
    return on_what(turn)


def intercept(incoming: Incoming, services) -> list[Reply] | None:
    """Replies when the message belongs to a report conversation (or starts one); else None."""
    text = (incoming.text or "").strip()
    key = (incoming.channel, incoming.chat, incoming.user)
    ledger = services.config.ledger
    notes: list[str] = []
    if _start_text(incoming, text) is None and not intake.has_draft(services.db, *key):
        return None  # the common case (a question, a command) without a transaction
    with transaction(services.db) as session:
        now = services.clock()
        conv = intake.load_draft(session, *key)
        if conv is not None and conv.flow != intake.FLOW:  # another feature's conversation
            if conv.expires_at > now or _start_text(incoming, text) is None:
                return None
            conv.expires_at = now  # expired: it gives way to the new report
        if conv is not None and conv.expires_at <= now:
            if conv.flow == intake.FLOW and conv.state != DONE:
                discard_unlinked(session, (conv.data or {}).get("photos", []))
                notes.append(_EXPIRED_TEXT.format(m=ledger.draft_expiry_minutes))
            session.delete(conv)
            session.flush()
            conv = None
        if conv is not None and conv.state == DONE:
            if text in CONFIRM_WORDS or text == "1":
                return [_receipt(conv.data["code"], conv.data.get("secret", ""), again=True)]
            session.delete(conv)  # that conversation is over
            session.flush()
            conv = None
        if conv is None:
            description = _start_text(incoming, text)
            replies = None if description is None else _begin(session, key, incoming, services, description, notes)
            notes = notes if replies is None else []
        else:
            turn = Turn(session, conv, copy.deepcopy(conv.data or {}), text, incoming, services)
            replies = _step(turn)
            conv_id = conv.id
    if replies is FILE:
        return _file(conv_id, services)
    if replies is None and notes:
        from bot.router import route  # the expired draft's note, then the message as usual

        return [Reply("\n".join(notes)), *route(incoming, services)]
    return replies


def _file(conv_id: int, services) -> list[Reply]:
    ledger = services.config.ledger
    try:
        filed = intake.file_report(services.db, conv_id, CONFIRM, DONE, services.config, services.clock())
    except intake.RateLimited:
        return [Reply(_LIMIT_TEXT.format(n=ledger.max_reports_per_day))]
    except intake.DraftGone:
        return [Reply("这份举报草稿已失效（可能已取消或超时），请发送 /report 重新开始。")]
    log.info("report %s filed (new=%s)", filed.code, filed.created)
    return [_receipt(filed.code, filed.secret, again=not filed.created)]


def _report_command(incoming: Incoming, services, args: str) -> list[Reply]:
    """Reached only when intercept() did not take /report: no ledger, or another conversation open."""
    if services.db is None:
        return [Reply("举报功能暂不可用（未配置隐患台账数据库）。情况紧急请拨打 119 或 110。")]
    return [Reply("您还有其他正在进行的操作，请先完成，或发送 /cancel 取消后再举报。")]


def _cancel_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is not None:
        with transaction(services.db) as session:
            conv = intake.load_draft(session, incoming.channel, incoming.chat, incoming.user)
            if conv is not None:
                session.delete(conv)
                return [Reply("已取消当前操作。")]
    return [Reply("当前没有进行中的举报或操作。")]


COMMANDS = {"report": _report_command, "cancel": _cancel_command}
