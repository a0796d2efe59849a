"""Identity and administration in chat: /bind 绑定码 (anyone), and for 安委办 admins /bindcode 姓名,
/route 类别 单位 (or /route 地点=名称 单位 [网格员]) and /routes."""
from __future__ import annotations

from bot.ledger.people import (
    BindingError,
    PeopleError,
    bind,
    find_person,
    issue_binding_code,
    person_for,
    roles_label,
)
from bot.ledger.routing_admin import list_routes, set_category_route, set_place_route
from bot.storage.db import transaction
from bot.types import Incoming, Reply

NO_DB = "隐患台账未启用。"
ADMIN_ONLY = "该命令仅限安委办管理员使用。"


def bind_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    code = args.strip()
    if not code:
        return [Reply("用法：/bind 绑定码（向安委办索取，24 小时内有效，只能用一次）。")]
    with transaction(services.db) as session:  # committed even when refused: attempts are counted
        try:
            person = bind(session, incoming.channel, incoming.user, code[:40], services.clock())
        except BindingError as exc:
            return [Reply(str(exc))]
        unit = f"（{person.unit.name}）" if person.unit else ""
        return [Reply(f"绑定成功。您好，{person.name}{unit}，身份：{roles_label(person)}。"
                      "发送 /mine 查看您负责的隐患。")]


def acting_admin(session, incoming: Incoming):
    """The bound 安委办 admin sending this message, or None."""
    person = person_for(session, incoming.channel, incoming.user)
    return person if person is not None and person.has_role("admin") else None


def bindcode_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    if not args.strip():
        return [Reply("用法：/bindcode 姓名（重名时用 #编号）")]
    try:
        with transaction(services.db) as session:
            admin = acting_admin(session, incoming)
            if admin is None:
                return [Reply(ADMIN_ONLY)]
            if incoming.is_group:
                return [Reply("绑定码请在私聊中索取，以免在群里泄露。")]
            person = find_person(session, args)
            now = services.clock()
            code = issue_binding_code(session, person, admin, now)
            unit = f"（{person.unit.name}）" if person.unit else ""
            return [Reply(f"{person.name}{unit}的绑定码：{code}\n24 小时内有效，只能使用一次。"
                          f"请转告本人在聊天中发送：/bind {code}")]
    except PeopleError as exc:
        return [Reply(str(exc))]


def route_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    parts = args.split()
    if len(parts) < 2:
        return [Reply("用法：/route 类别 行业主管部门，如 /route 燃气 区城市管理局；"
                      "或 /route 地点=幸福小区 幸福社区 [网格员姓名]")]
    try:
        with transaction(services.db) as session:
            if acting_admin(session, incoming) is None:
                return [Reply(ADMIN_ONLY)]
            head = parts[0]
            for prefix in ("地点=", "地点：", "地点:"):
                if head.startswith(prefix):
                    place = head[len(prefix):]
                    unit, grid = set_place_route(session, place, parts[1], " ".join(parts[2:]))
                    extra = f"，网格员 {grid.name}" if grid else ""
                    return [Reply(f"已设置：地点含“{place}”的举报 → 属地 {unit.name}{extra}。")]
            if len(parts) != 2:
                return [Reply("用法：/route 类别 行业主管部门（单位名称中不要有空格）")]
            category, unit = set_category_route(session, parts[0], parts[1])
            return [Reply(f"已设置：{category} 类隐患 → {unit.name}。")]
    except PeopleError as exc:
        return [Reply(str(exc))]


def routes_command(incoming: Incoming, services, args: str) -> list[Reply]:
    if services.db is None:
        return [Reply(NO_DB)]
    with transaction(services.db) as session:
        if acting_admin(session, incoming) is None:
            return [Reply(ADMIN_ONLY)]
        rows = list_routes(session)
    categories = [f"· {r.key} → {r.unit}" for r in rows if r.kind == "category"]
    places = [f"· {r.key} → {r.unit}" + (f"（网格员 {r.grid}）" if r.grid else "") for r in rows if r.kind == "place"]
    lines = ["类别 → 行业主管部门："] + (categories or ["（无）"]) + ["地点 → 属地："] + (places or ["（无）"])
    lines.append(f"未匹配的举报转 {services.config.ledger.triage_unit} 分办。")
    return [Reply("\n".join(lines))]


COMMANDS = {
    "bind": bind_command,
    "bindcode": bindcode_command,
    "route": route_command,
    "routes": routes_command,
}
