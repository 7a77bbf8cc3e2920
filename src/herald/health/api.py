"""Health of every component: database, broker, workers, scheduler."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from herald.core.db import read_scope
from herald.core.deps import bearer_scheme
from herald.core.errors import problem_responses
from herald.health.service import Health, Status, check_all
from herald.users.deps import get_principal
from herald.users.service import Principal

# Tags per route: /tasks/health belongs with the tasks endpoints in the docs, not both.
router = APIRouter()

DOWN_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {"model": Health, "description": "At least one component is down."}
}


def health_response() -> JSONResponse:
    """Every component checked (within 2 s): 200 when all are up, else 503."""
    result = check_all()
    return JSONResponse(
        result.model_dump(mode="json"), status_code=200 if result.status is Status.UP else 503
    )


def _caller_then_no_transaction(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    # The caller, from a short read that is over before the checks wait on the network
    # (a request's own session stays open until the endpoint returns).
    with read_scope() as session:
        return get_principal(session, credentials)


CallerDep = Annotated[Principal, Depends(_caller_then_no_transaction)]


@router.get("/health", tags=["health"], response_model=Health, responses=DOWN_RESPONSE)
def health() -> JSONResponse:
    """Database, broker, workers and scheduler heartbeat; 200 when all are up, else 503.

    No authentication, so load balancers and monitors can call it. Answers within 2 s
    whatever hangs; a component that does not answer by then is reported down.
    """
    return health_response()


@router.get(
    "/tasks/health",
    tags=["tasks"],
    response_model=Health,
    responses={**DOWN_RESPONSE, **problem_responses(401)},
)
def tasks_health(principal: CallerDep) -> JSONResponse:
    """What background work needs (database, broker, workers, scheduler heartbeat), as
    GET /api/v1/health: 200 when all are up, else 503, within 2 s."""
    return health_response()
