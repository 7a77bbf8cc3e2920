from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.jobs import service
from herald.jobs.models import JobState
from herald.jobs.schemas import JobRead
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=problem_responses(401))


@router.get("")
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    state: Annotated[list[JobState] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[JobRead]:
    """This workspace's background jobs, newest first."""
    jobs = service.list_jobs(
        session, principal, states=frozenset(state) if state else None, limit=limit
    )
    return [JobRead.of(j) for j in jobs]


@router.get("/{job_id}", responses=problem_responses(404))
def get_job(job_id: str, principal: PrincipalDep, session: SessionDep) -> JobRead:
    """A job's state, progress and outcome, from Herald's own records."""
    return JobRead.of(service.get_job(session, principal, job_id))
