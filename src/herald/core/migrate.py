"""Run Alembic migrations from code (``herald migrate``, ``herald up``, tests).

One upgrade at a time: two ``herald migrate`` can start together (compose's migrate
one-shot beside a rolling deploy's, two hosts' ``ExecStartPre``). Without a lock, on
PostgreSQL both read an empty or old ``alembic_version`` and run the same DDL, and the
second fails once the first commits (a duplicate key in ``pg_type``); on SQLite the
second waits on the writer lock for at most the write wait, then gives up. So
:func:`upgrade` takes a lock for the whole upgrade, and whoever comes second waits for
as long as the first takes, then finds the schema at head and does nothing:

- PostgreSQL: a session advisory lock (``pg_advisory_lock``, key :data:`LOCK_KEY`) on a
  connection of its own, in autocommit (no transaction stays open while it waits). The
  server releases it if the process dies.
- SQLite: an exclusive ``flock`` on ``<database>-migrate.lock`` beside the database
  file; the kernel releases it if the process dies. An in-memory database takes none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from herald.core.db import make_engine, writer_lock_path
from herald.core.settings import get_settings

# pg_advisory_lock's key for migrations: the bytes "herald-m" as a signed 64-bit integer.
LOCK_KEY = int.from_bytes(b"herald-m", "big", signed=True)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("herald") / "migrations"))
    config.set_main_option("sqlalchemy.url", url or get_settings().effective_database_url)
    return config


def upgrade(
    url: str | None = None,
    revision: str = "head",
    *,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Upgrade to ``revision`` under the migration lock; ``on_wait`` is called once if
    another upgrade holds it (before waiting for it)."""
    config = alembic_config(url)
    with migration_lock(config.get_main_option("sqlalchemy.url") or "", on_wait=on_wait):
        command.upgrade(config, revision)


@contextlib.contextmanager
def migration_lock(url: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Held by one upgrade at a time across processes and hosts (see the module's doc)."""
    if url.startswith("sqlite"):
        with _file_lock(url, on_wait):
            yield
        return
    # A plain engine, not make_engine's: this connection holds no transaction (autocommit),
    # and Herald's transaction tracking must not count it as one around the upgrade's.
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            key = {"key": LOCK_KEY}
            if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
                if on_wait is not None:
                    on_wait()
                conn.execute(text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(url: str, on_wait: Callable[[], None] | None) -> Iterator[None]:
    writer = writer_lock_path(make_url(url).database)
    if writer is None:  # in memory: one process only
        yield
        return
    path = writer.with_name(writer.name.removesuffix("-writer.lock") + "-migrate.lock")
    if not path.parent.is_dir():
        # No directory, no database: SQLite's own error says so better than a lock's.
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def current_revision_is_head(url: str | None = None) -> bool:
    config = alembic_config(url)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads()) == heads
    finally:
        engine.dispose()
