from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.core.responses import model_response
from herald.jobs import service as jobs
from herald.jobs.models import ACTIVE_STATES
from herald.jobs.schemas import JobRead
from herald.publishing import actions, batch
from herald.publishing import task_status as tasks
from herald.publishing.models import GROUPS, TRANSITIONS, PublicationState
from herald.publishing.preview import Preview, preview
from herald.publishing.schemas import (
    BatchPublishRequest,
    CancelResult,
    DeliveryStates,
    PublicationRead,
    PublishAccepted,
    PublishRequest,
    RetryFailedResult,
    TaskAccepted,
    TaskPublishRequest,
    TaskStatus,
)
from herald.users.deps import PrincipalDep

posts_router = APIRouter(prefix="/posts", tags=["publishing"], responses=problem_responses(401))
tasks_router = APIRouter(prefix="/tasks", tags=["tasks"], responses=problem_responses(401))
publications_router = APIRouter(
    prefix="/publications", tags=["publishing"], responses=problem_responses(401)
)


@posts_router.post(
    "/{post_id}/publish",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PublishAccepted,
    responses=problem_responses(404, 422),
)
def publish_post(
    post_id: uuid.UUID, body: PublishRequest, principal: PrincipalDep, session: SessionDep
) -> Response:
    """Deliver the post to each channel now: one delivery (and task) per channel.

    A channel that already has an active or published delivery of this post gets that
    one back instead of a second delivery.
    """
    publications = actions.publish(session, principal, post_id, body.channel_ids)
    accepted = PublishAccepted(
        post_id=post_id, publications=[PublicationRead.model_validate(p) for p in publications]
    )
    return model_response(accepted, status_code=status.HTTP_202_ACCEPTED)


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
    job = batch.start_batch(session, principal, body.post_ids, body.channel_ids)
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
    publications = tasks.publications_of_post(session, principal, post_id)
    return [PublicationRead.model_validate(p) for p in publications]


@tasks_router.post(
    "/publish-post", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(404, 422)
)
def task_publish_post(
    body: TaskPublishRequest, principal: PrincipalDep, session: SessionDep
) -> TaskAccepted:
    """Task-style entry point: publish one post to one channel."""
    (publication,) = actions.publish(session, principal, body.post_id, [body.channel_id])
    return TaskAccepted(task_id=publication.task_id, message=f"Delivery {publication.state}.")


@tasks_router.get("/status/{task_id}", responses=problem_responses(404))
def task_status(task_id: str, principal: PrincipalDep, session: SessionDep) -> TaskStatus:
    """A task's state from Herald's own records (never expires; unknown id → 404)."""
    return tasks.task_status(session, principal, task_id)


@tasks_router.get("/status/post/{post_id}", responses=problem_responses(404))
def task_status_for_post(
    post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> list[TaskStatus]:
    """The status of every delivery of a post."""
    return tasks.task_statuses_of_post(session, principal, post_id)


@tasks_router.delete("/cancel/{task_id}", responses=problem_responses(404, 409))
def cancel_task(task_id: str, principal: PrincipalDep, session: SessionDep) -> CancelResult:
    """Cancel a task: a waiting delivery for sure, a running one at best effort.

    A delivery that already went out answers 409: it is never reported cancelled.
    """
    outcome = tasks.cancel_task(session, principal, task_id)
    return CancelResult(task_id=task_id, outcome=outcome)


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
        answer["workers"] = tasks.own_tasks(session, principal, tasks.inspect_workers())
    return answer


@tasks_router.post("/retry-failed")
def retry_failed(principal: PrincipalDep, session: SessionDep) -> RetryFailedResult:
    """Re-queue this workspace's deliveries that failed for a retryable reason."""
    return RetryFailedResult(requeued=actions.retry_failed(session, principal))


@publications_router.post("/{publication_id}/retry", responses=problem_responses(404, 409))
def retry_publication(
    publication_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> PublicationRead:
    """Send a failed or unconfirmed delivery again (you decided it did not go out)."""
    publication = actions.retry(session, principal, publication_id)
    return PublicationRead.model_validate(publication)


@publications_router.get("/states")
def delivery_states() -> DeliveryStates:
    """Every state a delivery can be in, the named groups of states, and the moves each
    state allows: clients read them here instead of copying them."""
    return DeliveryStates(
        states=list(PublicationState),
        groups={name: _in_order(group) for name, group in GROUPS.items()},
        transitions={state: _in_order(TRANSITIONS[state]) for state in PublicationState},
    )


def _in_order(states: frozenset[PublicationState]) -> list[PublicationState]:
    return [state for state in PublicationState if state in states]
