"""Job records: created with the request, updated by the task, read by status queries."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.errors import NotFound
from herald.jobs.models import READY_STATES, Job, JobState
from herald.users.principal import Principal
from herald.webhooks import outbox

# What a job.state event carries: enough for a live view to redraw the job.
_EVENT_COLUMNS = (
    Job.workspace_id,
    Job.id,
    Job.kind,
    Job.state,
    Job.progress_done,
    Job.progress_total,
    Job.message,
    Job.error,
)


def _emit(session: Session, row: Row[*tuple[Any, ...]] | None) -> None:
    """Tell the workspace's live clients (``job.state``) once this change commits."""
    # The live-events module (async Redis) loads on the first job change, not with this
    # module, which the command line's channel commands import.
    from herald.events.service import publish_after_commit  # noqa: PLC0415

    if row is not None:
        workspace_id, *fields = row
        names = ("id", "kind", "state", "progress_done", "progress_total", "message", "error")
        publish_after_commit(
            session, workspace_id, "job.state", dict(zip(names, fields, strict=True))
        )


def create_job(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    kind: str,
    params: dict[str, Any],
    owner_id: uuid.UUID | None = None,
    total: int | None = None,
) -> Job:
    job = Job(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        owner_id=owner_id,
        kind=kind,
        params=params,
        progress_total=total,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, principal: Principal, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.workspace_id != principal.workspace_id:
        raise NotFound(f"No job {job_id}.")
    return job


def list_jobs(
    session: Session, principal: Principal, *, states: frozenset[JobState] | None, limit: int
) -> list[Job]:
    query = select(Job).where(Job.workspace_id == principal.workspace_id)
    if states:
        query = query.where(Job.state.in_(states))
    return list(session.scalars(query.order_by(Job.created_at.desc()).limit(limit)))


def mark_started(session: Session, job_id: str) -> bool:
    """PENDING/RETRY → STARTED; False if the job is gone, finished or cancelled."""
    row = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.state.in_([JobState.PENDING, JobState.RETRY]),
            Job.cancel_requested.is_(False),
        )
        .values(state=JobState.STARTED, started_at=utcnow(), updated_at=utcnow())
        .returning(*_EVENT_COLUMNS)
    ).first()
    _emit(session, row)
    return row is not None


def set_progress(session: Session, job_id: str, done: int, message: str | None = None) -> None:
    values: dict[str, Any] = {"progress_done": done, "updated_at": utcnow()}
    if message is not None:
        values["message"] = message
    row = session.execute(
        update(Job).where(Job.id == job_id).values(**values).returning(*_EVENT_COLUMNS)
    ).first()
    _emit(session, row)


def finish(
    session: Session,
    job_id: str,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    assert state in READY_STATES
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.not_in(READY_STATES))
        .values(state=state, result=result, error=error, finished_at=now, updated_at=now)
        .returning(*_EVENT_COLUMNS)
    ).first()
    _emit(session, row)
    _finished(session, row)


def _finished(session: Session, row: Row[*tuple[Any, ...]] | None) -> None:
    """The event webhooks' ``job.finished``, in this transaction (outbox)."""
    if row is not None:
        outbox.record(
            session,
            row.workspace_id,
            "job.finished",
            {"job_id": row.id, "kind": row.kind, "state": str(row.state), "error": row.error},
        )


def cancel(session: Session, job: Job) -> str:
    """Cancel a job: certain while pending, requested (checked by the task) while running."""
    row = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == JobState.PENDING)
        .values(state=JobState.REVOKED, finished_at=utcnow(), cancel_requested=True)
        .returning(*_EVENT_COLUMNS)
    ).first()
    if row is not None:
        _emit(session, row)
        _finished(session, row)
        return "cancelled"
    session.refresh(job)
    if job.state in READY_STATES:
        return str(job.state).lower()
    job.cancel_requested = True
    return "cancel_requested"
