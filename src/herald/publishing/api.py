from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.core.deps import PrincipalDep, SessionDep
from herald.core.errors import NotFound, problem_responses
from herald.health.api import DOWN_RESPONSE, CallerDep, health_response
from herald.health.service import Health
from herald.jobs import service as jobs
from herald.jobs.models import ACTIVE_STATES, READY_STATES, Job, JobState
from herald.jobs.schemas import JobRead
from herald.posts.service import get_post
from herald.publishing import service
from herald.publishing.models import Publication, PublicationState
from herald.publishing.preview import Preview, preview
from herald.publishing.schemas import (
    BatchPublishRequest,
    CancelResult,
    PlatformInfo,
    PublicationRead,
    PublishAccepted,
    PublishRequest,
    RetryFailedResult,
    TaskAccepted,
    TaskPublishRequest,
    TaskStatus,
)
from herald.users.service import Principal

log = logging.getLogger(__name__)
posts_router = APIRouter(prefix="/posts", tags=["publishing"], responses=problem_responses(401))
tasks_router = APIRouter(prefix="/tasks", tags=["tasks"], responses=problem_responses(401))
publications_router = APIRouter(
    prefix="/publications", tags=["publishing"], responses=problem_responses(401)
)


@posts_router.post(
    "/{post_id}/publish",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 422),
)
def publish_post(
    post_id: uuid.UUID, body: PublishRequest, principal: PrincipalDep, session: SessionDep
) -> PublishAccepted:
    """Deliver the post to each channel now: one delivery (and task) per channel.

    A channel that already has an active or published delivery of this post gets that
    one back instead of a second delivery.
    """
    publications = service.create_publications(session, principal, post_id, body.channel_ids)
    return PublishAccepted(
        post_id=post_id, publications=[PublicationRead.model_validate(p) for p in publications]
    )


@posts_router.post(
    "/batch-publish",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 422),
)
def batch_publish(
    body: BatchPublishRequest, principal: PrincipalDep, session: SessionDep
) -> TaskAccepted:
    """Publish many posts to many channels as one job; poll its progress at
    GET /api/v1/tasks/status/{task_id}."""
    job = service.start_batch(session, principal, body.post_ids, body.channel_ids)
    return TaskAccepted(
        task_id=job.id,
        message=f"Fanning out {len(body.post_ids)} post(s) to {len(body.channel_ids)} channel(s).",
    )


@posts_router.get("/{post_id}/preview", responses=problem_responses(404, 422))
def preview_post(
    post_id: uuid.UUID,
    channel_id: Annotated[uuid.UUID, Query(description="The channel to render for.")],
    principal: PrincipalDep,
    session: SessionDep,
) -> Preview:
    """Exactly what publishing to this channel would send: the rendered text or thread,
    each part's length in the platform's unit, the images, and what would be dropped."""
    return preview(session, principal, post_id, channel_id)


@posts_router.get("/{post_id}/publications", responses=problem_responses(404))
def list_publications(
    post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> list[PublicationRead]:
    """Every delivery of the post, with every attempt."""
    get_post(session, principal, post_id)
    rows = session.scalars(
        select(Publication).where(Publication.post_id == post_id).order_by(Publication.created_at)
    )
    return [PublicationRead.model_validate(p) for p in rows]


@tasks_router.post(
    "/publish-post", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(404, 422)
)
def task_publish_post(
    body: TaskPublishRequest, principal: PrincipalDep, session: SessionDep
) -> TaskAccepted:
    """Task-style entry point: publish one post to one channel."""
    (publication,) = service.create_publications(
        session, principal, body.post_id, [body.channel_id]
    )
    return TaskAccepted(task_id=publication.task_id, message=f"Delivery {publication.state}.")


def _task_status(session: Session, job: Job) -> TaskStatus:
    publication = None
    if job.kind == "publish":
        publication = session.scalars(
            select(Publication).where(Publication.task_id == job.id)
        ).first()
    state = service.JOB_STATE[publication.state] if publication else job.state
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


@tasks_router.get("/status/{task_id}", responses=problem_responses(404))
def task_status(task_id: str, principal: PrincipalDep, session: SessionDep) -> TaskStatus:
    """A task's state from Herald's own records (never expires; unknown id → 404)."""
    return _task_status(session, jobs.get_job(session, principal, task_id))


@tasks_router.get("/status/post/{post_id}", responses=problem_responses(404))
def task_status_for_post(
    post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> list[TaskStatus]:
    """The status of every delivery of a post."""
    get_post(session, principal, post_id)
    task_ids = session.scalars(
        select(Publication.task_id)
        .where(Publication.post_id == post_id)
        .order_by(Publication.created_at)
    )
    return [_task_status(session, session.get_one(Job, task_id)) for task_id in task_ids]


@tasks_router.delete("/cancel/{task_id}", responses=problem_responses(404, 409))
def cancel_task(task_id: str, principal: PrincipalDep, session: SessionDep) -> CancelResult:
    """Cancel a task: a waiting delivery for sure, a running one at best effort.

    A delivery that already went out answers 409: it is never reported cancelled.
    """
    job = jobs.get_job(session, principal, task_id)
    if job.kind == "publish":
        publication = service.get_publication_by_task(session, principal, task_id)
        outcome = service.cancel(session, publication)
    else:
        outcome = jobs.cancel(session, job)
    if outcome == "cancel_requested":
        _revoke(task_id)
    return CancelResult(task_id=task_id, outcome=outcome)


def _revoke(task_id: str) -> None:
    # Best effort only: the database flag is what the task checks.
    from herald.worker import app

    try:
        app.control.revoke(task_id)
    except Exception as exc:
        log.warning("could not send revoke for %s: %s", task_id, exc)


@tasks_router.get("/active")
def active_tasks(
    principal: PrincipalDep,
    session: SessionDep,
    live: Annotated[
        bool, Query(description="Also ask the workers (Celery inspect) for this workspace's tasks.")
    ] = False,
) -> dict[str, Any]:
    """Queued, waiting and running tasks of this workspace, from Herald's records.

    With ``live``, ``workers`` adds what each worker is running (``active``) and holds
    (``reserved``) of this workspace's tasks; other workspaces' tasks are left out.
    """
    rows = jobs.list_jobs(session, principal, states=ACTIVE_STATES, limit=500)
    answer: dict[str, Any] = {"tasks": [JobRead.of(j).model_dump(mode="json") for j in rows]}
    if live:
        # The workers answer over the broker: no transaction may wait on that (DESIGN §2).
        session.commit()
        answer["workers"] = _own_tasks(session, principal, _inspect())
    return answer


def _inspect() -> dict[str, Any]:
    from herald.worker import app

    try:
        inspector = app.control.inspect(timeout=1.0)
        return {"active": inspector.active() or {}, "reserved": inspector.reserved() or {}}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _own_tasks(session: Session, principal: Principal, seen: dict[str, Any]) -> dict[str, Any]:
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


@tasks_router.get("/health", response_model=Health, responses=DOWN_RESPONSE)
def tasks_health(principal: CallerDep) -> JSONResponse:
    """What background work needs (database, broker, workers, scheduler heartbeat), as
    GET /api/v1/health: 200 when all are up, else 503, within 2 s."""
    return health_response()


@tasks_router.post("/retry-failed")
def retry_failed(principal: PrincipalDep, session: SessionDep) -> RetryFailedResult:
    """Re-queue this workspace's deliveries that failed for a retryable reason."""
    return RetryFailedResult(requeued=service.retry_failed(session, principal))


@publications_router.post("/{publication_id}/retry", responses=problem_responses(404, 409))
def retry_publication(
    publication_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> PublicationRead:
    """Send a failed or unconfirmed delivery again (you decided it did not go out)."""
    publication = session.get(Publication, publication_id)
    if publication is None or publication.workspace_id != principal.workspace_id:
        raise NotFound(f"No publication {publication_id}.")
    if not service.retry(session, publication):
        raise service.AlreadyPublished(
            f"Only a failed or unconfirmed delivery can be retried; this one is "
            f"{publication.state}."
        )
    session.refresh(publication)
    return PublicationRead.model_validate(publication)
