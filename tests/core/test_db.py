"""The database engine: the SQLite writer lock (writers queue on a lock file and start when
the holder ends), a failed BEGIN, and the pooled connections tested only after idling."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import uuid
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
    resolve_id,
    resolve_ref,
    session_scope,
    transaction_open,
)
from herald.core.errors import InvalidInput, NotFound
from herald.posts.models import Post
from herald.sources.models import Source
from herald.sources.schemas import SourceCreate
from herald.sources.service import create_source
from herald.users.principal import default_principal
from tests.conftest import MakeAccount
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


def test_the_threads_of_a_process_wait_their_turn_without_polling_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker's 32 publishing threads must not all poll the lock file while one of them
    # writes (they would win it from the API's single request nearly every time, and burn
    # CPU polling): they wait on an in-process lock, and only its holder tries the file.
    engine = _engine(tmp_path)
    polled_by: list[str] = []
    flock = fcntl.flock

    def counting_flock(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX:
            polled_by.append(threading.current_thread().name)
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", counting_flock)  # the module herald.core.db calls
    release = threading.Event()
    _hold_the_writer_lock(engine, release)
    polled_by.clear()
    waiters = [
        threading.Thread(target=_a_writer_gets_in, args=(engine,), name=f"waiter-{n}")
        for n in range(8)
    ]
    for waiter in waiters:
        waiter.start()
    # Long enough for 8 polling threads to try the file dozens of times each.
    time.sleep(0.3)
    tried_while_held = list(polled_by)
    release.set()
    for waiter in waiters:
        waiter.join(timeout=10)
    assert tried_while_held == []
    with engine.connect() as conn:  # and each then got in, in turn
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 9


def test_a_child_forked_while_a_thread_held_its_turn_starts_with_a_free_turn(
    tmp_path: Path,
) -> None:
    # A prefork pool forks its children from a process whose other threads may be
    # writing: the in-process turn they held is not the child's to wait for.
    path = str(tmp_path / "h.db-writer.lock")
    turn = db._process_writer_lock(path)
    assert turn.acquire(timeout=1)
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if db._process_writer_lock(path).acquire(timeout=0) else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        turn.release()
    assert os.waitstatus_to_exitcode(status) == 0


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


# --- ids named by a unique prefix (resolve_id, resolve_ref) ---------------------------------

# Four posts of one workspace whose ids share prefixes as a listing would show them, and
# one of another workspace that shares the first one's start.
IDS = {
    "alone": uuid.UUID("0a1b2c3d-0000-4000-8000-000000000001"),
    "twin-1": uuid.UUID("abcd1234-5678-4000-8000-000000000002"),
    "twin-2": uuid.UUID("abcd1234-9999-4000-8000-000000000003"),
    "other": uuid.UUID("0a1b2c3d-1111-4000-8000-000000000004"),
}


def _posts(make_account: MakeAccount) -> tuple[uuid.UUID, uuid.UUID]:
    """The workspaces (mine, theirs) holding IDS; "other" is theirs."""
    mine = make_account("me@example.com", workspace="mine").workspace_id
    theirs = make_account("them@example.com", workspace="theirs").workspace_id
    with session_scope() as session:
        for name, post_id in IDS.items():
            workspace = theirs if name == "other" else mine
            session.add(Post(id=post_id, workspace_id=workspace, title=name))
    return mine, theirs


def _resolve(workspace: uuid.UUID, ref: str) -> uuid.UUID:
    with session_scope() as session:
        return resolve_id(session, Post, workspace, ref, "post")


def test_a_unique_prefix_names_its_row_with_or_without_dashes(
    make_account: MakeAccount,
) -> None:
    mine, theirs = _posts(make_account)

    # "0a1b2c3d" starts "other" too, but that is another workspace's post.
    for ref in ("0a1b", "0A1B2C3D", "0a1b2c3d-00", "0a1b2c3d00", f" {IDS['alone']} "):
        assert _resolve(mine, ref) == IDS["alone"], ref
    assert _resolve(theirs, "0a1b") == IDS["other"]
    assert _resolve(mine, "abcd1234-56") == IDS["twin-1"]
    assert _resolve(mine, "abcd12349") == IDS["twin-2"]


def test_an_ambiguous_prefix_is_refused_with_the_count(make_account: MakeAccount) -> None:
    mine, _ = _posts(make_account)

    with pytest.raises(InvalidInput, match=r"'abcd' matches 2 posts; give more characters"):
        _resolve(mine, "abcd")
    with pytest.raises(InvalidInput, match=r"'abcd1234-' matches 2 posts"):
        _resolve(mine, "abcd1234-")


def test_no_match_and_another_workspaces_id_are_not_found(make_account: MakeAccount) -> None:
    mine, _ = _posts(make_account)

    for ref in ("ffff", str(IDS["other"]), "0a1b2c3d1111"):
        with pytest.raises(NotFound, match="No post with an id starting"):
            _resolve(mine, ref)


def test_what_cannot_start_an_id_is_refused(make_account: MakeAccount) -> None:
    mine, _ = _posts(make_account)

    with pytest.raises(InvalidInput, match="too short to name a post: give at least 4"):
        _resolve(mine, "0a1")
    for ref in ("post-1", "", "0a1b" * 9):
        with pytest.raises(InvalidInput, match="is not a post id nor the start of one"):
            _resolve(mine, ref)


def test_a_named_row_is_found_by_name_first_then_by_id_prefix(
    make_account: MakeAccount,
) -> None:
    account = make_account("me@example.com", workspace="mine")
    with session_scope() as session:
        principal = default_principal(session, "mine")
        found = create_source(
            session,
            principal,
            SourceCreate(kind="feed", name="beef", url="https://example.com/feed.xml"),
        )
        source_id = found.id
    with session_scope() as session:
        by_name = resolve_ref(session, Source, account.workspace_id, "beef", "source")
        by_prefix = resolve_ref(session, Source, account.workspace_id, str(source_id)[:6], "source")
        assert by_name.id == by_prefix.id == source_id
        with pytest.raises(NotFound, match="No source named 'news'"):
            resolve_ref(session, Source, account.workspace_id, "news", "source")
