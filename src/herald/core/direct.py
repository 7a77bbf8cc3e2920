"""Prebuilt Core statements run straight on the driver's cursor, for the delivery hot path.

Why it stays: SQLAlchemy's public ``connection.execute`` costs 12-18 % more CPU per
delivery on SQLite (``python -m bench.machinery_cost``, 3 runs: "public SQL" 1.12-1.18,
"baseline again" 0.96-1.04), 530-550 µs: 2.35x per statement (``python -m
bench.statement_cost``; on PostgreSQL 1.45x, 737 µs). What it reads of SQLAlchemy's
compiler is pinned by
``tests/core/test_direct.py::test_the_driver_gets_exactly_what_sqlalchemy_sends``.

SQLAlchemy still does the SQL: each statement is compiled once per dialect (and, for an
INSERT, per set of columns given), and values go in and out through the column types'
own bind and result processors (UUIDs, aware datetimes, JSON, booleans). What is skipped
is the per-call execution machinery: the execution context, cache-key lookup, event
dispatch and Result objects. On SQLite that machinery costs several times the statement
itself (about 50 µs against 10), and every delivery runs about a dozen statements.

Rules:

- Run inside a transaction SQLAlchemy began (``session.connection()``, ``engine.begin()``):
  BEGIN, COMMIT, SQLite's writer lock and PostgreSQL's pool stay SQLAlchemy's.
- Statements must be built once and kept (``functools.cache``), since plans are cached by
  the statement object.
- Every bind parameter must have one value: an expanding ``IN`` list is refused (build
  IN lists of constants from ``literal()`` values instead), and so is a call that leaves a
  parameter out. Columns a statement does not set get their Python-side ``default``
  (INSERT) or ``onupdate`` (UPDATE), as SQLAlchemy gives them.
- When anything listens for statements (``echo``, a ``before_cursor_execute`` hook such
  as a tracer), SQLAlchemy runs them as usual, so what is watched sees every statement.
- Driver errors come out as SQLAlchemy's (``IntegrityError``...), as from ``execute``;
  a dropped connection is invalidated as SQLAlchemy would.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import BindParameter, ColumnDefault, Connection, Executable, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import ReturnsRows

Processor = Callable[[Any], Any]
Params = Mapping[str, Any]
# collections.namedtuple called through a name: mypy only accepts literal field names in
# a direct call, and a plan's row type is made from the statement's columns.
_row_type: Callable[..., type[tuple[Any, ...]]] = collections.namedtuple


class FetchedRow(Protocol):
    """A returned row: a named tuple of the statement's columns (``row.attempt``,
    ``row[0]``, ``(a, b) = row``), as SQLAlchemy's ``Row`` reads."""

    def __getattr__(self, name: str) -> Any: ...
    def __getitem__(self, index: int | slice) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


@dataclass(frozen=True)
class _Plan:
    sql: str
    positional: tuple[str, ...] | None  # bind names in order, for positional paramstyles
    constants: dict[str, Any]  # the binds whose value is in the statement (literals)
    keys: dict[str, str]  # parameter name -> bind name, where they differ
    required: frozenset[str]  # binds a call must give a value for
    defaults: tuple[tuple[str, ColumnDefault], ...]  # Python-side default or onupdate per bind
    bind: tuple[tuple[str, Processor], ...]  # (bind name, its type's processor)
    row: type[tuple[Any, ...]] | None  # a named tuple type when the statement returns rows
    types: tuple[Any, ...]  # the returned columns' types, in order
    # Their processors, made from the first cursor's description (a driver's column type
    # codes decide some of them, as in SQLAlchemy): filled in once, then reused.
    result: list[tuple[Processor | None, ...]] = field(default_factory=list)


_plans: dict[tuple[int, str, tuple[str, ...] | None], tuple[Executable, _Plan]] = {}
_plans_guard = threading.Lock()


def _plan(statement: Executable, dialect: Dialect, columns: tuple[str, ...] | None) -> _Plan:
    key = (id(statement), dialect.name, columns)
    found = _plans.get(key)
    if found is not None and found[0] is statement:
        return found[1]
    plan = _compile(statement, dialect, columns)
    with _plans_guard:
        # Holding the statement keeps its id from being reused by another object.
        _plans[key] = (statement, plan)
    return plan


def _compile(statement: Executable, dialect: Dialect, columns: tuple[str, ...] | None) -> _Plan:
    assert isinstance(statement, ClauseElement), statement
    compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params:
        refused = [b.key for b in (*compiled.literal_execute_params, *compiled.post_compile_params)]
        raise ValueError(f"expanding or literal-execute parameters are not supported: {refused}")
    # Each BindParameter and its name in the SQL.
    names: dict[BindParameter[Any], str] = dict(compiled.bind_names)
    if callables := [name for parameter, name in names.items() if parameter.callable]:
        raise ValueError(f"bind parameters with callable values are not supported: {callables}")
    constants = {
        name: parameter.value
        for parameter, name in names.items()
        if parameter.value is not None and not parameter.required
    }
    # Columns the statement does not set but whose Python-side default (INSERT) or
    # onupdate (UPDATE) SQLAlchemy computes before each execution: computed here too.
    defaults: list[tuple[str, ColumnDefault]] = []
    for name, default in (
        *((column.key, column.default) for column in compiled.insert_prefetch),
        *((column.key, column.onupdate) for column in compiled.update_prefetch),
    ):
        if not isinstance(default, ColumnDefault) or not (default.is_scalar or default.is_callable):
            raise ValueError(f"unsupported default for {name}: {default!r}")
        defaults.append((name, default))
    # One processor per name: a bind used twice (``a < :x OR a = :x``) is one value.
    processors = {
        name: processor
        for parameter, name in names.items()
        if (processor := parameter.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    }
    bind = tuple(processors.items())
    # Parameters are passed by key; the SQL may name a bind differently (escaping).
    keys = {
        parameter.key: name
        for parameter, name in names.items()
        if parameter.key != name and not parameter.key.startswith("%(")
    }
    required = frozenset(name for parameter, name in names.items() if parameter.required)
    required -= {name for name, _ in defaults}
    row: type[tuple[Any, ...]] | None = None
    types: tuple[Any, ...] = ()
    if (compiled.returning or statement.is_select) and isinstance(statement, ReturnsRows):
        exported = list(statement.exported_columns)
        row = _row_type("Row", [c.key for c in exported], rename=True)
        types = tuple(c.type.dialect_impl(dialect) for c in exported)
    positional = tuple(compiled.positiontup or ()) if compiled.positional else None
    return _Plan(
        compiled.string, positional, constants, keys, required, tuple(defaults), bind, row, types
    )


def _result_processors(plan: _Plan, dialect: Dialect, description: Any) -> tuple[Any, ...]:
    if not plan.result:
        plan.result.append(
            tuple(
                kind.result_processor(dialect, column[1])
                for kind, column in zip(plan.types, description, strict=True)
            )
        )
    return plan.result[0]


def _driver_params(plan: _Plan, params: Params) -> Any:
    values = dict(plan.constants)
    keys = plan.keys
    for name, value in params.items():
        values[keys.get(name, name)] = value
    if missing := plan.required - values.keys():
        raise ValueError(f"a value is required for bind parameter(s) {sorted(missing)}")
    for name, default in plan.defaults:
        if name not in values:
            values[name] = default.arg if default.is_scalar else default.arg(None)
    for name, processor in plan.bind:
        values[name] = processor(values.get(name))
    if plan.positional is not None:
        return tuple(values[name] for name in plan.positional)
    return values


def _watched(connection: Connection) -> bool:
    dispatch = connection.dispatch
    return bool(
        connection.engine.echo
        or dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or dispatch.before_execute
        or dispatch.after_execute
    )


def _rows_given(params: Params | Sequence[Params] | None) -> Sequence[Params]:
    """The parameters as a list of rows: one mapping (or none) is one row."""
    return [params or {}] if params is None or isinstance(params, Mapping) else params


def _insert_columns(statement: Executable, rows_in: Sequence[Params]) -> tuple[str, ...] | None:
    """The columns an INSERT sets (its plan depends on them); None for other statements."""
    if not isinstance(statement, Insert):
        return None
    columns = tuple(sorted(rows_in[0]))
    if any(tuple(sorted(p)) != columns for p in rows_in[1:]):
        raise ValueError("every row of a many-row INSERT must give the same columns")
    return columns


def _run_on_cursor(
    connection: Connection, plan: _Plan, driver: list[Any], many: bool
) -> tuple[Sequence[Any], Any]:
    """Run the plan's SQL on a driver cursor: its raw rows and description. A driver error
    comes out as SQLAlchemy's, the connection invalidated if it was lost."""
    dialect = connection.dialect
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if len(driver) == 1:
            cursor.execute(plan.sql, driver[0])
        else:
            cursor.executemany(plan.sql, driver)
        fetched = cursor.fetchall() if plan.row is not None else []
        return fetched, cursor.description
    except dialect.loaded_dbapi.Error as exc:
        gone = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if gone:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            plan.sql,
            driver if many else driver[0],
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=gone,
            dialect=dialect,
        ) from exc
    finally:
        cursor.close()


def _typed_rows(
    plan: _Plan, dialect: Dialect, fetched: Sequence[Any], description: Any
) -> list[FetchedRow]:
    """The driver's rows as named tuples, each value through its column type's processor."""
    if plan.row is None:
        return []
    make, processors = plan.row, _result_processors(plan, dialect, description)
    if not any(processors):
        rows = [make(*raw) for raw in fetched]
    else:
        rows = [
            make(*(v if p is None else p(v) for p, v in zip(processors, raw, strict=True)))
            for raw in fetched
        ]
    # Named tuples read as FetchedRow says; mypy cannot see their fields.
    return cast(list[FetchedRow], rows)


def execute(
    connection: Connection,
    statement: Executable,
    params: Params | Sequence[Params] | None = None,
) -> list[FetchedRow]:
    """Run ``statement`` with ``params`` (one mapping, or a list for many rows) on the
    driver's cursor in ``connection``'s transaction; return its rows as named tuples
    (empty when it returns none)."""
    if not connection.in_transaction():
        raise RuntimeError("herald.core.direct runs inside a transaction SQLAlchemy began")
    if _watched(connection):
        # Someone listens for statements (echo, tracing, a test): SQLAlchemy runs it.
        result = connection.execute(statement, params)
        return list(result) if result.returns_rows else []
    rows_in = _rows_given(params)
    if not rows_in:
        return []
    dialect = connection.dialect
    plan = _plan(statement, dialect, _insert_columns(statement, rows_in))
    driver = [_driver_params(plan, p) for p in rows_in]
    many = params is not None and not isinstance(params, Mapping)
    fetched, description = _run_on_cursor(connection, plan, driver, many)
    return _typed_rows(plan, dialect, fetched, description)
