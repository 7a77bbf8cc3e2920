"""Health: the full report of every component, and liveness and readiness for probes.

- ``GET /api/v1/health``: database, broker, workers, scheduler; 503 when any is down.
- ``GET /api/v1/health/ready``: database and broker, what this API process needs to
  serve; 503 problem+json when either is down (a load balancer's or Kubernetes's
  readiness probe, Docker's HEALTHCHECK).
- ``GET /api/v1/health/live``: 200 whenever the process answers; asks nothing else
  (a liveness probe: an outage elsewhere must never restart a healthy process).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from herald.core.db import read_scope
from herald.core.deps import bearer_scheme
from herald.core.errors import problem_responses
from herald.health.service import Health, NotReady, Status, check_all, check_ready
from herald.users.deps import principal_of
from herald.users.principal import Principal

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
        return principal_of(session, credentials)


CallerDep = Annotated[Principal, Depends(_caller_then_no_transaction)]


@router.get("/health", tags=["health"], response_model=Health, responses=DOWN_RESPONSE)
def health() -> JSONResponse:
    """Database, broker, workers and scheduler heartbeat; 200 when all are up, else 503.

    No authentication, so load balancers and monitors can call it. Answers within 2 s
    whatever hangs; a component that does not answer by then is reported down.
    """
    return health_response()


class Live(BaseModel):
    status: Status


@router.get("/health/live", tags=["health"], response_model=Live)
def live() -> Live:
    """Liveness: 200 whenever this process answers HTTP; it checks nothing else.

    For a liveness probe: a database, broker, worker or scheduler outage does not make
    this process any better by restarting it. No authentication.
    """
    return Live(status=Status.UP)


@router.get(
    "/health/ready", tags=["health"], response_model=Health, responses=problem_responses(503)
)
def ready() -> Health:
    """Readiness: 200 when this API process can serve (its database and broker answer),
    else 503 problem+json naming what is down, within 2 s.

    For a readiness probe or a load balancer. Workers and the scheduler are not asked
    (GET /api/v1/health reports them). No authentication.
    """
    result = check_ready()
    if result.status is not Status.UP:
        raise NotReady.from_health(result)
    return result


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
