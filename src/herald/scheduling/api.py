from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from herald.core.clock import utcnow
from herald.core.deps import PrincipalDep, SessionDep
from herald.core.errors import problem_responses
from herald.publishing.schemas import PublicationRead
from herald.scheduling import service
from herald.scheduling.heartbeat import last_beat
from herald.scheduling.schemas import (
    PeriodicJob,
    RescheduleRequest,
    Scheduled,
    ScheduleRequest,
    Unscheduled,
)

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
    """Cancel the post's deliveries that have not gone out yet."""
    cancelled = service.unschedule(session, principal, post_id, channel_id)
    return Unscheduled(post_id=post_id, cancelled=cancelled)


@schedule_router.get("/upcoming")
def upcoming(principal: PrincipalDep, session: SessionDep) -> list[PublicationRead]:
    """This workspace's deliveries waiting for their time, soonest first."""
    return [PublicationRead.model_validate(p) for p in service.upcoming(session, principal)]


@schedule_router.get("/periodic")
def periodic_jobs(principal: PrincipalDep, session: SessionDep) -> list[PeriodicJob]:
    """Every periodic job with its last and next run."""
    from herald.scheduling.dispatcher import MAX_SLEEP
    from herald.worker import app

    runs = service.periodic_runs(session)
    beat_at = last_beat(session)
    jobs = [
        PeriodicJob(
            name="dispatch-due-deliveries",
            task="(inside herald beat)",
            schedule=f"every tick, at most {MAX_SLEEP:g} s apart",
            last_run_at=beat_at,
            last_finished_at=beat_at,
            last_status="ok" if beat_at else None,
            last_error=None,
            next_run_at=(beat_at or utcnow()) + timedelta(seconds=MAX_SLEEP),
        )
    ]
    for name, entry in app.conf.beat_schedule.items():
        run = runs.get(name)
        schedule: Any = entry["schedule"]
        if isinstance(schedule, int | float):
            description = f"every {schedule:g} s"
            next_run = (run.last_run_at if run else utcnow()) + timedelta(seconds=schedule)
        else:
            cron = app.conf.beat_schedule[name]["schedule"]
            description = f"cron {cron._orig_minute} {cron._orig_hour} * * * (UTC)"
            remaining = cron.remaining_estimate(run.last_run_at if run else utcnow())
            next_run = utcnow() + remaining
        jobs.append(
            PeriodicJob(
                name=name,
                task=entry["task"],
                schedule=description,
                last_run_at=run.last_run_at if run else None,
                last_finished_at=run.last_finished_at if run else None,
                last_status=run.last_status if run else None,
                last_error=run.last_error if run else None,
                next_run_at=next_run,
            )
        )
    return jobs
