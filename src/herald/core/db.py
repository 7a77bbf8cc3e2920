"""Database engine, sessions and the declarative base.

One unit of work, one transaction: services ``flush``; the edge (a request, a task, a
CLI command) commits through :func:`session_scope` or the ``get_session`` dependency.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from herald.core.clock import utcnow
from herald.core.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use herald.core.clock.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; the busy timeout makes a second
    # writer wait instead of failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# Which threads hold the writer lock (through any connection), to let a nested write
# transaction in the same thread fall back to SQLite's own busy wait instead of waiting
# for itself.
_writer_threads: set[int] = set()
_writer_threads_guard = threading.Lock()


class WriterLockedConnection(sqlite3.Connection):
    """A pysqlite connection that queues its write transactions on a lock file.

    SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps
    1, 2, 5, 10, 15, 20, 25… ms between tries, so under contention a writer sleeps far
    longer than the transaction it waits for. Taking an exclusive ``flock`` on
    ``<database>-writer.lock`` before ``BEGIN IMMEDIATE`` makes writers of every Herald
    process (API, worker children, scheduler) wait in the kernel and start the moment the
    previous one commits. The lock goes with the transaction (commit or rollback) and with
    the process: a killed process releases it. Readers (WAL) never take it.
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = os.fspath(database) if isinstance(database, str | bytes | os.PathLike) else ""
        name = name.decode() if isinstance(name, bytes) else name
        in_memory = name in ("", ":memory:") or name.startswith("file:")
        self._lock_path = None if in_memory else f"{name}-writer.lock"
        self._lock_fd: int | None = None
        self._holding = False

    def acquire_writer_lock(self) -> None:
        if self._lock_path is None or self._holding:
            return
        me = threading.get_ident()
        with _writer_threads_guard:
            if me in _writer_threads:
                return  # nested in this thread: SQLite's busy timeout decides, as before
            _writer_threads.add(me)
        try:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except BaseException:
            with _writer_threads_guard:
                _writer_threads.discard(me)
            raise
        self._holding = True

    def release_writer_lock(self) -> None:
        if not self._holding or self._lock_fd is None:
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._holding = False
        with _writer_threads_guard:
            _writer_threads.discard(threading.get_ident())

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer_lock()

    def close(self) -> None:
        try:
            self.release_writer_lock()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        finally:
            super().close()


READ_ONLY = "herald_read_only"

# The connections each thread has in a transaction, so that code about to wait on the
# network (the guarded HTTP client) can refuse to while one is open; see transaction_open.
_open = threading.local()


def _opened(conn: Connection) -> None:
    tracked: list[Connection] = _open.__dict__.setdefault("connections", [])
    tracked.append(conn)


def _closed(conn: Connection) -> None:
    tracked: list[Connection] = _open.__dict__.get("connections", [])
    if conn in tracked:
        tracked.remove(conn)


def transaction_open() -> bool:
    """Whether this thread has a database transaction open (read or write), on any engine.

    The guarded HTTP client refuses to send while one is: a transaction must never wait
    on the network (DESIGN §2)."""
    tracked: list[Connection] = _open.__dict__.get("connections", [])
    tracked[:] = [c for c in tracked if not c.closed and c.in_transaction()]
    return bool(tracked)


def _track_transactions(engine: Engine) -> None:
    event.listen(engine, "begin", _opened)
    event.listen(engine, "commit", _closed)
    event.listen(engine, "rollback", _closed)


def _sqlite_begin_immediate(conn: Any) -> None:
    # BEGIN goes to the driver's connection, as SQLAlchemy's own do_begin would: through
    # exec_driver_sql it would cost an execution context of its own, a third of an
    # empty transaction. Errors come out as SQLAlchemy's (OperationalError...).
    dbapi_connection = conn.connection.dbapi_connection
    if conn.get_execution_options().get(READ_ONLY):
        # A reader (see read_scope): WAL gives it a snapshot without any lock.
        _begin(dbapi_connection, "BEGIN")
        return
    # Take the write lock when the transaction starts: a deferred transaction that
    # reads and then writes can fail with SQLITE_BUSY without waiting on the timeout.
    locked = isinstance(dbapi_connection, WriterLockedConnection)
    if locked:
        dbapi_connection.acquire_writer_lock()
    try:
        _begin(dbapi_connection, "BEGIN IMMEDIATE")
    except BaseException:
        if locked:
            dbapi_connection.release_writer_lock()
        raise


def _begin(dbapi_connection: Any, statement: str) -> None:
    try:
        dbapi_connection.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": 30,
                "factory": WriterLockedConnection,
            },
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy, not pysqlite, emit BEGIN (pysqlite's implicit BEGIN is deferred).
        event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin_immediate)
        _track_transactions(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    _track_transactions(engine)
    return engine


# A pooled connection unused for longer than this is tested before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0
_IDLE_SINCE = "herald_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling that costs nothing on a busy pool.

    SQLAlchemy's ``pool_pre_ping`` tests every connection at every checkout: a round trip
    to the server before each transaction, which on a worker is one per delivery's claim
    and one per record. A connection that went back to the pool moments ago was working
    then; only one that sat idle (where a server restart, a failover or an idle timeout
    would show) is tested, with the dialect's own ping. A dead one raises
    ``DisconnectionError``, which makes the pool connect afresh. A connection that dies
    while in use fails that one transaction, as with ``pool_pre_ping``, and SQLAlchemy
    then invalidates the pool.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or back from use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection did not answer a ping: {exc}") from exc


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().effective_database_url)


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@lru_cache(maxsize=1)
def _read_only_engine() -> Engine:
    return get_engine().execution_options(**{READ_ONLY: True})


@contextmanager
def read_scope() -> Iterator[Session]:
    """A transaction that only reads: on SQLite it neither takes nor waits for the write
    lock, so it can run beside writers (WAL). Writing in it is a bug; it is rolled back."""
    session = get_sessionmaker()(bind=_read_only_engine())
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def reset_engine(*, close: bool = True) -> None:
    """Forget the cached engine (after settings change, in tests and after fork).

    After a fork pass ``close=False``: the pooled connections belong to the parent, and
    closing them from the child would break the parent's sockets.
    """
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=close)
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
    _read_only_engine.cache_clear()
