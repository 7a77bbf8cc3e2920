"""The API process's own HTTP metrics (requests and latency per route). Herald's
operational metrics, and the /metrics endpoint, are in herald.metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "herald_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "herald_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)


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
