"""Prometheus metrics served at /metrics: the API process's own HTTP counters, and
Herald's operational metrics read from the database and Redis at scrape time
(herald.metrics.collector), which are right whichever process answers."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from herald.core.settings import get_settings
from herald.metrics.collector import HeraldCollector

REQUESTS = Counter(
    "herald_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "herald_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
REGISTRY.register(HeraldCollector())


async def metrics_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    start = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    # The route template, not the raw path, so ids don't explode the label space.
    name = getattr(route, "path", "unmatched")
    REQUESTS.labels(request.method, name, str(response.status_code)).inc()
    LATENCY.labels(request.method, name).observe(time.perf_counter() - start)
    return response


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
