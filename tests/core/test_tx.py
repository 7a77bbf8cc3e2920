from __future__ import annotations

import pytest

from herald.core.tx import after_commit


def test_callbacks_run_after_commit_only(db) -> None:  # type: ignore[no-untyped-def]
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


def test_a_rolled_back_savepoint_keeps_earlier_callbacks(db) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    ran: list[str] = []
    with db() as s:
        after_commit(s, lambda: ran.append("kept"))
        savepoint = s.begin_nested()
        s.execute(text("SELECT 1"))
        savepoint.rollback()
    assert ran == ["kept"]
