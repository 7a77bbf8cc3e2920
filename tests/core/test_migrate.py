from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from herald.core.db import get_engine
from herald.models import Base


def test_migrations_match_the_models(db_backend: str) -> None:
    # The fixture migrated this database with Alembic; the models must need no change.
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
