"""Publishing many posts to many channels as one background job, with progress."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.channels.service import get_channel
from herald.core.db import session_scope
from herald.core.errors import Conflict, NotFound
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job, JobState
from herald.posts.service import get_post
from herald.publishing import actions
from herald.users.models import User
from herald.users.principal import Principal
from herald.worker import PRIORITY_BACKLOG, app

# The name the batch task is registered under (herald.publishing.tasks).
BATCH_TASK = "herald.publishing.batch_publish"


def start_batch(
    session: Session,
    principal: Principal,
    post_ids: list[uuid.UUID],
    channel_ids: list[uuid.UUID],
) -> Job:
    """Check every id now (404 before anything starts), then fan out in a background job."""
    posts = [get_post(session, principal, pid) for pid in dict.fromkeys(post_ids)]
    channels = [get_channel(session, principal, cid) for cid in dict.fromkeys(channel_ids)]
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind="batch_publish",
        params={
            "post_ids": [str(p.id) for p in posts],
            "channel_ids": [str(c.id) for c in channels],
        },
        total=len(posts),
    )
    job_id = job.id
    after_commit(
        session, lambda: app.send_task(BATCH_TASK, (job_id,), task_id=job_id, ignore_result=True)
    )
    return job


@dataclass
class _Batch:
    principal: Principal
    post_ids: list[uuid.UUID]
    channel_ids: list[uuid.UUID]
    created: list[str] = field(default_factory=list)


def run_batch(job_id: str) -> dict[str, Any]:
    """Fan out one post per transaction, so progress is real and a failure keeps what
    went before; the job's start shares the first one, its end the last."""
    batch: _Batch | dict[str, Any] | None = None
    done = 0
    while True:
        with session_scope() as session:
            if batch is None:
                batch = _begin(session, job_id)
            if isinstance(batch, dict):  # not started: skipped, or its owner is gone
                return batch
            finished = _next_post(session, job_id, batch, done)
        if finished is not None:
            return finished
        done += 1


def _begin(session: Session, job_id: str) -> _Batch | dict[str, Any]:
    if not jobs.mark_started(session, job_id):
        return {"skipped": True}
    job = session.get_one(Job, job_id)
    owner = session.get(User, job.owner_id) if job.owner_id else None
    if owner is None:
        jobs.finish(session, job_id, JobState.FAILURE, error="the user who started it is gone")
        return {"error": "owner gone"}
    return _Batch(
        Principal(owner.id, owner.workspace_id, owner.email, owner.role),
        [uuid.UUID(p) for p in job.params["post_ids"]],
        [uuid.UUID(c) for c in job.params["channel_ids"]],
    )


def _next_post(session: Session, job_id: str, batch: _Batch, done: int) -> dict[str, Any] | None:
    """Fan out post number ``done`` (from 0); the job's result once it is over."""
    if session.scalar(select(Job.cancel_requested).where(Job.id == job_id)):
        jobs.finish(session, job_id, JobState.REVOKED, result={"task_ids": batch.created})
        return {"cancelled": True, "task_ids": batch.created}
    total = len(batch.post_ids)
    if done < total:
        try:
            publications = actions.publish(
                session,
                batch.principal,
                batch.post_ids[done],
                batch.channel_ids,
                priority=PRIORITY_BACKLOG,
            )
            batch.created += [p.task_id for p in publications]
            message = f"post {done + 1} of {total} fanned out"
        except (NotFound, Conflict) as exc:  # deleted, or waiting for review: skip it, say so
            message = f"post {done + 1}: {exc.message}"
        jobs.set_progress(session, job_id, done + 1, message)
    if done + 1 < total:
        return None
    result = {"task_ids": batch.created, "deliveries": len(batch.created)}
    jobs.finish(session, job_id, JobState.SUCCESS, result=result)
    return result
