"""Routing of reports: the seeded defaults (migration 0002), category and place rules, triage,
and category suggestions from the description."""
from alembic import command
from sqlalchemy import select

from bot.config import Config
from bot.ledger.routing import CATEGORIES, OTHER, canonical_category, route, suggest_category
from bot.storage.db import _alembic_config, make_engine, session_factory, transaction, upgrade
from bot.storage.models import Person, RoutingRule, Unit


def _unit(session, name):
    return session.scalar(select(Unit).where(Unit.name == name))


def test_migration_seeds_a_rule_for_every_category(db_engine):
    with transaction(session_factory(db_engine)) as s:
        keys = set(s.scalars(select(RoutingRule.key).where(RoutingRule.kind == "category")))
        assert keys == set(CATEGORIES) and len(CATEGORIES) == 20
        assert _unit(s, "区安委办").kind == "office"
        assert _unit(s, "区消防救援大队").kind == "department"


def test_category_goes_to_its_department(db_engine):
    with transaction(session_factory(db_engine)) as s:
        r = route(s, "燃气", "某某路12号", Config())
        assert r.department_id == _unit(s, "区城市管理局").id
        r = route(s, "学校/幼儿园", "", Config())
        assert r.department_id == _unit(s, "区教育局").id


def test_unmatched_place_goes_to_triage(db_engine):
    with transaction(session_factory(db_engine)) as s:
        r = route(s, "消防", "不知道哪里的一个仓库", Config())
        office = _unit(s, "区安委办").id
        assert r.triage is True and r.territorial_id == office and r.grid_person_id is None
        assert r.department_id == _unit(s, "区消防救援大队").id


def test_other_category_is_triaged_by_the_office(db_engine):
    config = Config()
    with transaction(session_factory(db_engine)) as s:
        town = Unit(name="幸福社区", kind="community")
        s.add(town)
        s.flush()
        s.add(RoutingRule(kind="place", key="幸福社区", unit_id=town.id))
        r = route(s, OTHER, "幸福社区3栋", config)
        assert r.triage is True and r.department_id == _unit(s, "区安委办").id
        assert r.territorial_id == town.id


def test_unknown_category_goes_to_triage(db_engine):
    with transaction(session_factory(db_engine)) as s:
        r = route(s, "外星人", "", Config())
        assert r.triage and r.department_id == _unit(s, "区安委办").id


def test_longest_place_name_wins_with_its_grid_member(db_engine):
    with transaction(session_factory(db_engine)) as s:
        street, community = Unit(name="幸福街道", kind="township"), Unit(name="幸福社区", kind="community")
        s.add_all([street, community])
        s.flush()
        grid = Person(name="张网格", unit_id=community.id, roles="grid")
        s.add(grid)
        s.flush()
        s.add_all([
            RoutingRule(kind="place", key="幸福", unit_id=street.id),
            RoutingRule(kind="place", key="幸福社区", unit_id=community.id, grid_person_id=grid.id),
        ])
        r = route(s, "消防", "幸福社区3栋楼道", Config())
        assert (r.territorial_id, r.grid_person_id, r.triage) == (community.id, grid.id, False)
        assert route(s, "消防", "幸福路口", Config()).territorial_id == street.id


def test_places_from_config_name_unit_and_grid_member(db_engine):
    config = Config()
    config.ledger.places = {"光明村": {"unit": "光明村委会", "grid": "李网格"}}
    with transaction(session_factory(db_engine)) as s:
        village = Unit(name="光明村委会", kind="community")
        s.add(village)
        s.flush()
        s.add_all([Person(name="李网格", roles="citizen"), Person(name="李网格", unit_id=village.id, roles="grid")])
        s.flush()
        grid_id = s.scalar(select(Person.id).where(Person.unit_id == village.id))
        r = route(s, "森林防火", "光明村后山", config)
        assert (r.territorial_id, r.grid_person_id, r.triage) == (village.id, grid_id, False)
        assert r.department_id == _unit(s, "区林业局").id


def test_config_place_with_an_unknown_unit_is_ignored(db_engine):
    config = Config()
    config.ledger.places = {"光明村": {"unit": "不存在的单位"}}
    with transaction(session_factory(db_engine)) as s:
        assert route(s, "消防", "光明村", config).triage is True


def test_migration_keeps_what_admins_created_before_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'pop.db'}")
    upgrade(engine, "0001")
    with transaction(session_factory(engine)) as s:
        mine = Unit(name="区应急管理局", kind="department")
        s.add(mine)
        s.flush()
        s.add(RoutingRule(kind="category", key="消防", unit_id=mine.id))
    upgrade(engine)
    with transaction(session_factory(engine)) as s:
        assert len(s.scalars(select(Unit).where(Unit.name == "区应急管理局")).all()) == 1
        fire = s.scalar(select(RoutingRule).where(RoutingRule.kind == "category", RoutingRule.key == "消防"))
        assert fire.unit_id == _unit(s, "区应急管理局").id
        assert s.scalar(select(RoutingRule).where(RoutingRule.key == "燃气")) is not None
    engine.dispose()


def test_migration_downgrade_removes_the_defaults(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    upgrade(engine)
    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with transaction(session_factory(engine)) as s:
        assert s.scalars(select(RoutingRule)).all() == [] and s.scalars(select(Unit)).all() == []
    engine.dispose()


def test_suggestions_for_bikes_charging():
    assert suggest_category("楼道里好几辆电动车在充电")[0] == "电动自行车"


def test_suggestions_for_a_gas_smell():
    assert suggest_category("饭店后厨一股煤气味，液化气罐放在灶台边")[0] == "燃气"


def test_suggestions_for_blocked_fire_exits():
    assert suggest_category("商场的消防通道被货物堵死了，灭火器也过期了")[0] == "消防"


def test_suggestions_for_people_sleeping_in_a_warehouse():
    assert suggest_category("一楼是仓库，楼上住人")[0] == "三合一/多合一"


def test_suggestions_are_short_and_end_with_other():
    got = suggest_category("工地塔吊旁边的电动车充电桩着火")
    assert got[-1] == OTHER and len(got) <= 5 and len(set(got)) == len(got)
    assert suggest_category("说不清是什么") == [OTHER]


def test_category_answers_in_other_words():
    assert canonical_category("学校") == "学校/幼儿园"
    assert canonical_category(" 电动车 ") == "电动自行车"
    assert canonical_category("群租房") == "出租房/群租房"
    assert canonical_category("消防") == "消防"
    assert canonical_category("随便") == ""
