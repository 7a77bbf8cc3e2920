"""Run work after the surrounding transaction commits (never on rollback).

Messages to the broker are sent this way: a worker must never receive an id whose row
it cannot see yet, and a rolled-back request must send nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)
_KEY = "herald_after_commit"


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    session.info.setdefault(_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_callbacks(session: Session) -> None:
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The row is committed; the reconciler picks up whatever was not sent.
            log.exception("after-commit callback failed; the reconciler will retry it")


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(session: Session, previous_transaction: SessionTransaction) -> None:
    # Only the outermost transaction's rollback drops them: a rolled-back SAVEPOINT
    # (begin_nested) leaves the work registered before it to be committed.
    if previous_transaction.parent is None:
        session.info.pop(_KEY, None)
