"""Prebuilt statements on the driver's cursor give what SQLAlchemy's own execution gives."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BindParameter,
    Boolean,
    Column,
    Engine,
    Executable,
    Float,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    event,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from herald.core import direct
from herald.core.clock import utcnow
from herald.core.db import UTCDateTime, get_engine
from herald.publishing import statements

metadata = MetaData()
probe = Table(
    "direct_probe",
    metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("name", String(40), nullable=False),
    Column("state", String(20), nullable=False, default="new"),
    Column("flag", Boolean, nullable=False, default=False),
    Column("n", Integer, nullable=False, default=0),
    Column("ratio", Float, nullable=True),
    Column("data", JSON, nullable=True),
    Column("at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow),
)

INSERT = insert(probe)
BUMP = (
    update(probe)
    .where(
        probe.c.id == bindparam("p_id", type_=probe.c.id.type),
        probe.c.state.in_([literal("new"), literal("old")]),
    )
    .values(n=probe.c.n + 1, state="bumped", at=bindparam("p_at", type_=probe.c.at.type))
    .returning(probe.c.id, probe.c.n, probe.c.state, probe.c.at, probe.c.updated_at)
)
READ = select(
    probe.c.id,
    probe.c.name,
    probe.c.flag,
    probe.c.ratio,
    probe.c.data,
    probe.c.at,
    probe.c.created_at,
    (probe.c.n * 2).label("twice"),
).where(probe.c.name == bindparam("p_name", type_=probe.c.name.type))


@pytest.fixture
def engine(db_backend: str) -> Iterator[Engine]:
    engine = get_engine()
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)


def _both(engine: Engine, statement: Any, params: Any) -> tuple[list[Any], list[Any]]:
    """The same statement through direct and through SQLAlchemy, each in its own
    transaction that is rolled back."""
    with engine.connect() as connection, connection.begin() as tx:
        ours = direct.execute(connection, statement, params)
        tx.rollback()
    with engine.connect() as connection, connection.begin() as tx:
        result = connection.execute(statement, params)
        theirs = list(result) if result.returns_rows else []
        tx.rollback()
    return ours, theirs


def test_inserts_fill_python_defaults_and_values_round_trip(engine: Engine) -> None:
    at = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"name": "a", "ratio": 0.25, "data": {"k": [1, "x"]}, "at": at, "flag": True},
        {"name": "b", "ratio": None, "data": None, "at": None, "flag": False},
    ]
    with engine.begin() as connection:
        assert direct.execute(connection, INSERT, rows) == []
    with engine.begin() as connection:
        (a,) = direct.execute(connection, READ, {"p_name": "a"})
        (b,) = direct.execute(connection, READ, {"p_name": "b"})
        (sa_a,) = connection.execute(READ, {"p_name": "a"})
    assert tuple(a) == tuple(sa_a)
    assert isinstance(a.id, uuid.UUID)
    assert (a.flag, a.ratio, a.data, a.at, a.twice) == (True, 0.25, {"k": [1, "x"]}, at, 0)
    assert a.created_at.tzinfo is not None and abs(a.created_at - utcnow()) < timedelta(minutes=1)
    assert (b.flag, b.ratio, b.data, b.at) == (False, None, None, None)
    with engine.begin() as connection:
        direct.execute(connection, INSERT, {"name": "c"})
        (c,) = direct.execute(connection, READ, {"p_name": "c"})
    assert (c.flag, c.ratio, c.at) == (False, None, None)  # the defaults


def test_update_returning_matches_sqlalchemy_and_applies_onupdate(engine: Engine) -> None:
    old = datetime(2000, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(INSERT, {"name": "a", "updated_at": old})
        (row_id,) = connection.execute(select(probe.c.id)).scalars()
    at = utcnow()
    ours, theirs = _both(engine, BUMP, {"p_id": row_id, "p_at": at})
    assert len(ours) == len(theirs) == 1
    assert ours[0][:4] == tuple(theirs[0])[:4] == (row_id, 1, "bumped", at)
    assert ours[0].updated_at > old and theirs[0].updated_at > old  # onupdate ran in both
    # A row the WHERE does not match: no rows, as from SQLAlchemy.
    assert _both(engine, BUMP, {"p_id": uuid.uuid4(), "p_at": at}) == ([], [])


def test_a_bind_used_twice_is_converted_once(engine: Engine) -> None:
    """A keyset page compares one value twice (``at < :x OR (at = :x AND ...)``): its type's
    bind processor runs once, not once per use (a datetime turned to text and then
    handed to the processor again failed)."""
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(INSERT, [{"name": "early", "at": at}, {"name": "late", "at": at}])
    value: BindParameter[Any] = bindparam("p_at")  # typed by each use: two copies, one name
    page = (
        select(probe.c.name)
        .where(or_(probe.c.at < value, and_(probe.c.at == value, probe.c.name < "late")))
        .order_by(probe.c.name)
    )
    ours, theirs = _both(engine, page, {"p_at": at})
    assert [tuple(r) for r in ours] == [tuple(r) for r in theirs] == [("early",)]


def test_driver_errors_come_out_as_sqlalchemys(engine: Engine) -> None:
    row_id = uuid.uuid4()
    with engine.begin() as connection:
        direct.execute(connection, INSERT, {"id": row_id, "name": "a"})
    with pytest.raises(IntegrityError), engine.begin() as connection:
        direct.execute(connection, INSERT, {"id": row_id, "name": "again"})


def test_refuses_what_it_cannot_run_as_sqlalchemy_would(engine: Engine) -> None:
    expanding = select(probe.c.id).where(probe.c.name.in_(bindparam("p_names", expanding=True)))
    with engine.begin() as connection, pytest.raises(ValueError, match="expanding"):
        direct.execute(connection, expanding, {"p_names": ["a"]})
    with engine.begin() as connection, pytest.raises(ValueError, match="p_at"):
        direct.execute(connection, BUMP, {"p_id": uuid.uuid4()})
    uneven: list[dict[str, Any]] = [{"name": "a"}, {"name": "b", "flag": True}]
    with engine.begin() as connection, pytest.raises(ValueError, match="same columns"):
        direct.execute(connection, INSERT, uneven)
    with engine.connect() as connection, pytest.raises(RuntimeError, match="transaction"):
        direct.execute(connection, READ, {"p_name": "a"})


def test_a_statement_listener_sees_every_statement(engine: Engine) -> None:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.begin() as connection:
            direct.execute(connection, INSERT, {"name": "a"})
            (row,) = direct.execute(connection, READ, {"p_name": "a"})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert row.name == "a"
    assert [s.split()[0] for s in seen if not s.startswith("BEGIN")] == ["INSERT", "SELECT"]


# --- what direct relies on in SQLAlchemy's compiler, pinned on the hot path's statements ---

_NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
HOT_PATH: dict[str, tuple[Callable[[], Executable], dict[str, Any]]] = {
    "claim": (statements.claim, {"p_id": _ID, "p_updated_at": _NOW, "p_lease_until": _NOW}),
    "settle": (
        lambda: statements.settle(("error_kind", "last_error")),
        {"p_id": _ID, "p_attempt": 1, "p_state": "failed", "p_updated_at": _NOW,
         "p_error_kind": "permanent", "p_last_error": "no"},
    ),
    "renew_lease": (statements.renew_lease, {"p_id": _ID, "p_attempt": 1, "p_lease_until": _NOW}),
    "sync_job": (
        lambda: statements.sync_job(True, True),
        {"p_id": "t", "p_state": "success", "p_updated_at": _NOW, "p_started_at": _NOW,
         "p_finished_at": _NOW},
    ),
    "start_attempt": (
        statements.start_attempt,
        {"id": _ID, "publication_id": _ID, "number": 1, "started_at": _NOW, "outcome": "started"},
    ),
    "finish_attempt": (
        statements.finish_attempt,
        {"p_publication_id": _ID, "p_number": 1, "p_finished_at": _NOW, "p_outcome": "failed",
         "p_error": "no", "p_retry_at": None, "p_external_id": None, "p_external_url": None},
    ),
    "post_state": (statements.post_state, {"p_post_id": _ID}),
    "delivery_content": (statements.delivery_content, {"p_post_id": _ID, "p_channel_id": _ID}),
    "tags": (statements.tags, {"p_post_id": _ID}),
    "insert_jobs": (
        statements.insert_jobs,
        {"id": "t", "workspace_id": _ID, "owner_id": None, "kind": "publish", "params": {},
         "state": "pending", "created_at": _NOW, "updated_at": _NOW},
    ),
    "post_in_workspace": (statements.post_in_workspace, {"p_id": _ID, "p_workspace_id": _ID}),
    "has_live_publications": (statements.has_live_publications, {"p_post_id": _ID}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOT_PATH))
def test_the_driver_gets_exactly_what_sqlalchemy_sends(engine: Engine, name: str) -> None:
    """direct reads SQLAlchemy's compiler (bind_names, positiontup, insert_prefetch,
    update_prefetch, the bind and result processors) to skip its execution machinery: if
    a SQLAlchemy release changes any of it, the SQL or the values direct hands the driver
    differ from what SQLAlchemy itself sends, and this fails."""
    build, params = HOT_PATH[name]
    statement = build()
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        sent.append((sql, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with contextlib.suppress(IntegrityError), engine.begin() as connection:
            connection.execute(statement, params)  # rows it refers to need not exist
    finally:
        event.remove(engine, "before_cursor_execute", record)
    [(sql, theirs)] = [(s, p) for s, p in sent if not s.startswith("BEGIN")]

    columns = tuple(sorted(params)) if isinstance(statement, Insert) else None
    plan = direct._plan(statement, engine.dialect, columns)
    ours = direct._driver_params(plan, params)
    assert plan.sql == sql
    if plan.positional is not None:  # SQLite: values in the order of the SQL's "?"
        assert isinstance(theirs, tuple)
        ours, theirs = (
            dict(zip(plan.positional, ours, strict=True)),
            dict(zip(plan.positional, theirs, strict=True)),
        )
    assert ours.keys() == theirs.keys()
    computed = {bind for bind, default in plan.defaults if default.is_callable}  # e.g. utcnow()
    assert _comparable(ours, computed) == _comparable(theirs, computed)


def _comparable(values: dict[str, Any], computed: set[str]) -> dict[str, Any]:
    # psycopg's Json wrapper has no equality of its own: compare what it wraps.
    return {k: (type(v), getattr(v, "obj", v)) for k, v in values.items() if k not in computed}
