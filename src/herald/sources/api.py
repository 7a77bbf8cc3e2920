from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.core.pagination import Page
from herald.core.types import IsoDateTime
from herald.sources import service
from herald.sources.schemas import (
    CheckRequest,
    ItemRead,
    MonitorRequest,
    SourceCreate,
    SourceRead,
    SourceUpdate,
    TaskStarted,
)
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/sources", tags=["sources"], responses=problem_responses(401))
items_router = APIRouter(prefix="/items", tags=["sources"], responses=problem_responses(401))
tasks_router = APIRouter(prefix="/tasks", tags=["tasks"], responses=problem_responses(401))

Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.get("")
def list_sources(principal: PrincipalDep, session: SessionDep) -> list[SourceRead]:
    return [service.read_source(s) for s in service.list_sources(session, principal)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(403, 409, 422))
def create_source(body: SourceCreate, principal: PrincipalDep, session: SessionDep) -> SourceRead:
    """Add a source. Its first check runs at once and records the items it finds as the
    baseline (`seen_at_subscribe`): subscribing never fires a backlog (see `backfill`)."""
    return service.read_source(service.create_source(session, principal, body))


@router.get("/{source_id}", responses=problem_responses(404))
def get_source(source_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> SourceRead:
    return service.read_source(service.get_source(session, principal, source_id))


@router.patch("/{source_id}", responses=problem_responses(403, 404, 409, 422))
def update_source(
    source_id: uuid.UUID, body: SourceUpdate, principal: PrincipalDep, session: SessionDep
) -> SourceRead:
    return service.read_source(service.update_source(session, principal, source_id, body))


@router.delete(
    "/{source_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
def delete_source(source_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    """Delete the source and its items; drafts made from them stay."""
    service.delete_source(session, principal, source_id)


@router.get("/{source_id}/items", responses=problem_responses(404, 422))
def source_items(
    source_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ItemRead]:
    """The source's items, newest first (published time; undated ones by first seen)."""
    items, next_cursor = service.list_items(
        session, principal, source_id=source_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/{source_id}/check",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(403, 404),
)
def check_source(
    source_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    body: CheckRequest | None = None,
) -> TaskStarted:
    """Check the source now; poll GET /api/v1/tasks/status/{task_id}. The result lists
    the new and edited items and the drafts made."""
    auto_generate = body.auto_generate if body else None
    job = service.start_check(session, principal, source_id, auto_generate)
    return TaskStarted(task_id=job.id, message="Checking the source.")


@router.post(
    "/{source_id}/test", status_code=status.HTTP_202_ACCEPTED, responses=problem_responses(404)
)
def test_source(source_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> TaskStarted:
    """Test the source's connection: the job's result says whether it is reachable, its
    HTTP status and content type, its format and version, title, item count, newest
    item's time, whether it honours conditional GET, and how long it took."""
    job = service.start_test(session, principal, source_id)
    return TaskStarted(task_id=job.id, message="Testing the source's connection.")


@items_router.get("", responses=problem_responses(404, 422))
def list_items(
    principal: PrincipalDep,
    session: SessionDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Words in the title or summary.")
    ] = None,
    source_id: uuid.UUID | None = None,
    since: Annotated[
        IsoDateTime | None,
        Query(description="Only items published (or first seen) since then (ISO 8601)."),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ItemRead]:
    """Items from every source and research job of this workspace, newest first."""
    items, next_cursor = service.list_items(
        session, principal, source_id=source_id, q=q, since=since, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@tasks_router.post(
    "/monitor-rss",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(403, 404, 422),
)
def monitor_rss(body: MonitorRequest, principal: PrincipalDep, session: SessionDep) -> TaskStarted:
    """Task-style entry point (as the earlier system's): check one source now,
    optionally drafting posts from its new items (at most the source's
    `max_drafts_per_check`)."""
    job = service.start_check(session, principal, body.source_id, body.auto_generate)
    return TaskStarted(task_id=job.id, message="Checking the source.")
