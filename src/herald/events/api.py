"""``GET /api/v1/events``: the caller's workspace's live events, as server-sent events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import redis
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask

from herald.core.db import read_scope
from herald.core.deps import bearer_scheme
from herald.core.errors import Unauthorized, problem_responses
from herald.events import service
from herald.users.principal import Principal
from herald.users.service import authenticate

log = logging.getLogger(__name__)

# How long a browser waits before reconnecting after the stream drops.
RETRY_MS = 3000


router = APIRouter(prefix="/events", tags=["events"], responses=problem_responses(503))


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def stream_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    access_token: Annotated[
        str | None,
        Query(
            description="The bearer token, for EventSource clients that cannot send an "
            "Authorization header. Prefer the header: URLs end up in logs."
        ),
    ] = None,
) -> Principal:
    """The caller, from the header or ``?access_token=``, in a transaction of its own.

    A sync dependency, so it runs in the threadpool; the session closes before the stream
    starts, because an open transaction would hold SQLite's write lock for its life.
    """
    token = credentials.credentials if credentials is not None else access_token
    if not token:
        raise Unauthorized(
            "Sign in first: send 'Authorization: Bearer <token>', or '?access_token=<token>' "
            "from an EventSource."
        )
    with read_scope() as session:
        return authenticate(session, token)


@router.get(
    "",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "A `text/event-stream` that stays open.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def stream_events(
    request: Request,
    principal: Annotated[Principal, Depends(stream_principal)],
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event id (browsers send it when they reconnect).",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(description="Resume after this event id; the Last-Event-ID header wins."),
    ] = None,
) -> EventStreamResponse:
    """Live events of the caller's workspace, as server-sent events.

    Each event is `id: <event id>`, `event: <kind>` (`publication.state`, `job.state`,
    ...) and `data: <JSON>`; the database stays the truth, so on an event re-read what it
    names. A `: keepalive` comment comes at least every 15 seconds.

    Reconnect with the last id seen (the `Last-Event-ID` header, which browsers send by
    themselves, or `?last_event_id=`) to get the events published meanwhile: they are kept
    for at least 10 minutes. When some may be gone, an `event: reset` (`{"reason": ...}`)
    comes instead, first thing on the stream (or later, if Redis dropped events): re-read
    the state you show. The stream's first block also carries an `id:` (the current
    position), so even a client that has seen no event yet can resume without a gap.

    Browsers' `EventSource` cannot send headers: pass the token as `?access_token=<token>`
    there (prefer a personal token with an expiry; URLs end up in proxy logs).
    """
    stream = await service.open_stream(
        principal.workspace_id, last_event_id_header or last_event_id
    )
    return EventStreamResponse(
        _frames(request, stream),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Closes the Redis connection even if the client left before the stream started.
        background=BackgroundTask(stream.aclose),
    )


def _frame(event_id: str, kind: str, data: str) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"


async def _frames(request: Request, stream: service.EventStream) -> AsyncIterator[str]:
    try:
        if stream.missed:
            yield f"retry: {RETRY_MS}\n" + _frame(stream.cursor, service.RESET, service.RESET_DATA)
        else:
            # An id without data dispatches nothing but sets the client's Last-Event-ID.
            yield f"retry: {RETRY_MS}\nid: {stream.cursor}\n\n"
        while not await request.is_disconnected():
            try:
                events = await stream.read(service.KEEPALIVE_SECONDS)
            except (redis.RedisError, OSError) as exc:
                # End the stream: the client reconnects with its Last-Event-ID.
                log.warning("live events: Redis stopped answering (%s); closing the stream", exc)
                return
            if events:
                yield "".join(_frame(e.id, e.kind, e.data) for e in events)
            else:
                yield ": keepalive\n\n"
    finally:
        # Shielded: when the client leaves, this generator is being cancelled.
        with anyio.CancelScope(shield=True):
            await stream.aclose()
