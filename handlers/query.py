"""Citizens follow their own reports: /query 回执码 密码, and /myreports for the reports filed from
this chat account. Nobody learns anything about anyone else's report: a wrong code and a wrong
secret get the same answer as a code that does not exist, and attempts are rate-limited."""
from __future__ import annotations

from datetime import timedelta

from bot.ledger import queries, ratelimit
from bot.ledger.actions import public_part
from bot.ledger.receipts import hash_secret, normalize_code, verify_secret
from bot.storage import workflow
from bot.storage.db import transaction
from bot.types import Incoming, Reply

USAGE = "用法：/query 回执码 密码，例如 /query YH-20261122-0007 K7P3QX（回执码和密码在举报成功时发给您）。"
NOT_FOUND = "没有查到对应的举报：回执码或查询密码不正确。请核对后重试。"
TOO_MANY = "查询次数过多，请一小时后再试。"
# compared against when no hazard matches, so an unknown code costs as much time as a wrong secret
_DECOY_HASH = hash_secret("decoy")


def query(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply("隐患台账未启用。")]
    parts = args.split()
    if len(parts) != 2:
        return [Reply(USAGE)]
    code, secret = normalize_code(parts[0]), parts[1][:64]
    limit = services.config.ledger.query_attempts_per_hour
    with transaction(services.db) as session:  # the attempt is committed whatever the answer
        now = services.clock()
        if ratelimit.hit(session, f"query:{incoming.channel}:{incoming.user}", limit, now, timedelta(hours=1)):
            return [Reply(TOO_MANY)]
        hazard = queries.hazard_by_code(session, code) if code else None
        ok = verify_secret(secret, hazard.secret_hash if hazard is not None and hazard.secret_hash else _DECOY_HASH)
        if hazard is None or not hazard.secret_hash or not ok:
            return [Reply(NOT_FOUND)]
        lines = [
            f"回执码 {hazard.code}",
            f"状态：{workflow.label(hazard.state)}",
            f"类别：{hazard.category}；举报时间：{hazard.reported_at:%Y-%m-%d %H:%M}",
        ]
        if hazard.deadline is not None and workflow.is_open(hazard.state):
            lines.append(f"整改时限：{hazard.deadline:%Y-%m-%d}")
        notes = [(h.at, workflow.label(h.to_state), public_part(h.note))
                 for h in queries.history(session, hazard, public_only=True)]
        if notes:
            lines.append("进展：")
            lines += [f"· {at:%m-%d} {label}" + (f"：{note}" if note else "") for at, label, note in notes]
        elif workflow.is_open(hazard.state):
            lines.append("您的举报已登记，正在核实中，有进展会通知您。")
        return [Reply("\n".join(lines))]


def myreports(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply("隐患台账未启用。")]
    with transaction(services.db) as session:
        rows = queries.reports_of(session, incoming.channel, incoming.user, limit=20)
        if not rows:
            return [Reply("您还没有通过本账号提交过举报。发送 /report 或“随手拍”开始举报。")]
        lines = [f"您提交的举报（最近 {len(rows)} 条）："]
        lines += [f"{i}. {h.code}｜{h.reported_at:%m-%d}｜{h.category}｜{workflow.label(h.state)}"
                  for i, h in enumerate(rows, start=1)]
        lines.append("查看进展：/query 回执码 密码")
        return [Reply("\n".join(lines))]


COMMANDS = {"query": query, "myreports": myreports}
