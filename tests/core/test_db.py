"""The SQLite writer lock: writers queue on a lock file and start when the holder ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from herald.core.db import WriterLockedConnection, make_engine


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


def test_a_second_writer_starts_when_the_first_commits(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    order: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait()
        with engine.begin() as conn:
            order.append("second begins")
            conn.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        assert isinstance(conn.connection.dbapi_connection, WriterLockedConnection)
        conn.execute(text("INSERT INTO t VALUES (1)"))
        first_in.set()
        time.sleep(0.3)  # the second writer is queued on the lock meanwhile
        order.append("first commits")
    thread.join(timeout=10)
    assert order == ["first commits", "second begins"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    assert (tmp_path / "h.db-writer.lock").exists()


def test_a_rolled_back_or_failed_transaction_releases_the_lock(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    done = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(timeout=5), "the lock outlived the rolled-back transaction"


def test_a_nested_writer_in_the_same_thread_does_not_wait_for_itself(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.begin() as outer:
        outer.execute(text("INSERT INTO t VALUES (1)"))
        raw = engine.raw_connection()
        try:
            # Takes no lock file, so SQLite's own busy timeout governs, as without it.
            conn = raw.driver_connection
            assert isinstance(conn, WriterLockedConnection)
            conn.acquire_writer_lock()
            assert not conn._holding
        finally:
            raw.close()


def test_in_memory_databases_take_no_lock(tmp_path: Path) -> None:
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    assert not list(tmp_path.iterdir())


def test_a_begin_that_fails_is_sqlalchemys_error_and_releases_the_lock(tmp_path: Path) -> None:
    import sqlite3

    import pytest
    from sqlalchemy.exc import OperationalError

    engine = _engine(tmp_path)
    raw = engine.raw_connection()  # the pool's one connection: make it wait 50 ms, not 30 s
    raw.driver_connection.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
    raw.close()
    # A writer that is not Herald's takes SQLite's lock without the lock file.
    outsider = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    outsider.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"), engine.begin():
            pass
    finally:
        outsider.rollback()
        outsider.close()
    # The failed BEGIN let go of the lock file: Herald's next writer is not stuck behind it.
    done = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(timeout=5)
