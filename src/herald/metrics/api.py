"""GET /metrics: Prometheus's text format, with Herald's operational metrics read from
the database and Redis at scrape time (herald.metrics.collector) beside the API process's
HTTP metrics (herald.core.metrics).

A scrape while the database does not answer is ``503`` problem+json saying so, not a
``500``: the database is not the scraper's mistake, and a partial answer would be worse
than none. Prometheus keeps no sample of a failed scrape (``up`` is 0 for the target),
whereas a ``200`` without the database's series would make them vanish silently, and an
alert on a vanished series does not fire.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from herald.core.errors import DatabaseUnavailable, problem_response
from herald.core.settings import get_settings
from herald.metrics.collector import HeraldCollector

REGISTRY.register(HeraldCollector())
log = logging.getLogger(__name__)
DATABASE_DOWN = (
    "The metrics could not be read: the database did not answer ({error}). Every Herald "
    "metric is read from the database when scraped; check that the database runs and "
    "HERALD_DATABASE_URL. GET /api/v1/health/ready says what is down."
)


def authorized(header: str | None) -> bool:
    """With HERALD_METRICS_TOKEN set, a scrape must send it as a bearer token (compared in
    constant time): the metrics name platforms, queues and models."""
    token = get_settings().metrics_token
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def _problem(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(body), status, headers, "application/problem+json")


async def metrics_endpoint(request: Request) -> Response:
    if not authorized(request.headers.get("authorization")):
        return _problem(401, "Unauthorized", "Send Authorization: Bearer <HERALD_METRICS_TOKEN>.")
    # The collector reads the database and Redis: off the event loop.
    try:
        body = await run_in_threadpool(generate_latest, REGISTRY)
    except (DBAPIError, DatabaseUnavailable) as exc:
        # The error's kind only: the scrape may be unauthenticated; the log has the rest.
        log.warning("/metrics: the database did not answer: %s", exc)
        error = type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__
        return problem_response(
            503,
            DATABASE_DOWN.format(error=error),
            slug="metrics-unavailable",
            instance=request.url.path,
            headers={"Retry-After": "30"},
        )
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_metrics_app() -> Starlette:
    """/metrics alone, for HERALD_METRICS_PORT: the same collector and token check."""
    return Starlette(routes=[Route("/metrics", metrics_endpoint)])
