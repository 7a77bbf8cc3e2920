"""``/api/v1/research``: start a research job, follow it, read its results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.sources import research
from herald.sources.research_schemas import (
    ResearchAccepted,
    ResearchCreate,
    ResearchRead,
    ResearchSummary,
)
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/research", tags=["research"], responses=problem_responses(401))


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(422))
def start_research(
    body: ResearchCreate, principal: PrincipalDep, session: SessionDep
) -> ResearchAccepted:
    """Search Reddit, Hacker News and Discourse forums for a query in the background;
    follow it at GET /api/v1/research/{task_id} (or /api/v1/tasks/status/{task_id})."""
    job = research.start_research(session, principal, body)
    total = job.progress_total or 0
    return ResearchAccepted(
        task_id=job.id, message=f"Searching {total} site(s) for {body.query!r}."
    )


@router.get("")
def list_research(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ResearchSummary]:
    """This workspace's research jobs, newest first."""
    return research.list_research(session, principal, limit=limit)


@router.get("/{task_id}", responses=problem_responses(404))
def read_research(
    task_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Most items returned.")] = 50,
) -> ResearchRead:
    """A research job's status and progress, a digest per site, and its items ranked by
    a blend of score and recency (see docs/sources.md)."""
    return research.read_research(session, principal, task_id, limit=limit)
