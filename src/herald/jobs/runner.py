"""The body every job-backed task shares: claim the job, run, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from herald.core.db import session_scope
from herald.jobs import service
from herald.jobs.models import Job, JobState

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """An expected failure: recorded on the job with what the body wrote so far."""


def run_job(job_id: str, body: Callable[[Session, Job], dict[str, Any]]) -> dict[str, Any]:
    with session_scope() as session:
        if not service.mark_started(session, job_id):
            log.info("job %s is not pending (finished, cancelled or unknown); skipping", job_id)
            return {"skipped": True}
    try:
        with session_scope() as session:
            job = session.get_one(Job, job_id)
            try:
                result = body(session, job)
            except JobFailed as exc:
                # Expected: keep what the body recorded (e.g. a channel marked
                # needs_reconnect) together with the failure.
                service.finish(session, job_id, JobState.FAILURE, error=str(exc))
                return {"error": str(exc)}
            service.finish(session, job_id, JobState.SUCCESS, result=result)
            return result
    except Exception as exc:
        with session_scope() as session:
            service.finish(session, job_id, JobState.FAILURE, error=f"{type(exc).__name__}: {exc}")
        raise
