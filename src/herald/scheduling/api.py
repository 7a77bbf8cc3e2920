from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.publishing import actions
from herald.publishing.schemas import PublicationRead
from herald.scheduling import periodic, service
from herald.scheduling.schemas import (
    PeriodicJob,
    RescheduleRequest,
    Scheduled,
    ScheduleRequest,
    Unscheduled,
)
from herald.users.deps import PrincipalDep

posts_router = APIRouter(prefix="/posts", tags=["scheduling"], responses=problem_responses(401))
schedule_router = APIRouter(
    prefix="/schedule", tags=["scheduling"], responses=problem_responses(401)
)


@posts_router.post(
    "/{post_id}/schedule",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 422),
)
def schedule_post(
    post_id: uuid.UUID, body: ScheduleRequest, principal: PrincipalDep, session: SessionDep
) -> Scheduled:
    """Deliver the post to each channel at an exact time (stored in UTC)."""
    when = service.parse_when(body.scheduled_at)
    publications = service.schedule(session, principal, post_id, body.channel_ids, when)
    return Scheduled(
        post_id=post_id,
        scheduled_at=when,
        publications=[PublicationRead.model_validate(p) for p in publications],
    )


@posts_router.patch("/{post_id}/schedule", responses=problem_responses(404, 409, 422))
def reschedule_post(
    post_id: uuid.UUID, body: RescheduleRequest, principal: PrincipalDep, session: SessionDep
) -> Scheduled:
    """Move the post's scheduled deliveries; 409 if none is still scheduled."""
    when = service.parse_when(body.scheduled_at)
    publications = service.reschedule(session, principal, post_id, when, body.channel_ids)
    return Scheduled(
        post_id=post_id,
        scheduled_at=when,
        publications=[PublicationRead.model_validate(p) for p in publications],
    )


@posts_router.delete("/{post_id}/schedule", responses=problem_responses(404))
def unschedule_post(
    post_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    channel_id: Annotated[list[uuid.UUID] | None, Query(description="Repeatable.")] = None,
) -> Unscheduled:
    """Cancel the post's deliveries that have not gone out yet, by the one cancel rule
    (as DELETE /api/v1/tasks/cancel/{task_id}): a waiting one is cancelled for certain
    and counted; a running one is only asked to stop; a published one is left alone."""
    cancelled = actions.unschedule(session, principal, post_id, channel_id)
    return Unscheduled(post_id=post_id, cancelled=cancelled)


@schedule_router.get("/upcoming")
def upcoming(principal: PrincipalDep, session: SessionDep) -> list[PublicationRead]:
    """This workspace's deliveries waiting for their time, soonest first."""
    return [PublicationRead.model_validate(p) for p in service.upcoming(session, principal)]


@schedule_router.get("/periodic")
def periodic_jobs(principal: PrincipalDep, session: SessionDep) -> list[PeriodicJob]:
    """Every periodic job with its last and next run."""
    return periodic.periodic_jobs(session)
