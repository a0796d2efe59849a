"""The numbered migrations and the models describe the same schema, on SQLite and PostgreSQL."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.storage.db import current_revision, head_revision
from bot.storage.models import Base


def test_migrated_schema_matches_the_models(any_db_engine):
    assert current_revision(any_db_engine) == head_revision(any_db_engine)
    with any_db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
