"""`POST /api/v1/tasks/generate-post`: the seed's task-style entry point to run an agent."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from herald.agents import generate
from herald.agents.models import RunTrigger
from herald.agents.service import get_agent
from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=problem_responses(401))


class GenerateRequest(BaseModel):
    agent_id: uuid.UUID
    topic: str | None = Field(None, min_length=1, max_length=300)
    keyword: str | None = Field(None, min_length=1, max_length=200)
    item_ids: list[uuid.UUID] | None = Field(
        None,
        max_length=20,
        description="Items to draw on; omitted: the agent's sources' newest unused ones.",
    )


class GenerateAccepted(BaseModel):
    task_id: str
    status: str = "pending"
    message: str
    run_id: uuid.UUID


@router.post(
    "/generate-post",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(403, 404, 422, 429),
)
def generate_post(
    body: GenerateRequest, principal: PrincipalDep, session: SessionDep
) -> GenerateAccepted:
    """Run the agent now (a job on the `generation` queue). Its quota is checked and the
    most the run may spend reserved first: over quota is a 429 naming the limit and when
    it resets, before any provider call. Follow the job at `GET /api/v1/tasks/status/{task_id}`;
    its result is `{success, post_id, title, word_count, status}`."""
    principal.require_manager()
    agent = get_agent(session, principal, body.agent_id)
    run = generate.start_run(
        session,
        agent,
        trigger=RunTrigger.MANUAL,
        owner_id=principal.user_id,
        topic=body.topic,
        keyword=body.keyword,
        item_ids=body.item_ids,
    )
    assert run.job_id is not None
    return GenerateAccepted(
        task_id=run.job_id, message=f"Generating a draft with agent {agent.name!r}.", run_id=run.id
    )
