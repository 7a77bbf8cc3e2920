"""The body every job-backed task shares: claim the job, run, record the outcome.

A job that talks to another system runs in three steps, so that no database transaction
is open while it waits on the network (DESIGN §2)::

    prepare(session, job) -> P      the job's claim (PENDING → STARTED) and a short read,
                                    in one transaction
    call(P) -> R                    no transaction open: the network goes here
    record(session, job, R) -> dict  a short write, with the job's outcome, in one transaction

``JobFailed`` from ``prepare`` or ``record`` is an expected failure: the job ends FAILURE
with its message, and what that step wrote is kept with it. Anything else raised ends
the job FAILURE with the exception's type and message, and propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from herald.core.db import session_scope
from herald.core.exceptions import HeraldFault
from herald.jobs import service
from herald.jobs.models import Job, JobState

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


class JobFailed(HeraldFault):
    """An expected failure: recorded on the job with what the step wrote so far."""


_SKIPPED: dict[str, Any] = {"skipped": True}


def run_job(
    job_id: str,
    prepare: Callable[[Session, Job], P],
    call: Callable[[P], R],
    record: Callable[[Session, Job, R], dict[str, Any]],
) -> dict[str, Any]:
    try:
        with session_scope() as session:
            if not service.mark_started(session, job_id):
                log.info("job %s is not pending (finished, cancelled or unknown); skipping", job_id)
                return dict(_SKIPPED)
            job = session.get_one(Job, job_id)
            try:
                prepared = prepare(session, job)
            except JobFailed as exc:
                service.finish(session, job_id, JobState.FAILURE, error=str(exc))
                return {"error": str(exc)}
        ran = call(prepared)
        with session_scope() as session:
            job = session.get_one(Job, job_id)
            try:
                result = record(session, job, ran)
            except JobFailed as exc:
                # Expected: keep what the step recorded (e.g. a channel marked
                # needs_reconnect) together with the failure.
                service.finish(session, job_id, JobState.FAILURE, error=str(exc))
                return {"error": str(exc)}
            service.finish(session, job_id, JobState.SUCCESS, result=result)
            return result
    except Exception as exc:
        with session_scope() as session:
            service.finish(session, job_id, JobState.FAILURE, error=f"{type(exc).__name__}: {exc}")
        raise
