"""The FastAPI application: API under /api/v1, the dashboard at /, metrics at /metrics."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald import __version__
from herald.agents.api import routers as agents_routers
from herald.agents.generate_api import router as generate_router
from herald.agents.provider_api import providers_router
from herald.backups.api import router as backups_router
from herald.channels.api import platforms_router
from herald.channels.api import router as channels_router
from herald.core.errors import install_error_handlers
from herald.core.limits import install_limits
from herald.core.metrics import MetricsMiddleware
from herald.core.openapi import install_openapi
from herald.core.replay import ReplayOnLostConnection
from herald.core.settings import get_settings
from herald.events.api import router as events_router
from herald.health.api import router as health_router
from herald.jobs.api import router as jobs_router
from herald.media.api import router as media_router
from herald.metrics.api import metrics_endpoint
from herald.posts.api import router as posts_router
from herald.publishing.api import posts_router as publish_router
from herald.publishing.api import publications_router, tasks_router
from herald.review.api import router as review_router
from herald.scheduling.api import posts_router as schedule_posts_router
from herald.scheduling.api import schedule_router
from herald.scheduling.slots_api import routers as slots_routers
from herald.sources.api import items_router as source_items_router
from herald.sources.api import router as sources_router
from herald.sources.api import tasks_router as source_tasks_router
from herald.sources.research_api import router as research_router
from herald.users.api import auth_router, users_router
from herald.web.routes import mount_docs, mount_static
from herald.web.routes import router as web_router
from herald.webhooks.api import router as webhooks_router

API_PREFIX = "/api/v1"

DESCRIPTION = """
Herald publishes a post to many channels, now or at an exact time, and shows the state
of every delivery. Sign in with `POST /api/v1/auth/login`, then send
`Authorization: Bearer <access_token>` (or a personal token from `POST /api/v1/auth/tokens`).
Every error is RFC 9457 `application/problem+json`.
"""


class RequestIdMiddleware:
    """Gives each HTTP request an id (the client's X-Request-ID, or a new one) in
    ``request.state.request_id`` and the answer's X-Request-ID header. Plain ASGI, as
    :class:`~herald.core.metrics.MetricsMiddleware` and for the same reason."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Herald",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        # Served by herald.web.routes.mount_docs from Herald's own assets, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(ReplayOnLostConnection)
    # After the replay middleware, so the body limit sits outside it and is checked first.
    install_limits(app)  # before the routers: each route takes the app's dependencies
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: the id is set before anything runs

    # Each feature router straight on the app, not under one /api/v1 router: FastAPI matches
    # an included router's routes again at each level it is nested in, per request.
    for router in (
        health_router,
        auth_router,
        users_router,
        platforms_router,
        channels_router,
        posts_router,
        media_router,
        publish_router,
        review_router,
        schedule_posts_router,
        schedule_router,
        publications_router,
        tasks_router,
        sources_router,
        source_items_router,
        source_tasks_router,
        research_router,
        providers_router,
        jobs_router,
        backups_router,
        events_router,
        *slots_routers,
        *agents_routers,
        generate_router,
        webhooks_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    if not get_settings().metrics_port:
        # Else `herald api` serves it on HERALD_METRICS_PORT only (create_metrics_app).
        app.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(web_router)
    mount_static(app)
    mount_docs(app)

    install_openapi(app)
    return app


def serve() -> FastAPI:
    """The app as one of several `herald api` worker processes serves it
    (HERALD_API_WORKERS): built, logging configured, start-up's heap frozen, the
    collector set for serving (:func:`herald.core.heap.serve_requests`)."""
    from herald.core import heap  # noqa: PLC0415 - start-up
    from herald.core.logging import configure_logging  # noqa: PLC0415 - start-up

    configure_logging(get_settings().log_level)
    app = create_app()
    heap.freeze()
    heap.serve_requests()
    return app
