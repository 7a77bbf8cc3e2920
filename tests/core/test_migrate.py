from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from herald.core.db import get_engine, make_engine
from herald.core.migrate import alembic_config, upgrade
from herald.models import Base
from tests.services import PG_ADMIN_URL, postgres_available, service_missing


def test_migrations_match_the_models(db_backend: str) -> None:
    # The fixture migrated this database with Alembic; the models must need no change.
    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    if reason := postgres_available():
        service_missing("PostgreSQL", reason)

    name = f"herald_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _workspace_indexes(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            table: {
                i["name"]
                for i in found.get_indexes(table)
                if i["column_names"][:1] == ["workspace_id"] and i["name"] is not None
            }
            for table in ("channels", "posts", "jobs")
        }
    finally:
        engine.dispose()


def test_the_covered_workspace_indexes_go_and_come_back(empty_database: str) -> None:
    # 0003 drops the workspace_id indexes a longer index leads; its downgrade restores them.
    upgrade(empty_database, "0002")
    before = _workspace_indexes(empty_database)
    assert "ix_channels_workspace_id" in before["channels"]
    assert before["posts"] == {"ix_posts_workspace_id", "ix_posts_workspace_created"}
    assert before["jobs"] == {"ix_jobs_workspace_id", "ix_jobs_workspace_state"}

    upgrade(empty_database)
    assert _workspace_indexes(empty_database) == {
        "channels": before["channels"] - {"ix_channels_workspace_id"},
        "posts": {"ix_posts_workspace_created"},
        "jobs": {"ix_jobs_workspace_state"},
    }

    # What leads on channels.workspace_id now: the unique (workspace_id, name).
    engine = make_engine(empty_database)
    try:
        unique = inspect(engine).get_unique_constraints("channels")
    finally:
        engine.dispose()
    assert ["workspace_id", "name"] in [u["column_names"] for u in unique]

    command.downgrade(alembic_config(empty_database), "0002")
    assert _workspace_indexes(empty_database) == before
