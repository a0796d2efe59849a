"""Shared fixtures: a knowledge base over the bundled library (built once per session, lexical-only
so the suite stays fast), services for handlers, factories for incoming messages."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from bot.app import Services, build_knowledge, ensure_library  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.types import Incoming  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "knowledge" / "library"


def lexical_config() -> Config:
    config = Config()
    config.knowledge.embedding.provider = "none"
    return config


@pytest.fixture(scope="session")
def kb_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kb")


@pytest.fixture(scope="session")
def bundled_kb(kb_dir):
    config = lexical_config()
    kb = build_knowledge(config, kb_dir)
    ensure_library(config, kb, kb_dir)
    return kb


@pytest.fixture(scope="session")
def services(bundled_kb, kb_dir):
    return Services(config=lexical_config(), data_dir=kb_dir, kb=bundled_kb)


def make_incoming(text: str = "", user: str = "u1", chat: str = "c1", **kw) -> Incoming:
    """Factory for incoming messages; override any field by keyword."""
    return Incoming(channel=kw.pop("channel", "console"), chat=chat, user=user, text=text, **kw)


@pytest.fixture
def incoming():
    return make_incoming


@pytest.fixture(scope="session")
def lexical_config_file(tmp_path_factory) -> Path:
    """A config.yaml for CLI tests: lexical retrieval only, so no model is loaded."""
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text("knowledge:\n  embedding:\n    provider: none\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- ledger fixtures

from datetime import datetime  # noqa: E402

from bot.clock import FakeClock  # noqa: E402
from bot.storage.db import make_engine, session_factory, upgrade  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    """An injected clock: 2026-11-22 09:00 local time, moved by tests with clock.advance(...)."""
    return FakeClock(datetime(2026, 11, 22, 9, 0, 0))


@pytest.fixture
def db_engine(tmp_path):
    """A migrated SQLite ledger database (the real migrations, a real file in WAL mode)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger_services(db_engine, bundled_kb, kb_dir, clock):
    """Services with a fresh migrated ledger, the shared knowledge base and the fake clock."""
    return Services(config=lexical_config(), data_dir=db_engine.url.database and Path(db_engine.url.database).parent,
                    kb=bundled_kb, db=session_factory(db_engine), clock=clock)


# ---------------------------------------------------------------- PostgreSQL (when reachable)

import uuid  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PG_URL = os.environ.get("SAFEDUTY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
PG_TEST_DATABASE = "safeduty_test"


@pytest.fixture(scope="session")
def pg_url() -> str | None:
    """A dedicated test database (created on first use) on the PostgreSQL at PG_URL; None when no
    server answers there. Each test then works in a fresh schema of its own."""
    try:
        import psycopg  # noqa: F401

        server = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
        with server.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_TEST_DATABASE}).first()
            if not exists:
                try:
                    conn.execute(text(f'CREATE DATABASE "{PG_TEST_DATABASE}"'))
                except Exception:  # created meanwhile by a parallel run
                    pass
        server.dispose()
    except Exception:
        return None
    return make_url(PG_URL).set(database=PG_TEST_DATABASE).render_as_string(hide_password=False)


@pytest.fixture
def pg_engine(pg_url):
    """A migrated PostgreSQL ledger in a throw-away schema (search_path), dropped afterwards."""
    if pg_url is None:
        where = make_url(PG_URL).render_as_string(hide_password=True)
        if os.environ.get("CI"):  # CI machines run PostgreSQL: its absence is a failure, not a skip
            pytest.fail(f"PostgreSQL not reachable at {where} (CI must test the scale-out path)")
        pytest.skip(f"PostgreSQL not reachable at {where}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(pg_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_engine(request):
    """The migrated ledger on SQLite, and again on PostgreSQL when a server is reachable."""
    return request.getfixturevalue("db_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture
def any_ledger_services(any_db_engine, bundled_kb, kb_dir, clock, tmp_path):
    """ledger_services over any_db_engine (SQLite and PostgreSQL)."""
    return Services(config=lexical_config(), data_dir=tmp_path, kb=bundled_kb,
                    db=session_factory(any_db_engine), clock=clock)
