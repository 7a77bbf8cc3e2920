from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from herald.agents import provider_service as service
from herald.agents.provider_schemas import (
    ProviderCreate,
    ProviderRead,
    ProviderTestStarted,
    ProviderUpdate,
)
from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.users.deps import PrincipalDep

providers_router = APIRouter(
    prefix="/providers", tags=["providers"], responses=problem_responses(401)
)


@providers_router.get("")
def list_providers(principal: PrincipalDep, session: SessionDep) -> list[ProviderRead]:
    """The workspace's providers (without one, agents use the built-in `digest`)."""
    return [service.read_provider(p) for p in service.list_providers(session, principal)]


@providers_router.post(
    "", status_code=status.HTTP_201_CREATED, responses=problem_responses(403, 409, 422)
)
def create_provider(
    body: ProviderCreate, principal: PrincipalDep, session: SessionDep
) -> ProviderRead:
    """Add a provider: `openai` (any OpenAI-compatible chat-completions endpoint, hosted
    or local) or `digest` (offline, no model). The API key is never returned."""
    return service.read_provider(service.create_provider(session, principal, body))


@providers_router.get("/{provider_id}", responses=problem_responses(404))
def get_provider(
    provider_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> ProviderRead:
    return service.read_provider(service.get_provider(session, principal, provider_id))


@providers_router.patch("/{provider_id}", responses=problem_responses(403, 404, 409, 422))
def update_provider(
    provider_id: uuid.UUID, body: ProviderUpdate, principal: PrincipalDep, session: SessionDep
) -> ProviderRead:
    """Change a provider; `api_key: null` removes the key. A new key, model or base URL
    makes a `needs_reconnect` provider `active` again."""
    return service.read_provider(service.update_provider(session, principal, provider_id, body))


@providers_router.delete(
    "/{provider_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(403, 404)
)
def delete_provider(provider_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    """Delete the provider; agents that used it fall back to the workspace's default.
    Its calls stay in the usage ledger."""
    service.delete_provider(session, principal, provider_id)


@providers_router.post(
    "/{provider_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(403, 404),
)
def test_provider(
    provider_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> ProviderTestStarted:
    """Test the provider: one tiny completion ("Reply with the word OK."), recorded in the
    usage ledger; poll GET /api/v1/tasks/status/{task_id}. The result holds the reply,
    tokens, cost and latency; a refused key marks the provider `needs_reconnect`."""
    job = service.start_test(session, principal, provider_id)
    return ProviderTestStarted(task_id=job.id, message="Testing the provider.")
