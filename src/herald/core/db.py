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
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    cast,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from herald.core.clock import utcnow
from herald.core.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from herald.core.exceptions import HeraldFault
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
    # WAL lets readers run beside the one writer. Writers queue on the lock file first
    # (WriterLockedConnection), so SQLite's own busy wait only matters for writers that
    # are not Herald's; it waits as long as Herald's writers do.
    wait_ms = int(get_settings().database_write_wait_seconds * 1000)
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={wait_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class DatabaseBusy(ServiceUnavailable):
    """Another writer held the database longer than the write wait: try again shortly."""

    slug = "database-busy"


class NestedWriteTransaction(HeraldFault, RuntimeError):
    """A write transaction was opened on a thread that already has one open: a bug.

    SQLite has one writer, so the inner one would wait for the outer one, which waits for
    it; on PostgreSQL the two would not see each other's changes. Do the work in the
    transaction that is open, or after it commits."""


# Polling steps while another process holds the writer lock, in seconds, capped at 1 ms.
# Only one thread per process polls (the in-process turn), so a wait costs at most ~1,000
# non-blocking flock calls a second. A longer cap starved the API beside a busy worker:
# the worker's threads hand the file to one another with gaps of a fraction of a
# millisecond to a few (one thread's release, the next one's wake-up and GIL), and a
# poller sleeping 8-16 ms between looks kept missing them. `bench.api_latency --rates 100
# --endpoints publish`, SQLite, interleaved: the API's lock wait p99 190-241 ms with a
# 16 ms cap, 4-35 ms with 1 ms; publish p99 212-306 ms against 10-49 ms.
_LOCK_POLL = (0.0002, 0.0005, 0.001)


def writer_lock_path(database: str | None) -> Path | None:
    """The writer lock file of an SQLite database file; None for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}-writer.lock")


# One in-process lock per lock file, in front of it (see acquire_writer_lock). A child
# forked while another thread held one starts with fresh ones: the holder is not there.
_process_writer_locks: dict[str, threading.Lock] = {}
_process_writer_locks_guard = threading.Lock()


def _process_writer_lock(path: str) -> threading.Lock:
    lock = _process_writer_locks.get(path)
    if lock is None:
        with _process_writer_locks_guard:
            lock = _process_writer_locks.setdefault(path, threading.Lock())
    return lock


def _forget_process_writer_locks() -> None:
    global _process_writer_locks_guard  # noqa: PLW0603 - replaced in a fork's child only
    _process_writer_locks.clear()
    _process_writer_locks_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_process_writer_locks)


def _busy(wait: float) -> DatabaseBusy:
    return DatabaseBusy(
        f"The database is busy: another writer held it for more than {wait:g} s. "
        "Try again in a moment.",
        headers={"Retry-After": "1"},
    )


class WriterLockedConnection(sqlite3.Connection):
    """A pysqlite connection that queues its write transactions on a lock file.

    Why it stays: correctness, not speed. SQLite has one writer; the lock file bounds a
    writer's wait (then :class:`DatabaseBusy`, a 503 with ``Retry-After``) and makes its
    holder visible for the health check (issue 16, items 1 and 7). Uncontended its cost
    per delivery is within the noise (``python -m bench.machinery_cost``, 3 runs: "no
    writer lock file" 0.91-0.98, "baseline again" 0.96-1.04). ``tests/core/test_db.py`` fails
    without it (a second writer is seen queued on the file while SQLite's own wait is 0).

    SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps
    1, 2, 5, 10, 15, 20, 25… ms between tries, so under contention a writer sleeps far
    longer than the transaction it waits for. Taking an exclusive ``flock`` on
    ``<database>-writer.lock`` before ``BEGIN IMMEDIATE`` makes the writers of every Herald
    process (API, worker children, scheduler) take turns on one lock whose holder is
    visible (``/proc/locks``), for at most the write wait. The lock goes with the
    transaction (commit or rollback) and with the process: a killed process releases it.
    Readers (WAL) never take it.
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = os.fspath(database) if isinstance(database, str | bytes | os.PathLike) else ""
        name = name.decode() if isinstance(name, bytes) else name
        path = writer_lock_path(name)
        self.lock_path = None if path is None else str(path)
        self._lock_fd: int | None = None
        self._holding = False
        self._in_process: threading.Lock | None = None
        self.query_only = False

    def acquire_writer_lock(self, wait: float) -> None:
        """Take the lock file, waiting at most ``wait`` seconds, else raise DatabaseBusy.

        The threads of one process first take turns on an in-process lock (a blocking
        wait, woken at once on release), so that only one of them polls the file: a
        worker's 32 publishing threads polling it beside one API request would win it
        32 times out of 33, and poll the CPU away while they wait."""
        if self.lock_path is None or self._holding:
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        in_process = _process_writer_lock(self.lock_path)
        if not in_process.acquire(timeout=max(wait, 0)):
            raise _busy(wait)
        try:
            step = 0
            while True:
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _busy(wait) from None
                    time.sleep(min(_LOCK_POLL[min(step, len(_LOCK_POLL) - 1)], left))
                    step += 1
        except BaseException:
            in_process.release()
            raise
        self._holding = True
        self._in_process = in_process

    def release_writer_lock(self) -> None:
        if not self._holding or self._lock_fd is None:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            self._holding = False
            # The very lock taken (in a fork's child, the copy of its parent's; released
            # as harmlessly as the file lock the child never held).
            if self._in_process is not None:
                self._in_process.release()
                self._in_process = None

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
WRITE_WAIT = "herald_write_wait"

# The connections a unit of work (a request, a task, a command) has in a transaction, so
# that code about to wait on the network (the guarded HTTP client) can refuse to while
# one is open (transaction_open), and a second write transaction is refused
# (NestedWriteTransaction). Outside a request a unit of work is a thread; a request's
# sync code hops between threadpool threads (a thread may even serve two requests in
# turn), so each request gets its own list in a context variable (unit_of_work).
_open = threading.local()
_unit: ContextVar[list[Connection] | None] = ContextVar("herald_transactions", default=None)


def _tracked() -> list[Connection]:
    tracked = _unit.get()
    if tracked is None:
        tracked = _open.__dict__.setdefault("connections", [])
    # A connection invalidated or closed mid-transaction fires no commit/rollback event.
    tracked[:] = [c for c in tracked if not c.closed and c.in_transaction()]
    return tracked


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Track the transactions of the code inside (a request, across the threads it runs
    its sync parts on) apart from everything else on its threads."""
    token = _unit.set([])
    try:
        yield
    finally:
        _unit.reset(token)


def transaction_open() -> bool:
    """Whether this thread has a database transaction open (read or write), on any engine.

    The guarded HTTP client refuses to send while one is: a transaction must never wait
    on the network (DESIGN §2)."""
    return bool(_tracked())


def _on_begin(conn: Connection) -> None:
    """Every transaction starts here: refuse a nested writer, then track it (and on SQLite
    start it: readers with a plain BEGIN, writers on the lock file with BEGIN IMMEDIATE)."""
    read_only = bool(conn.get_execution_options().get(READ_ONLY))
    tracked = _tracked()
    if not read_only and any(not c.get_execution_options().get(READ_ONLY) for c in tracked):
        raise NestedWriteTransaction(
            "a write transaction was opened while this thread already has one open"
        )
    if conn.dialect.name == "sqlite":
        _sqlite_begin(conn, read_only)
    tracked.append(conn)


def _on_end(conn: Connection) -> None:
    tracked = _tracked()
    if conn in tracked:
        tracked.remove(conn)


def _sqlite_begin(conn: Connection, read_only: bool) -> None:
    # BEGIN goes to the driver's connection, as SQLAlchemy's own do_begin would: through
    # exec_driver_sql it would cost an execution context of its own, a third of an
    # empty transaction. Errors come out as SQLAlchemy's (OperationalError...).
    dbapi_connection = conn.connection.dbapi_connection
    locked = dbapi_connection if isinstance(dbapi_connection, WriterLockedConnection) else None
    if locked is not None and locked.query_only != read_only:
        # A reader cannot write by mistake: SQLite refuses ("readonly database").
        _begin(locked, f"PRAGMA query_only={int(read_only)}")
        locked.query_only = read_only
    if read_only:
        # A reader (see read_scope): WAL gives it a snapshot without any lock.
        _begin(dbapi_connection, "BEGIN")
        return
    # Take the write lock when the transaction starts: a deferred transaction that
    # reads and then writes can fail with SQLITE_BUSY without waiting on the timeout.
    if locked is not None:
        wait = conn.get_execution_options().get(WRITE_WAIT)
        locked.acquire_writer_lock(
            get_settings().database_write_wait_seconds if wait is None else wait
        )
    try:
        _begin(dbapi_connection, "BEGIN IMMEDIATE")
    except BaseException:
        if locked is not None:
            locked.release_writer_lock()
        raise


def _begin(dbapi_connection: Any, statement: str) -> None:
    try:
        dbapi_connection.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def _track_transactions(engine: Engine) -> None:
    event.listen(engine, "begin", _on_begin)
    event.listen(engine, "commit", _on_end)
    event.listen(engine, "rollback", _on_end)


def _pool_options(url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The pool's size from the settings (HERALD_DATABASE_POOL_SIZE connections kept, as
    many again twice over opened when needed: SQLAlchemy's 5 + 10 by default), unless
    the caller chose its own pool."""
    if "poolclass" in kwargs or _in_memory(url):
        return kwargs  # an in-memory SQLite database has a pool of its own kind
    settings = get_settings()
    return {
        "pool_size": settings.database_pool_size,
        "max_overflow": 2 * settings.database_pool_size,
        "pool_timeout": settings.database_pool_timeout_seconds,
        **kwargs,
    }


def _in_memory(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and (
        parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    )


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": get_settings().database_write_wait_seconds,
                "factory": WriterLockedConnection,
            },
            **_pool_options(url, kwargs),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy, not pysqlite, emit BEGIN (pysqlite's implicit BEGIN is deferred).
        event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        _track_transactions(engine)
        return engine
    engine = create_engine(url, **_pool_options(url, kwargs))
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
def session_scope(*, write_wait: float | None = None) -> Iterator[Session]:
    """One write transaction: commit on success, roll back on any error.

    ``write_wait`` overrides how long to wait for SQLite's writer lock (0: take it now or
    raise DatabaseBusy), for best-effort writes that must not hold anything up."""
    make = get_sessionmaker()
    if write_wait is None:
        session = make()
    else:
        session = make(bind=get_engine().execution_options(**{WRITE_WAIT: write_wait}))
    try:
        yield session
        try:
            session.commit()
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailable(
                    "The connection to the database was lost while saving: the change may or "
                    "may not have been saved. Check before trying again."
                ) from exc
            raise
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
    lock, so it runs beside writers (WAL), and writing in it fails ("readonly database").
    It is rolled back at the end. ``session.info[READ_ONLY]`` tells code that it reads."""
    session = get_sessionmaker()(bind=_read_only_engine(), info={READ_ONLY: True})
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


def flush_unique(session: Session, kind: str, name: str) -> None:
    """Flush; a workspace's second ``kind`` named ``name`` (a unique constraint refusing
    the flush) is a 409. The savepoint keeps the rest of the transaction usable."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        article = "An" if kind[:1].lower() in "aeiou" else "A"
        raise Conflict(
            f"{article} {kind} named {name!r} already exists in this workspace."
        ) from None


_Named = TypeVar("_Named", bound="IdMixin")


def own_row(
    session: Session, model: type[_Named], workspace_id: uuid.UUID, row_id: uuid.UUID, kind: str
) -> _Named:
    """A workspace's row by its id; another workspace's is not found, exactly as a missing
    one is (404)."""
    row = session.get(model, row_id)
    if row is None or getattr(row, "workspace_id", None) != workspace_id:
        raise NotFound(f"No {kind} {row_id}.")
    return row


def own_rows(session: Session, model: type[_Named], workspace_id: uuid.UUID) -> list[_Named]:
    """A workspace's named rows, by name."""
    columns: Any = model  # a named row of a workspace: it has workspace_id and name
    query = select(model).where(columns.workspace_id == workspace_id).order_by(columns.name)
    return list(session.scalars(query))


# Git's rule: ids are shown whole, and any unique prefix of at least this many of their hex
# digits names the row (dashes optional, as typed from `herald post list`).
MIN_ID_PREFIX = 4
_HEX_DIGITS = frozenset("0123456789abcdef")
# Past this many candidates the count in the message is "at least".
_PREFIX_CANDIDATES = 50


def _id_prefix(ref: str, kind: str) -> str:
    """The hex digits of an id prefix; InvalidInput for what cannot start an id."""
    digits = ref.strip().lower().replace("-", "")
    if not digits or not set(digits) <= _HEX_DIGITS or len(digits) > 32:
        raise InvalidInput(f"{ref!r} is not a {kind} id nor the start of one.")
    if len(digits) < MIN_ID_PREFIX:
        raise InvalidInput(
            f"{ref!r} is too short to name a {kind}: give at least {MIN_ID_PREFIX} "
            "characters of its id."
        )
    return digits


def could_start_an_id(ref: str) -> bool:
    """Whether ``ref`` is made of what an id is written with (hex digits and dashes): a
    name that is not one is reported as a missing name, not as a bad id."""
    return bool(ref.strip()) and set(ref.strip().lower()) <= _HEX_DIGITS | {"-"}


def ids_starting(
    session: Session, model: type[_Named], workspace_id: uuid.UUID, digits: str
) -> list[uuid.UUID]:
    """The workspace's ids that start with the hex ``digits``, at most 50 + 1, in SQL.

    The id's text is what the database stores: PostgreSQL's native uuid reads as the
    dashed form, elsewhere SQLAlchemy stores 32 hex digits; the pattern follows."""
    columns: Any = model
    if session.get_bind().dialect.supports_native_uuid:
        cuts = [8, 12, 16, 20]
        pattern = "-".join(digits[a:b] for a, b in zip([0, *cuts], [*cuts, 32], strict=True))
        pattern = pattern.rstrip("-")
    else:
        pattern = digits
    query = (
        select(columns.id)
        .where(columns.workspace_id == workspace_id)
        .where(cast(columns.id, String).like(pattern + "%"))
        .limit(_PREFIX_CANDIDATES + 1)
    )
    return list(session.scalars(query))


def resolve_id(
    session: Session, model: type[_Named], workspace_id: uuid.UUID, ref: str, kind: str
) -> uuid.UUID:
    """A workspace's row id from a whole id or a unique prefix of one (at least
    ``MIN_ID_PREFIX`` hex digits): what the CLI accepts wherever it takes an id. Another
    workspace's rows are never candidates (404, as a missing row); a prefix several rows
    share is refused (422) with their count."""
    columns: Any = model
    try:
        whole = uuid.UUID(ref.strip())
    except ValueError:
        matches = ids_starting(session, model, workspace_id, _id_prefix(ref, kind))
    else:
        mine = select(columns.id).where(columns.workspace_id == workspace_id, columns.id == whole)
        matches = list(session.scalars(mine))
    if len(matches) == 1:
        return matches[0]
    if matches:
        count = len(matches) if len(matches) <= _PREFIX_CANDIDATES else f"over {_PREFIX_CANDIDATES}"
        raise InvalidInput(f"{ref!r} matches {count} {kind}s; give more characters of the id.")
    raise NotFound(f"No {kind} with an id starting {ref.strip()!r}.")


def resolve_ref(
    session: Session, model: type[_Named], workspace_id: uuid.UUID, ref: str, kind: str
) -> _Named:
    """A workspace's row by its name, its id, or a unique prefix of its id (how the CLI
    names sources, agents, providers...). Another workspace's row is not found."""
    ref = ref.strip()
    columns: Any = model  # a named row of a workspace: it has workspace_id and name
    mine = select(model).where(columns.workspace_id == workspace_id)
    row = session.scalars(mine.where(columns.name == ref)).first()
    if row is not None:
        return row
    if not could_start_an_id(ref):
        raise NotFound(f"No {kind} named {ref!r}.")
    row_id = resolve_id(session, model, workspace_id, ref, kind)
    return own_row(session, model, workspace_id, row_id, kind)
