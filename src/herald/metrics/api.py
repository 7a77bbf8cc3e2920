"""GET /metrics: Prometheus's text format, with Herald's operational metrics read from
the database and Redis at scrape time (herald.metrics.collector) beside the API process's
HTTP metrics (herald.core.metrics)."""

from __future__ import annotations

import hmac
import json

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from herald.core.settings import get_settings
from herald.metrics.collector import HeraldCollector

REGISTRY.register(HeraldCollector())


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
    body = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_metrics_app() -> Starlette:
    """/metrics alone, for HERALD_METRICS_PORT: the same collector and token check."""
    return Starlette(routes=[Route("/metrics", metrics_endpoint)])
