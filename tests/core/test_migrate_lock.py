"""Two `herald migrate` at once (compose's migrate one-shot beside a rolling deploy's, or
two hosts' ExecStartPre): the second waits for the first, then finds nothing to do.

Without the lock (checked before it was added, three runs), on PostgreSQL the second
failed every time: both read an empty alembic_version and ran the same DDL, and the second
hit a duplicate key in pg_type once the first committed. On SQLite both succeeded (the
writer lock file serialised the two upgrades' transactions), but only for as long as the
first upgrade took less than the write wait; then the second gave up with DatabaseBusy.
The second test proves the lock itself, deterministically, on both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from herald.core.db import make_engine
from herald.core.migrate import alembic_config, migration_lock
from tests.core.test_migrate import empty_database  # noqa: F401 (a fixture)


def migrate_process(url: str, data_dir: Path) -> subprocess.Popen[str]:
    env = os.environ | {"HERALD_DATABASE_URL": url, "HERALD_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "herald", "migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def revision(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def test_two_migrations_at_once_both_succeed(empty_database: str, tmp_path: Path) -> None:  # noqa: F811
    heads = set(ScriptDirectory.from_config(alembic_config(empty_database)).get_heads())
    first, second = (migrate_process(empty_database, tmp_path) for _ in range(2))
    outcomes = [(p.communicate(timeout=120)[1], p.returncode) for p in (first, second)]
    assert [code for _, code in outcomes] == [0, 0], outcomes
    assert revision(empty_database) == heads


@pytest.mark.timeout(180)
def test_a_migration_waits_for_the_one_holding_the_lock(
    empty_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    heads = set(ScriptDirectory.from_config(alembic_config(empty_database)).get_heads())
    with migration_lock(empty_database):  # as a first `herald migrate` would hold it
        second = migrate_process(empty_database, tmp_path)
        assert second.stdout is not None
        line = second.stdout.readline()  # it says so before it waits
        assert "Another `herald migrate` is upgrading this database; waiting" in line, (
            line + second.communicate()[1]
        )
        assert second.poll() is None
        assert revision(empty_database) == set()  # nothing ran while the lock was held
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "Database is up to date." in out
    assert revision(empty_database) == heads
