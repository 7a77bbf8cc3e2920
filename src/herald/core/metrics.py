"""The API process's own HTTP metrics (requests and latency per route). Herald's
operational metrics, and the /metrics endpoint, are in herald.metrics."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "herald_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "herald_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)


class MetricsMiddleware:
    """Counts each HTTP request and times it, by route template. Plain ASGI, not
    ``@app.middleware("http")``: that wraps every request in a task group and memory
    streams, a measurable share of a small request's time (bench/api_latency.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        # The router records the matched route in this same scope. The route template,
        # not the raw path, so ids don't explode the label space.
        name = getattr(scope.get("route"), "path", "unmatched")
        REQUESTS.labels(scope["method"], name, str(status)).inc()
        LATENCY.labels(scope["method"], name).observe(time.perf_counter() - start)
