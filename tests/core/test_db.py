"""The database engine: the SQLite writer lock (writers queue on a lock file and start when
the holder ends), a failed BEGIN, and the pooled connections tested only after idling."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError

from herald.core import db
from herald.core.db import (
    READ_ONLY,
    WRITE_WAIT,
    DatabaseBusy,
    NestedWriteTransaction,
    WriterLockedConnection,
    make_engine,
    transaction_open,
)
from tests.services import PG_ADMIN_URL, postgres_available, service_missing


def _engine(tmp_path: Path, *, sqlite_busy_ms: int | None = None) -> Engine:
    """An engine on a new database file. ``sqlite_busy_ms`` replaces SQLite's own busy
    wait: at 0 a writer that meets SQLite's lock fails at once ("database is locked"), so
    a writer that waits and then succeeds can only have waited on Herald's lock file."""
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    if sqlite_busy_ms is not None:

        @event.listens_for(engine, "connect")
        def _busy(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout={sqlite_busy_ms}")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


def _lock_file_held(tmp_path: Path) -> bool:
    """Whether someone holds the writer lock file: a lock of our own on a new open file
    description conflicts with any other flock, this process's included."""
    fd = os.open(tmp_path / "h.db-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _a_writer_gets_in(engine: Engine) -> bool:
    """Whether a writer in another thread commits within 5 s (the lock file is free)."""
    done = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        done.set()

    threading.Thread(target=writer).start()
    return done.wait(timeout=5)


def test_a_second_writer_waits_on_the_lock_file_and_starts_when_the_first_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path, sqlite_busy_ms=0)
    order: list[str] = []
    first_in, second_queued = threading.Event(), threading.Event()
    found_held: list[bool] = []
    failures: list[BaseException] = []
    acquire = WriterLockedConnection.acquire_writer_lock

    def acquire_in_turn(connection: WriterLockedConnection, wait: float) -> None:
        if threading.current_thread().name == "second":
            # One try without waiting: the first writer holds the lock file now, so the
            # second is queued on it (not on SQLite) when the first is let go on.
            try:
                acquire(connection, 0)
            except DatabaseBusy:
                found_held.append(True)
            else:
                found_held.append(False)
                connection.release_writer_lock()
            second_queued.set()
        acquire(connection, wait)

    monkeypatch.setattr(WriterLockedConnection, "acquire_writer_lock", acquire_in_turn)

    def second() -> None:
        try:
            first_in.wait(timeout=5)
            with engine.begin() as conn:
                order.append("second begins")
                conn.execute(text("INSERT INTO t VALUES (2)"))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            second_queued.set()

    thread = threading.Thread(target=second, name="second")
    thread.start()
    with engine.begin() as conn:
        assert isinstance(conn.connection.dbapi_connection, WriterLockedConnection)
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _lock_file_held(tmp_path)
        first_in.set()
        assert second_queued.wait(timeout=5)
        order.append("first commits")
    thread.join(timeout=10)
    assert not failures, failures
    assert found_held == [True]
    assert order == ["first commits", "second begins"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    assert not _lock_file_held(tmp_path)


def test_a_rolled_back_or_failed_transaction_releases_the_lock(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    held: list[bool] = []

    def fail() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            held.append(_lock_file_held(tmp_path))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert held == [True]
    assert not _lock_file_held(tmp_path), "the lock outlived the rolled-back transaction"
    assert _a_writer_gets_in(engine)


def _hold_the_writer_lock(engine: Engine, release: threading.Event) -> threading.Event:
    """Another thread opens a write transaction and keeps it until ``release``."""
    holding = threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (9)"))
            holding.set()
            release.wait(timeout=30)

    threading.Thread(target=hold, daemon=True).start()
    assert holding.wait(timeout=5)
    return holding


def test_a_writer_gives_up_after_the_write_wait_and_a_reader_never_waits(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path)
    release = threading.Event()
    _hold_the_writer_lock(engine, release)
    try:
        assert _lock_file_held(tmp_path)
        started = time.monotonic()
        impatient = engine.execution_options(**{WRITE_WAIT: 0.2})
        with pytest.raises(DatabaseBusy, match="busy") as caught, impatient.begin():
            pass
        waited = time.monotonic() - started
        assert 0.2 <= waited < 2, waited  # the write wait is the subject: real time here
        assert caught.value.status_code == 503
        assert caught.value.headers["Retry-After"] == "1"

        # A reader sees the last committed state at once (WAL), without the lock.
        with engine.execution_options(**{READ_ONLY: True}).begin() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        release.set()
    assert _a_writer_gets_in(engine)


def test_a_reader_cannot_write(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    reading = engine.execution_options(**{READ_ONLY: True})
    with reading.begin() as reader:
        assert not _lock_file_held(tmp_path)  # a reader never takes the writer lock
        with pytest.raises(OperationalError, match="readonly"):
            reader.execute(text("INSERT INTO t VALUES (1)"))
    with engine.begin() as writer:  # the same pooled connection writes again afterwards
        writer.execute(text("INSERT INTO t VALUES (1)"))
        assert _lock_file_held(tmp_path)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_write_transaction_on_a_thread_is_refused(tmp_path: Path, backend: str) -> None:
    engine = _engine(tmp_path) if backend == "sqlite" else _postgres_engine(pool_size=2)
    try:
        with engine.begin() as outer:
            outer.execute(text("SELECT 1"))
            inner = engine.connect()
            try:
                with pytest.raises(NestedWriteTransaction):
                    inner.begin()
            finally:
                inner.close()
            # A read beside the write is allowed (it waits for nothing).
            with engine.execution_options(**{READ_ONLY: True}).begin() as reader:
                reader.execute(text("SELECT 1"))
                assert transaction_open()
        assert not transaction_open()
        with engine.begin() as again:  # the refusal left nothing behind
            again.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_in_memory_databases_take_no_lock(tmp_path: Path) -> None:
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    assert not list(tmp_path.iterdir())


def test_a_begin_that_fails_is_sqlalchemys_error_and_releases_the_lock(tmp_path: Path) -> None:
    engine = _engine(tmp_path, sqlite_busy_ms=50)  # SQLite's own wait: 50 ms, not 5 s
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
    assert not _lock_file_held(tmp_path)
    assert _a_writer_gets_in(engine)


def _postgres_engine(pool_size: int = 1) -> Engine:
    reason = postgres_available()
    if reason:
        service_missing("PostgreSQL", reason)
    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return make_engine(url, pool_size=pool_size, max_overflow=0)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_pooled_connection_that_died_while_idle_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _postgres_engine()

    def kill(pid: int) -> None:  # as a server restart or an idle timeout would
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    try:
        first = _backend_pid(engine)
        kill(first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle long enough
        second = _backend_pid(engine)  # the ping failed, the pool connected afresh
        assert second != first

        kill(second)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # a moment ago: no ping
        with pytest.raises(OperationalError):
            _backend_pid(engine)
        assert _backend_pid(engine) != second  # SQLAlchemy dropped the dead one
    finally:
        engine.dispose()


def test_only_an_idle_pooled_connection_is_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _postgres_engine()
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def ping(dbapi_connection: DBAPIConnection) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", ping)
    try:
        _backend_pid(engine)  # a new connection: not pinged
        _backend_pid(engine)  # back from use a moment ago: not pinged
        assert pings == []
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        _backend_pid(engine)  # idle (past the threshold): pinged
        assert len(pings) == 1
    finally:
        engine.dispose()
