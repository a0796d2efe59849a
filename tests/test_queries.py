"""Cadre lists: "mine" (responsible person or grid member), "my unit" (行业 or 属地, child units
included), filters (state, open, overdue, severity, category), order and paging, counts.
Runs on SQLite and, when reachable, PostgreSQL."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.ledger.queries import count_hazards, hazard_by_code, list_hazards, reports_of
from bot.storage.db import session_factory, transaction
from tests.ledger_world import build_world


@pytest.fixture
def db(any_db_engine):
    return session_factory(any_db_engine)


@pytest.fixture
def world(db, clock):
    with transaction(db) as s:
        return build_world(s, clock())


@pytest.fixture
def ledger(db, world, clock):
    """A handful of hazards: codes by label."""
    today = clock().date()
    with transaction(db) as s:
        w, now = world, clock()
        made = {
            "mine_open": w.hazard(s, now, state="rectifying", responsible=w.cadre_a, deadline=today + timedelta(5)),
            "mine_overdue": w.hazard(s, now, state="accepted", responsible=w.cadre_a, deadline=today - timedelta(2),
                                     severity="重大"),
            "mine_closed": w.hazard(s, now, state="closed", responsible=w.cadre_a, deadline=today - timedelta(9)),
            "grid_only": w.hazard(s, now, state="reported", department=w.office, grid=w.grid, category="燃气"),
            "unit_b": w.hazard(s, now, state="rectifying", department=w.town_b, territorial=w.town_b, grid=None,
                               deadline=today - timedelta(1)),
            "closed_overdue_date": w.hazard(s, now, state="rejected", department=w.town_b, territorial=w.town_b,
                                            grid=None, deadline=today - timedelta(30)),
        }
        return {k: h.code for k, h in made.items()}


def codes(rows) -> set[str]:
    return {h.code for h in rows}


def test_mine_is_responsible_or_grid_member_and_open(db, world, ledger, clock):
    with db() as s:
        assert codes(list_hazards(s, person=world.cadre_a, open_only=True)) == {ledger["mine_open"],
                                                                                ledger["mine_overdue"]}
        grid = codes(list_hazards(s, person=world.grid, open_only=True))
        assert ledger["grid_only"] in grid and ledger["unit_b"] not in grid
        assert ledger["mine_closed"] in codes(list_hazards(s, person=world.cadre_a))


def test_unit_covers_department_territory_and_child_units(db, world, ledger, clock):
    with db() as s:
        town = codes(list_hazards(s, unit_id=world.town.id, limit=100))  # hazards sit in its community
        assert {ledger["mine_open"], ledger["grid_only"]} <= town and ledger["unit_b"] not in town
        dept = codes(list_hazards(s, unit_id=world.dept_a.id, limit=100))
        assert ledger["mine_open"] in dept and ledger["grid_only"] not in dept  # grid_only's 行业 is the office


def test_overdue_is_open_and_past_the_deadline(db, world, ledger, clock):
    today = clock().date()
    with db() as s:
        assert codes(list_hazards(s, overdue=True, today=today)) == {ledger["mine_overdue"], ledger["unit_b"]}
        assert codes(list_hazards(s, unit_id=world.town_b.id, overdue=True, today=today)) == {ledger["unit_b"]}
        assert count_hazards(s, unit_id=world.town_b.id, overdue=True, today=today) == 1
        with pytest.raises(ValueError):
            list_hazards(s, overdue=True)


def test_severity_category_and_state_filters(db, world, ledger, clock):
    with db() as s:
        assert codes(list_hazards(s, person=world.cadre_a, severity="重大")) == {ledger["mine_overdue"]}
        assert codes(list_hazards(s, person=world.grid, category="燃气")) == {ledger["grid_only"]}
        assert codes(list_hazards(s, unit_id=world.town_b.id, state="rejected")) == {ledger["closed_overdue_date"]}


def test_open_lists_are_most_urgent_first_and_page(db, world, clock):
    today = clock().date()
    with transaction(db) as s:
        made = [world.hazard(s, clock(), state="rectifying", responsible=world.cadre_b, deadline=today + timedelta(d))
                for d in (9, 3, 6)]
        made.append(world.hazard(s, clock(), state="reported", responsible=world.cadre_b))  # no deadline: last
        expected = [made[1].code, made[2].code, made[0].code, made[3].code]
    with db() as s:
        first = list_hazards(s, person=world.cadre_b, open_only=True, limit=2)
        second = list_hazards(s, person=world.cadre_b, open_only=True, limit=2, offset=2)
        assert [h.code for h in first + second] == expected
        assert count_hazards(s, person=world.cadre_b, open_only=True, limit=2) == 4


def test_hazard_by_code_normalises_and_refuses_junk(db, ledger):
    with db() as s:
        assert hazard_by_code(s, " " + ledger["mine_open"].lower()).code == ledger["mine_open"]
        assert hazard_by_code(s, "x" * 5000) is None and hazard_by_code(s, "") is None


def test_reports_of_matches_channel_and_user(db, ledger):
    with db() as s:
        assert len(reports_of(s, "console", "citizen-1")) == len(ledger)
        assert reports_of(s, "telegram", "citizen-1") == []


def test_today_comes_from_the_caller(db, world, ledger):
    with db() as s:
        assert list_hazards(s, overdue=True, today=date(2020, 1, 1)) == []


def test_grid_index_migration_round_trips_on_a_populated_database(any_db_engine, db, ledger):
    from alembic import command
    from sqlalchemy import inspect

    from bot.storage.db import _alembic_config, current_revision, upgrade

    def grid_index() -> bool:
        return "ix_hazards_grid_state" in {ix["name"] for ix in inspect(any_db_engine).get_indexes("hazards")}

    assert grid_index()
    cfg = _alembic_config(any_db_engine)
    with any_db_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert current_revision(any_db_engine) == "0002" and not grid_index()
    upgrade(any_db_engine)
    assert grid_index()
    with db() as s:
        assert hazard_by_code(s, ledger["grid_only"]) is not None
