"""Routing of a report (三管三必须 + 属地): category -> 行业主管部门, place -> 属地 unit and grid member.

Both come from the routing_rules table (defaults seeded by migration 0002, edited by admins);
place names may also come from config `ledger.places`. What cannot be matched goes to the triage
unit (config `ledger.triage_unit`, the 安委办), flagged `triage=True`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Person, RoutingRule, Unit

log = logging.getLogger(__name__)

OTHER = "其他"
CATEGORIES: tuple[str, ...] = (
    "消防", "燃气", "危险化学品", "道路交通", "建筑施工", "特种设备", "烟花爆竹", "学校/幼儿园",
    "养老机构", "医院", "电动自行车", "九小场所", "三合一/多合一", "出租房/群租房", "森林防火",
    "非煤矿山", "工贸企业", "有限空间", "粉尘涉爆", OTHER,
)
# Words people type for a category (besides its own name and the halves of "学校/幼儿园").
CATEGORY_ALIASES: dict[str, str] = {
    "火灾": "消防", "煤气": "燃气", "天然气": "燃气", "液化气": "燃气", "危化品": "危险化学品",
    "危化": "危险化学品", "交通": "道路交通", "工地": "建筑施工", "施工": "建筑施工", "电梯": "特种设备",
    "锅炉": "特种设备", "鞭炮": "烟花爆竹", "学校": "学校/幼儿园", "幼儿园": "学校/幼儿园",
    "养老院": "养老机构", "敬老院": "养老机构", "电动车": "电动自行车", "三合一": "三合一/多合一",
    "多合一": "三合一/多合一", "出租房": "出租房/群租房", "群租房": "出租房/群租房", "森林": "森林防火",
    "矿山": "非煤矿山", "工厂": "工贸企业", "其它": OTHER,
}

# (category, keywords, bonus pairs): a keyword hit scores 1; each pair whose words all occur scores 2.
_KEYWORDS: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = (
    ("电动自行车", ("电动车", "电瓶车", "电动自行车", "电瓶", "飞线充电", "充电桩", "锂电池"),
     (("电动车", "充电"), ("电瓶车", "充电"), ("楼道", "充电"))),
    ("燃气", ("煤气", "液化气", "燃气", "天然气", "煤气罐", "液化石油气", "钢瓶", "燃气味", "煤气味", "漏气"),
     (("气", "泄漏"), ("气", "味"))),
    ("消防", ("消防通道", "灭火器", "消防栓", "消火栓", "安全出口", "疏散通道", "应急照明", "防火门",
              "烟感", "火灾", "着火", "消防"), (("通道", "堵"), ("出口", "锁"))),
    ("三合一/多合一", ("三合一", "多合一", "住人"), (("住人", "厂房"), ("住人", "仓库"), ("住人", "车间"),
                                                   ("睡", "仓库"), ("睡", "厂房"), ("住", "作坊"))),
    ("九小场所", ("小商店", "小餐馆", "小饭店", "小旅馆", "小歌舞", "小网吧", "小美容", "小浴室",
                  "小学校", "小医院", "小作坊", "九小", "门店", "饭店", "餐馆"), ()),
    ("出租房/群租房", ("出租房", "群租", "出租屋", "隔断间", "城中村"), (("房东", "住"),)),
    ("危险化学品", ("危化", "化学品", "油漆", "酒精", "汽油", "柴油", "易燃", "易爆", "溶剂", "加油站"), ()),
    ("道路交通", ("车辆", "超载", "货车", "公路", "红绿灯", "斑马线", "马路", "路口", "交通"), ()),
    ("建筑施工", ("工地", "施工", "脚手架", "塔吊", "基坑", "模板", "高处作业", "安全帽", "建筑"), ()),
    ("特种设备", ("电梯", "锅炉", "压力容器", "起重机", "叉车", "游乐设施", "压力管道"), ()),
    ("烟花爆竹", ("烟花", "爆竹", "鞭炮", "礼花", "炮仗"), ()),
    ("学校/幼儿园", ("学校", "幼儿园", "校园", "托儿所", "学生", "教室"), ()),
    ("养老机构", ("养老院", "敬老院", "养老机构", "老年公寓", "福利院"), ()),
    ("医院", ("医院", "诊所", "卫生院", "门诊"), ()),
    ("森林防火", ("山火", "烧荒", "野外用火", "林区", "上坟", "烧纸", "秸秆", "森林"), ()),
    ("非煤矿山", ("矿山", "采石", "尾矿", "矿井", "露天矿", "采砂"), ()),
    ("工贸企业", ("工厂", "车间", "企业", "冲床", "机械", "厂区"), ()),
    ("有限空间", ("有限空间", "化粪池", "污水井", "窨井", "下水道", "储罐", "地窖"), ()),
    ("粉尘涉爆", ("粉尘", "铝粉", "木粉", "打磨", "抛光", "除尘"), ()),
)


@dataclass(frozen=True)
class Routing:
    department_id: int | None  # 行业主管部门 (the triage unit when the category has no rule)
    territorial_id: int | None  # 属地 unit (the triage unit when the place matched nothing)
    grid_person_id: int | None
    triage: bool  # something was unmatched: the 安委办 must assign it


def canonical_category(answer: str) -> str:
    """The category named by an answer ('学校' -> '学校/幼儿园'), or '' when it names none."""
    text = re.sub(r"[\s。.！!]", "", answer)
    if text in CATEGORIES:
        return text
    if text in CATEGORY_ALIASES:
        return CATEGORY_ALIASES[text]
    halves = {half: c for c in CATEGORIES if "/" in c for half in c.split("/")}
    return halves.get(text, "")


def suggest_category(text: str, limit: int = 4) -> list[str]:
    """Likely categories for a description, best first, at most `limit`, always ending with 其他."""
    scores: dict[str, int] = {}
    for order, (category, words, pairs) in enumerate(_KEYWORDS):
        score = sum(1 for w in words if w in text)
        score += sum(2 for pair in pairs if all(w in text for w in pair))
        if score:
            scores[category] = score * 100 - order  # ties: the more specific category (listed first)
    ranked = sorted(scores, key=scores.get, reverse=True)[:limit]
    return [*ranked, OTHER]


def _unit_id(session: Session, name: str) -> int | None:
    return session.scalar(select(Unit.id).where(Unit.name == name)) if name else None


def triage_unit_id(session: Session, config) -> int | None:
    return _unit_id(session, config.ledger.triage_unit)


def _grid_person_id(session: Session, name: str, unit_id: int | None) -> int | None:
    if not name:
        return None
    people = session.execute(
        select(Person.id, Person.unit_id, Person.roles).where(Person.name == name, Person.active.is_(True))
    ).all()
    if not people:
        log.warning("routing: grid member %r from config not found among people", name)
        return None
    # prefer someone in the matched unit, then someone with the grid role
    people.sort(key=lambda p: (p.unit_id != unit_id, "grid" not in (p.roles or "").split(","), p.id))
    return people[0].id


def match_place(session: Session, place: str, config) -> tuple[int | None, int | None]:
    """(属地 unit id, grid person id) for the longest configured place name inside `place`."""
    best: tuple[int, int, int | None, int | None] | None = None  # (length, priority, unit, grid)
    rows = session.execute(
        select(RoutingRule.key, RoutingRule.unit_id, RoutingRule.grid_person_id)
        .where(RoutingRule.kind == "place")
    ).all()
    for key, unit_id, grid_id in rows:
        if key and key in place:
            candidate = (len(key), 1, unit_id, grid_id)  # rules in the table win ties over config
            best = max(best, candidate, key=lambda c: (c[0], c[1])) if best else candidate
    for key, spec in config.ledger.places.items():
        if not key or key not in place or (best and (best[0], best[1]) >= (len(key), 0)):
            continue
        unit_id = _unit_id(session, spec.get("unit", key))
        if unit_id is None:
            log.warning("routing: unit %r for place %r from config not found", spec.get("unit", key), key)
            continue
        best = (len(key), 0, unit_id, _grid_person_id(session, spec.get("grid", ""), unit_id))
    return (best[2], best[3]) if best else (None, None)


def route(session: Session, category: str, place: str, config) -> Routing:
    """Department by category rule, 属地 and grid member by place name; the gaps to the triage unit."""
    triage_id = triage_unit_id(session, config)
    department_id = session.scalar(
        select(RoutingRule.unit_id).where(RoutingRule.kind == "category", RoutingRule.key == category)
    )
    territorial_id, grid_id = match_place(session, place or "", config)
    triage = (
        department_id is None
        or territorial_id is None
        or category == OTHER
        or (triage_id is not None and department_id == triage_id)
    )
    return Routing(
        department_id=department_id if department_id is not None else triage_id,
        territorial_id=territorial_id if territorial_id is not None else triage_id,
        grid_person_id=grid_id,
        triage=triage,
    )
