from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from herald.agents import service, usage
from herald.agents.schemas import (
    AgentCreate,
    AgentRead,
    AgentSettingsRead,
    AgentSettingsUpdate,
    AgentUpdate,
    RunRead,
    UsageGroup,
    UsageReport,
)
from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.core.pagination import Page
from herald.users.deps import PrincipalDep

agents_router = APIRouter(prefix="/agents", tags=["agents"], responses=problem_responses(401))
settings_router = APIRouter(
    prefix="/agent-settings", tags=["agents"], responses=problem_responses(401)
)
usage_router = APIRouter(prefix="/usage", tags=["agents"], responses=problem_responses(401))
routers = (agents_router, settings_router, usage_router)

Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=200)]
_BOUND = (
    "A date (YYYY-MM-DD, in the workspace's zone; `to` is inclusive) or a time in ISO 8601 "
    "with an offset. Default: the current month in the workspace's zone."
)


@agents_router.get("")
def list_agents(principal: PrincipalDep, session: SessionDep) -> list[AgentRead]:
    return [service.read_agent(session, a) for a in service.list_agents(session, principal)]


@agents_router.post(
    "", status_code=status.HTTP_201_CREATED, responses=problem_responses(403, 409, 422)
)
def create_agent(body: AgentCreate, principal: PrincipalDep, session: SessionDep) -> AgentRead:
    """Add an agent. With `schedule_cron` it runs at each occurrence in its `timezone`
    (`next_runs` shows the next three); without, only when asked."""
    return service.read_agent(session, service.create_agent(session, principal, body))


@agents_router.get("/{agent_id}", responses=problem_responses(404))
def get_agent(agent_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> AgentRead:
    return service.read_agent(session, service.get_agent(session, principal, agent_id))


@agents_router.patch("/{agent_id}", responses=problem_responses(403, 404, 409, 422))
def update_agent(
    agent_id: uuid.UUID, body: AgentUpdate, principal: PrincipalDep, session: SessionDep
) -> AgentRead:
    """Change the fields given; `null` clears `tone`, `instructions`, `schedule_cron`
    and `provider_id` (the workspace's default). In `quota`, only the limits given change."""
    return service.read_agent(session, service.update_agent(session, principal, agent_id, body))


@agents_router.delete(
    "/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(403, 404)
)
def delete_agent(agent_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    """Delete the agent and its runs; its drafts and its usage in the ledger stay."""
    service.delete_agent(session, principal, agent_id)


@agents_router.get("/{agent_id}/runs", responses=problem_responses(404, 422))
def list_runs(
    agent_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[RunRead]:
    """The agent's runs, newest first: state, draft, usage, cost, latency, error."""
    runs, next_cursor = service.list_runs(session, principal, agent_id, cursor=cursor, limit=limit)
    return Page(items=runs, next_cursor=next_cursor)


@settings_router.get("")
def read_settings(principal: PrincipalDep, session: SessionDep) -> AgentSettingsRead:
    """The workspace's defaults for its agents (the defaults until first changed)."""
    return service.read_settings(session, principal)


@settings_router.patch("", responses=problem_responses(403, 422))
def update_settings(
    body: AgentSettingsUpdate, principal: PrincipalDep, session: SessionDep
) -> AgentSettingsRead:
    """Change the fields given: the default provider (`null`: the built-in digest), the
    brand voice, the zone quota months are counted in, the workspace's monthly quota."""
    return service.update_settings(session, principal, body)


@usage_router.get("", responses=problem_responses(422))
def usage_report(
    principal: PrincipalDep,
    session: SessionDep,
    from_: Annotated[str | None, Query(alias="from", max_length=40, description=_BOUND)] = None,
    to: Annotated[str | None, Query(max_length=40, description=_BOUND)] = None,
    group_by: UsageGroup = "agent",
) -> UsageReport:
    """Provider calls from the usage ledger, summed per agent, provider, model or day
    (the workspace's days): runs, calls, tokens, cost, latency percentiles (nearest rank),
    and for agents and the totals what is left of this month's quota."""
    return usage.usage_report(session, principal, start=from_, end=to, group_by=group_by)
