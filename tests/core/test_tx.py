from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from herald.core.tx import after_commit, core_scope
from herald.users.models import Workspace

# The suite's ``db`` fixture: herald.core.db.session_scope.
Scope = Callable[[], AbstractContextManager[Session]]


def test_callbacks_run_after_commit_only(db: Scope) -> None:
    ran: list[str] = []
    with db() as s:
        after_commit(s, lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]

    def failing_unit_of_work() -> None:
        with db() as s:
            after_commit(s, lambda: ran.append("rolled back"))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_unit_of_work()
    assert ran == ["committed"]


def test_a_rolled_back_savepoint_keeps_earlier_callbacks(db: Scope) -> None:
    ran: list[str] = []
    with db() as s:
        after_commit(s, lambda: ran.append("kept"))
        savepoint = s.begin_nested()
        s.execute(text("SELECT 1"))
        savepoint.rollback()
    assert ran == ["kept"]


def test_core_scope_commits_then_runs_callbacks_and_rolls_back_on_error(db: Scope) -> None:
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    seen: list[bool] = []

    def committed(workspace_id: uuid.UUID) -> bool:
        with db() as s:
            return s.scalar(select(Workspace.id).where(Workspace.id == workspace_id)) is not None

    with core_scope() as tx:
        tx.execute(insert(Workspace), {"id": kept, "name": "core"})
        after_commit(tx, lambda: seen.append(committed(kept)))
        assert seen == []
    assert seen == [True]  # the callback ran after the commit, and saw the row

    def failing_unit_of_work() -> None:
        with core_scope() as tx:
            tx.connection().execute(insert(Workspace), {"id": dropped, "name": "gone"})
            after_commit(tx, lambda: seen.append(False))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing_unit_of_work()
    assert seen == [True]
    assert not committed(dropped)


def test_a_failing_core_scope_callback_is_logged_and_the_rest_still_run(
    db: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise ValueError("broker gone")

    with core_scope() as tx:
        after_commit(tx, broken)
        after_commit(tx, lambda: ran.append("second"))
    assert ran == ["second"]
    assert "after-commit callback failed" in caplog.text
