"""Parsing and formatting for the cadre ledger commands: filters, key=value fields, dates, and the
text of hazard lists and details. No database writes here."""
from __future__ import annotations

import re
from datetime import date, timedelta

from bot.config import Config
from bot.ledger import queries
from bot.ledger.actions import INTERNAL_MARK, SEVERITIES
from bot.ledger.receipts import normalize_code
from bot.ledger.routing import canonical_category
from bot.storage import workflow
from bot.storage.models import Hazard, HazardHistory, Person

PAGE_SIZE = 10
BIND_HINT = "您还没有绑定工作身份。请向安委办索取绑定码，然后发送：/bind 绑定码"
STAFF_ONLY = "该命令仅供网格员、干部和安委办使用。群众查询举报进展请用 /query 回执码 密码，或 /myreports。"
COMMAND_OF = {"accept": "/accept", "start": "/start", "submit": "/submit", "close": "/close", "return": "/return",
              "reject": "/reject", "duplicate": "/dup", "reopen": "/reopen"}
STATE_BY_LABEL = {s.label: key for key, s in workflow.STATES.items()} | {"不属实": "rejected"}


class ParseError(ValueError):
    pass


# ---------------------------------------------------------------- parsing


def split_code(args: str) -> tuple[str, str]:
    """('YH-20261122-0007', rest) from the command's arguments; ('', args) when no code leads."""
    parts = args.strip().split(None, 1)
    if not parts:
        return "", ""
    code = normalize_code(parts[0])
    return (code, parts[1].strip() if len(parts) > 1 else "") if code else ("", args.strip())


def parse_filters(args: str) -> dict:
    """'逾期 重大 消防 2' -> {'overdue': True, 'severity': '重大', 'category': '消防', 'page': 2}."""
    out: dict = {"page": 1, "open_only": True}
    for token in re.split(r"[\s,，、;；]+", args.strip()):
        if not token:
            continue
        page = re.fullmatch(r"(?:第|p|P)?(\d{1,4})页?", token)
        if token in ("逾期", "超期", "已逾期"):
            out["overdue"] = True
        elif token in SEVERITIES:
            out["severity"] = token
        elif token in ("全部", "所有"):
            out["open_only"] = False
        elif token in ("全区", "全县"):
            out["district"] = True  # admins: every unit
        elif token in STATE_BY_LABEL:
            out["state"], out["open_only"] = STATE_BY_LABEL[token], False
        elif page:
            out["page"] = max(1, int(page.group(1)))
        elif canonical_category(token):
            out["category"] = canonical_category(token)
        else:
            raise ParseError(
                f"不认识的筛选条件「{token[:20]}」。可用：逾期、重大/一般、状态（{'、'.join(STATE_BY_LABEL)}）、"
                "全部（含已办结）、全区（安委办）、类别（如 消防、燃气、电动自行车），以及页码（如 2）。"
            )
    return out


ACCEPT_KEYS = {
    "责任单位": "responsible_unit", "责任人": "responsible_person", "整改措施": "measures", "措施": "measures",
    "整改资金": "funds", "资金": "funds", "整改时限": "deadline", "时限": "deadline", "期限": "deadline",
    "应急预案": "emergency_plan", "预案": "emergency_plan", "等级": "severity", "级别": "severity",
    "督办领导": "supervising_leader", "督办": "supervising_leader", "备注": "note", "说明": "note",
}
_KEY_RE = re.compile(
    r"(?:^|(?<=[\s,，;；]))(" + "|".join(sorted(ACCEPT_KEYS, key=len, reverse=True)) + r")\s*[=＝:：]\s*"
)


def parse_fields(text: str) -> dict[str, str]:
    """'责任人=张三 措施=清理楼道 堆物 资金=500元' -> {'responsible_person': '张三', 'measures': '清理楼道 堆物', …}.
    A value runs to the next key, so it may hold spaces; one key per line works as well."""
    matches = list(_KEY_RE.finditer(text))
    if text.strip() and not matches:
        raise ParseError("没有看懂要填写的内容，请用“责任人=… 措施=…”的格式。")
    if matches and text[: matches[0].start()].strip():
        raise ParseError(f"“{text[: matches[0].start()].strip()[:20]}”前面缺少字段名，请用“字段=内容”的格式。")
    fields: dict[str, str] = {}
    for m, nxt in zip(matches, matches[1:] + [None]):
        value = text[m.end() : nxt.start() if nxt else len(text)].strip().strip(",，;；").strip()
        fields[ACCEPT_KEYS[m.group(1)]] = value
    return fields


def parse_date(text: str, today: date) -> date:
    """2026-12-01, 2026/12/1, 2026年12月1日, 12月1日, 12-01, or '15天' (from today)."""
    t = text.strip().replace(" ", "")
    if m := re.fullmatch(r"(\d{1,3})(?:天|日|d)", t):
        return today + timedelta(days=int(m.group(1)))
    m = re.fullmatch(r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?", t)
    if m:
        try:
            return date(int(m.group(1) or today.year), int(m.group(2)), int(m.group(3)))
        except ValueError:
            pass
    raise ParseError(f"整改时限“{text[:20]}”看不懂，请写成 2026-12-01 或 15天。")


def accept_template(hazard: Hazard, settings, responsible_unit: str) -> str:
    days = settings.deadline_days
    return (
        f"请按下面格式发送（可复制后修改）：\n"
        f"/accept {hazard.code} 责任人=姓名 措施=整改措施 资金=金额或来源 预案=应急措施\n"
        f"可选：时限=2026-12-01（默认一般隐患 {days.get('一般', 7)} 天、重大隐患 {days.get('重大', 30)} 天）、"
        f"等级=重大（挂牌督办，督办=领导姓名，默认单位领导）、"
        f"责任单位=…（默认 {responsible_unit or '行业主管部门'}）"
    )


# ---------------------------------------------------------------- formatting


def _deadline_text(hazard: Hazard, today: date) -> str:
    if hazard.deadline is None:
        return ""
    days = (hazard.deadline - today).days
    if queries.is_overdue(hazard, today):
        return f"限 {hazard.deadline:%m-%d}（逾期 {-days} 天）"
    if workflow.is_open(hazard.state) and days <= 3:
        return f"限 {hazard.deadline:%m-%d}（剩 {days} 天）"
    return f"限 {hazard.deadline:%m-%d}"


def hazard_line(hazard: Hazard, today: date) -> str:
    parts = [hazard.code, workflow.label(hazard.state), hazard.severity, hazard.category]
    deadline = _deadline_text(hazard, today)
    if deadline:
        parts.append(deadline)
    desc = re.sub(r"\s+", " ", hazard.description or "")
    desc = desc[:24] + ("…" if len(desc) > 24 else "")
    place = (hazard.place or "")[:20]
    return "｜".join(parts) + f"\n   {place + ' · ' if place else ''}{desc}"


def hazard_list(title: str, rows: list[Hazard], total: int, page: int, today: date, again: str) -> str:
    if total == 0:
        return f"{title}：没有符合条件的隐患。"
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    if not rows:
        return f"{title}：共 {total} 条，只有 {pages} 页。"
    head = f"{title}：共 {total} 条" + (f"，第 {page}/{pages} 页" if pages > 1 else "")
    lines = [head] + [f"{i}. {hazard_line(h, today)}" for i, h in enumerate(rows, start=(page - 1) * PAGE_SIZE + 1)]
    tail = "发送 /hazard 编号 查看详情"
    if page < pages:
        tail += f"；下一页：{again} {page + 1}".replace("  ", " ")
    return "\n".join(lines + [tail])


def _note(text: str) -> str:
    return text.replace(INTERNAL_MARK, "（内部）").replace("\n", " ")


def hazard_detail(hazard: Hazard, *, viewer: Person | None, config: Config, today: date, names: dict,
                  history: list[HazardHistory], photos: tuple[int, int]) -> str:
    """The full card of one hazard for staff. `names`: unit/person display names by role key."""
    flags = [workflow.label(hazard.state), hazard.severity]
    if queries.is_overdue(hazard, today):
        flags.append(f"逾期 {(today - hazard.deadline).days} 天")
    desc = hazard.description or ""
    lines = [
        f"隐患 {hazard.code}（{'｜'.join(flags)}）",
        f"类别：{hazard.category}　来源：{hazard.source}",
        f"地点：{hazard.place or '未填写'}",
        f"描述：{desc[:300]}{'…' if len(desc) > 300 else ''}",
        f"举报：{hazard.reported_at:%Y-%m-%d %H:%M}，举报人：{queries.visible_reporter(hazard, viewer, config)}",
        f"行业主管部门：{names.get('department') or '未定'}；属地：{names.get('territorial') or '未定'}"
        + (f"；网格员：{names['grid']}" if names.get("grid") else ""),
    ]
    if hazard.measures or hazard.responsible_person:
        lines += [
            "五落实：",
            f"· 责任单位：{hazard.responsible_unit or '—'}",
            f"· 责任人：{hazard.responsible_person or '—'}",
            f"· 整改措施：{hazard.measures or '—'}",
            f"· 整改资金：{hazard.funds or '—'}",
            f"· 整改时限：{hazard.deadline:%Y-%m-%d}" if hazard.deadline else "· 整改时限：—",
            f"· 应急预案：{hazard.emergency_plan or '—'}",
        ]
    if names.get("supervisor"):
        lines.append(f"挂牌督办：{names['supervisor']}")
    if names.get("duplicate_of"):
        lines.append(f"重复于：{names['duplicate_of']}")
    if any(photos):
        lines.append(f"照片：举报 {photos[0]} 张，整改 {photos[1]} 张")
    if history:
        lines.append("处理记录：")
        for h in history[-10:]:
            step = f"{workflow.label(h.from_state)} → " if h.from_state else ""
            note = f"：{_note(h.note)[:120]}" if h.note else ""
            lines.append(f"· {h.at:%m-%d %H:%M} {h.actor_label or '—'} {step}{workflow.label(h.to_state)}{note}")
    options = workflow.allowed_from(hazard.state)
    if options:
        lines.append("可进行：" + "、".join(f"{t.label} {COMMAND_OF.get(t.action, '/' + t.action)}" for t in options))
    return "\n".join(lines)
