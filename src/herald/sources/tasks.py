"""The sources' Celery tasks: thin, ids in (STYLE.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from herald.core.db import session_scope
from herald.jobs.models import Job
from herald.jobs.runner import JobFailed, run_job
from herald.scheduling.service import epoch_key, run_periodic, utc_day_key
from herald.sources import check, monitor, research
from herald.sources.service import CHECK_JOB_TASK, TEST_JOB_TASK
from herald.worker import MONITOR_EVERY_SECONDS, app


@app.task(name="herald.sources.monitor", ignore_result=True)
def monitor_sources() -> dict[str, Any]:
    """Claim every source whose check is due and send its check (runs in the scheduler)."""
    return run_periodic(
        "monitor-sources",
        lambda now: epoch_key(now, MONITOR_EVERY_SECONDS),
        monitor.monitor_pass,
    )


@app.task(name="herald.sources.clean_old_research", ignore_result=True)
def clean_old_research() -> dict[str, Any]:
    """Delete research jobs (and their results) past HERALD_RESEARCH_RETENTION_DAYS."""
    return run_periodic(
        "clean-old-research",
        utc_day_key,
        lambda session: {"research_jobs_deleted": research.clean_old_research(session)},
    )


@app.task(name=monitor.CHECK_TASK, ignore_result=True)
def check_source(source_id: str, claim: str) -> dict[str, Any]:
    """A check the monitor claimed: read under the claim, ask the source, record."""
    with session_scope() as session:
        plan = check.plan_claimed(session, uuid.UUID(source_id), datetime.fromisoformat(claim))
    if plan is None:
        return {"skipped": True}
    got = check.read(plan)
    with session_scope() as session:
        return check.record(session, plan, got)


def _job_source(job: Job) -> uuid.UUID:
    return uuid.UUID(job.params["source_id"])


@app.task(name=CHECK_JOB_TASK)
def check_source_job(job_id: str) -> dict[str, Any]:
    """A check asked for through the API or the CLI (a job)."""

    def claim(session: Session, job: Job) -> tuple[check.Plan, bool | None]:
        return check.claim_now(session, _job_source(job)), job.params.get("auto_generate")

    def ask(claimed: tuple[check.Plan, bool | None]) -> tuple[check.Plan, bool | None, check.Read]:
        plan, auto_generate = claimed
        return plan, auto_generate, check.read(plan)

    def store(
        session: Session, _job: Job, done: tuple[check.Plan, bool | None, check.Read]
    ) -> dict[str, Any]:
        plan, auto_generate, got = done
        result = check.record(session, plan, got, auto_generate=auto_generate)
        if result.get("error"):
            # Recorded on the source (failures, back-off) and kept: the job fails with it.
            raise JobFailed(str(result["error"]))
        return result

    return run_job(job_id, claim, ask, store)


@app.task(name=TEST_JOB_TASK)
def probe_source_job(job_id: str) -> dict[str, Any]:
    """The source's connection test (a job): what it answers; nothing stored."""
    return run_job(
        job_id,
        lambda session, job: check.probe_plan(session, _job_source(job)),
        check.probe,
        lambda _session, _job, answer: answer,
    )
