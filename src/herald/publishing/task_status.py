"""What the task endpoints answer: a job's status from Herald's own records (a
delivery's job reads its delivery), and the workers' view of this workspace's tasks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.core.errors import NotFound
from herald.jobs import service as jobs
from herald.jobs.models import READY_STATES, Job, JobState
from herald.posts.service import get_post
from herald.publishing import actions
from herald.publishing.models import Publication, PublicationState
from herald.publishing.schemas import PlatformInfo, PublicationRead, TaskStatus
from herald.users.principal import Principal
from herald.worker import app


def publications_of_post(
    session: Session, principal: Principal, post_id: uuid.UUID
) -> list[Publication]:
    """Every delivery of the post, oldest first (404 for another workspace's post)."""
    get_post(session, principal, post_id)
    return list(
        session.scalars(
            select(Publication)
            .where(Publication.post_id == post_id)
            .order_by(Publication.created_at)
        )
    )


def task_status(session: Session, principal: Principal, task_id: str) -> TaskStatus:
    """A task's state (never expires; an unknown id is a 404)."""
    return _status(session, jobs.get_job(session, principal, task_id))


def task_statuses_of_post(
    session: Session, principal: Principal, post_id: uuid.UUID
) -> list[TaskStatus]:
    return [
        _status(session, session.get_one(Job, p.task_id))
        for p in publications_of_post(session, principal, post_id)
    ]


def _status(session: Session, job: Job) -> TaskStatus:
    publication = None
    if job.kind == "publish":
        publication = session.scalars(
            select(Publication).where(Publication.task_id == job.id)
        ).first()
    state = actions.JOB_STATE[publication.state] if publication else job.state
    result: dict[str, Any] | None = job.result
    error = job.error
    platform_info = None
    if publication is not None:
        channel = session.get(Channel, publication.channel_id)
        error = publication.last_error if state in (JobState.FAILURE, JobState.RETRY) else None
        if publication.state == PublicationState.PUBLISHED:
            data = {"id": publication.external_id, "url": publication.external_url}
            result = {"platform": channel.platform if channel else None, "data": data}
            platform_info = PlatformInfo(platform=result["platform"] or "", data=data)
    return TaskStatus(
        task_id=job.id,
        status=state,
        ready=state in READY_STATES,
        successful=state == JobState.SUCCESS,
        failed=state == JobState.FAILURE,
        result=result,
        error=error,
        progress={"done": job.progress_done, "total": job.progress_total}
        if job.progress_total
        else None,
        platform_info=platform_info,
        publication=PublicationRead.model_validate(publication) if publication else None,
    )


def cancel_task(session: Session, principal: Principal, task_id: str) -> str:
    """Cancel a task: a delivery by the one cancel rule (herald.publishing.actions), any
    other job as jobs cancel theirs."""
    job = jobs.get_job(session, principal, task_id)
    if job.kind != "publish":
        outcome = jobs.cancel(session, job)
        if outcome == "cancel_requested":
            actions.revoke_after_commit(session, task_id)
        return outcome
    publication = session.scalars(select(Publication).where(Publication.task_id == task_id)).first()
    if publication is None or publication.workspace_id != principal.workspace_id:
        raise NotFound(f"No task {task_id}.")
    return actions.cancel(session, publication)


def inspect_workers() -> dict[str, Any]:
    """What every worker runs and holds (Celery inspect, over the broker: call it with no
    transaction open)."""
    try:
        inspector = app.control.inspect(timeout=1.0)
        return {"active": inspector.active() or {}, "reserved": inspector.reserved() or {}}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def own_tasks(session: Session, principal: Principal, seen: dict[str, Any]) -> dict[str, Any]:
    """The workers' view with only the caller's tasks in it.

    Every task Herald sends for a workspace carries the id of that workspace's job (a
    delivery's, a channel test's, a batch's); anything else (another workspace's, the
    periodic maintenance) is not the caller's to see.
    """
    if "error" in seen:
        return {"error": seen["error"]}
    views = {name: seen.get(name) or {} for name in ("active", "reserved")}
    task_ids = {
        str(task.get("id"))
        for view in views.values()
        for tasks in view.values()
        for task in tasks or ()
        if isinstance(task, dict)
    }
    own = set(
        session.scalars(
            select(Job.id).where(Job.workspace_id == principal.workspace_id, Job.id.in_(task_ids))
        )
        if task_ids
        else ()
    )
    return {
        name: {
            worker: [t for t in tasks or () if isinstance(t, dict) and str(t.get("id")) in own]
            for worker, tasks in view.items()
        }
        for name, view in views.items()
    }
