from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from herald.health.service import Health, Status, check_all

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "At least one component is down."}},
)
def health() -> JSONResponse:
    """Database, broker, workers and scheduler heartbeat; 200 when all are up, else 503.

    No authentication, so load balancers and monitors can call it.
    """
    result = check_all()
    return JSONResponse(
        result.model_dump(mode="json"), status_code=200 if result.status is Status.UP else 503
    )
