"""The job runner: claim and read in one transaction, call with none open, record the
outcome in another; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from herald.core.db import session_scope, transaction_open
from herald.jobs import service
from herald.jobs.models import Job
from herald.jobs.runner import JobFailed, run_job
from tests.conftest import Account


@pytest.fixture
def job_id(account: Account) -> str:
    with session_scope() as session:
        job = service.create_job(
            session, workspace_id=account.workspace_id, kind="test.job", params={"n": 2}
        )
        return job.id


def stored(job_id: str) -> Any:
    with session_scope() as session:
        job = session.get_one(Job, job_id)
        session.expunge(job)
        return job


def test_the_call_runs_between_two_short_transactions(job_id: str) -> None:
    steps: list[tuple[str, bool]] = []

    def prepare(session: Session, job: Job) -> int:
        steps.append(("prepare", transaction_open()))
        return int(job.params["n"])

    def call(n: int) -> int:
        steps.append(("call", transaction_open()))
        return n * 21

    def record(session: Session, job: Job, answer: int) -> dict[str, Any]:
        steps.append(("record", transaction_open()))
        return {"answer": answer}

    assert run_job(job_id, prepare, call, record) == {"answer": 42}
    assert steps == [("prepare", True), ("call", False), ("record", True)]
    job = stored(job_id)
    assert (job.state, job.result) == ("SUCCESS", {"answer": 42})
    # Run again (a redelivered message): the job is finished, nothing runs.
    steps.clear()
    assert run_job(job_id, prepare, call, record) == {"skipped": True}
    assert steps == []


def test_an_expected_failure_keeps_what_the_record_step_wrote(job_id: str) -> None:
    def record(session: Session, job: Job, _: None) -> dict[str, Any]:
        job.message = "written before the failure"
        raise JobFailed("the platform said no")

    assert run_job(job_id, lambda s, j: None, lambda _: None, record) == {
        "error": "the platform said no"
    }
    job = stored(job_id)
    assert (job.state, job.error, job.message) == (
        "FAILURE",
        "the platform said no",
        "written before the failure",
    )


def test_an_unexpected_error_in_the_call_fails_the_job_and_propagates(job_id: str) -> None:
    def call(_: None) -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_job(job_id, lambda s, j: None, call, lambda s, j, r: {})
    job = stored(job_id)
    assert (job.state, job.error) == ("FAILURE", "ValueError: boom")
