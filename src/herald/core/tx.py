"""Transactions, and work run after one commits (never on rollback).

Messages to the broker are sent this way: a worker must never receive an id whose row
it cannot see yet, and a rolled-back request must send nothing.

A transaction is a :class:`~sqlalchemy.orm.Session` (``session_scope``), or, on a hot
path that needs none of the ORM, a :class:`CoreTx` (:func:`core_scope`): a plain Core
connection in a transaction, with the same ``connection()``, ``execute()`` and
after-commit work. Code written against :class:`Tx` runs in either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Connection, Executable, Result, event
from sqlalchemy.orm import Session, SessionTransaction

from herald.core.db import get_engine

log = logging.getLogger(__name__)
_KEY = "herald_after_commit"


class Tx(Protocol):
    """What hot-path code uses of a transaction: a Session or a :class:`CoreTx`."""

    @property
    def info(self) -> dict[Any, Any]: ...

    def connection(self) -> Connection: ...

    def execute(self, statement: Executable, params: Any = None, /) -> Result[Any]: ...


class CoreTx:
    """A transaction on a plain Core connection (see :func:`core_scope`)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.info: dict[Any, Any] = {}

    def connection(self) -> Connection:
        return self._connection

    def execute(self, statement: Executable, params: Any = None, /) -> Result[Any]:
        return self._connection.execute(statement, params)


@contextmanager
def core_scope() -> Iterator[CoreTx]:
    """One write transaction without a Session: commit on success, roll back on any
    error; after-commit work runs once it has committed.

    For the worker's delivery path, which runs a handful of prebuilt statements and
    loads no ORM objects: a Session's own bookkeeping (its transaction states, identity
    map, events, closing) costs more CPU there than the statements do."""
    with get_engine().begin() as connection:
        tx = CoreTx(connection)
        yield tx
    _run(tx.info.pop(_KEY, []))


def after_commit(session: Tx, callback: Callable[[], object]) -> None:
    session.info.setdefault(_KEY, []).append(callback)


def _run(callbacks: Iterable[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The row is committed; the reconciler picks up whatever was not sent.
            log.exception("after-commit callback failed; the reconciler will retry it")


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    _run(session.info.pop(_KEY, []))


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(session: Session, previous_transaction: SessionTransaction) -> None:
    # Only the outermost transaction's rollback drops them: a rolled-back SAVEPOINT
    # (begin_nested) leaves the work registered before it to be committed.
    if previous_transaction.parent is None:
        session.info.pop(_KEY, None)
