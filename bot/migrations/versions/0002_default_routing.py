"""default routing: the 安委办 triage unit, 行业主管部门 and category -> department rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Data only. Self-contained on purpose (no ORM imports): the defaults are frozen as they were when
this migration was written. Rows an admin already created (same unit name, same rule key) are
left alone, so it also runs on a populated database.
"""
from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OFFICE = "区安委办"
DEPARTMENTS = (
    "区消防救援大队",
    "区住房和城乡建设局",
    "区应急管理局",
    "区市场监督管理局",
    "区交通运输局",
    "区公安分局交警大队",
    "区教育局",
    "区民政局",
    "区卫生健康局",
    "区商务局",
    "区林业局",
    "区城市管理局",
)
# category -> 行业主管部门 (三管三必须); 其他 goes to the 安委办 for triage
CATEGORY_RULES = (
    ("消防", "区消防救援大队"),
    ("燃气", "区城市管理局"),
    ("危险化学品", "区应急管理局"),
    ("道路交通", "区公安分局交警大队"),
    ("建筑施工", "区住房和城乡建设局"),
    ("特种设备", "区市场监督管理局"),
    ("烟花爆竹", "区应急管理局"),
    ("学校/幼儿园", "区教育局"),
    ("养老机构", "区民政局"),
    ("医院", "区卫生健康局"),
    ("电动自行车", "区消防救援大队"),
    ("九小场所", "区消防救援大队"),
    ("三合一/多合一", "区消防救援大队"),
    ("出租房/群租房", "区住房和城乡建设局"),
    ("森林防火", "区林业局"),
    ("非煤矿山", "区应急管理局"),
    ("工贸企业", "区应急管理局"),
    ("有限空间", "区应急管理局"),
    ("粉尘涉爆", "区应急管理局"),
    ("其他", OFFICE),
)

units = sa.table(
    "units", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("kind", sa.String)
)
rules = sa.table(
    "routing_rules",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("key", sa.String),
    sa.column("unit_id", sa.Integer),
)


def _unit_ids(conn) -> dict[str, int]:
    return {name: uid for uid, name in conn.execute(sa.select(units.c.id, units.c.name))}


def upgrade() -> None:
    conn = op.get_bind()
    existing = _unit_ids(conn)
    wanted = [{"name": OFFICE, "kind": "office"}] + [{"name": n, "kind": "department"} for n in DEPARTMENTS]
    missing_units = [row for row in wanted if row["name"] not in existing]
    if missing_units:
        op.bulk_insert(units, missing_units)
    ids = _unit_ids(conn)
    have = {key for (key,) in conn.execute(sa.select(rules.c.key).where(rules.c.kind == "category"))}
    new_rules = [
        {"kind": "category", "key": key, "unit_id": ids[unit]}
        for key, unit in CATEGORY_RULES
        if key not in have
    ]
    if new_rules:
        op.bulk_insert(rules, new_rules)


def downgrade() -> None:
    conn = op.get_bind()
    ids = _unit_ids(conn)
    for key, unit in CATEGORY_RULES:
        conn.execute(
            sa.delete(rules).where(
                rules.c.kind == "category", rules.c.key == key, rules.c.unit_id == ids.get(unit)
            )
        )
    # units still referenced by anything (people, hazards, rules an admin added) stay
    for name in (OFFICE, *DEPARTMENTS):
        uid = ids.get(name)
        if uid is None:
            continue
        referenced = False
        for table, column in (
            ("routing_rules", "unit_id"),
            ("people", "unit_id"),
            ("units", "parent_id"),
            ("hazards", "department_id"),
            ("hazards", "territorial_id"),
        ):
            query = sa.text(f"SELECT 1 FROM {table} WHERE {column} = :uid LIMIT 1")
            if conn.execute(query, {"uid": uid}).first() is not None:
                referenced = True
                break
        if not referenced:
            conn.execute(sa.delete(units).where(units.c.id == uid))
