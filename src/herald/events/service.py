"""Live events: publish a workspace's state changes, and read them back as a stream.

The database is the truth; an event only tells a client, quickly, what to re-read.

**Publishing** (sync: services, tasks, after-commit hooks) appends one entry to the Redis
stream ``herald:events:<workspace_id>`` on the broker's Redis and never raises: it hands
the event to this process's pipelined client (:mod:`herald.events.pipeline`, where the
stream layout, the retention and the reset after a lost event are described), so a
delivery does not sit out a round trip per event between its claim and its request to
the platform. :func:`flush_events` waits for Redis's answers (tests, a process exiting).

**Reading:** a stream entry id is the SSE ``id:``. :func:`open_stream` resumes after the
id a client last saw, or, when entries after it may have been trimmed (or Redis lost
the stream), flags ``missed`` so the client is told to re-read (a ``reset`` event).

Errors::

    HeraldError
    ├── InvalidInput        422: a Last-Event-ID that is not a stream id
    └── EventsUnavailable   503: the broker is not Redis, or Redis does not answer
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import anyio
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from herald.core.errors import HeraldError, InvalidInput
from herald.core.settings import get_settings
from herald.core.tx import Tx, after_commit
from herald.events.pipeline import (
    _APPEND,
    _RETENTION_MS,
    MAX_EVENTS,
    RESET,
    RESET_DATA,
    RETENTION,
    Fields,
    flush_events,
    publisher,
    stream_key,
)

log = logging.getLogger(__name__)

# The stream layout and flush_events live in herald.events.pipeline; served from here too,
# for the endpoint, the worker and the benchmarks that swap the pipelined send.
__all__ = [
    "KEEPALIVE_SECONDS",
    "MAX_EVENTS",
    "RESET",
    "RESET_DATA",
    "RETENTION",
    "_APPEND",
    "_RETENTION_MS",
    "Event",
    "EventStream",
    "EventsUnavailable",
    "Fields",
    "flush_events",
    "open_stream",
    "parse_event_id",
    "publish_after_commit",
    "publish_event",
    "redis_url",
    "stream_key",
]

StreamId = tuple[int, int]

# Longest XREAD BLOCK before the endpoint sends a keepalive comment.
KEEPALIVE_SECONDS = 15.0
READ_BATCH = 100
_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_U64 = 2**64


class EventsUnavailable(HeraldError):
    status_code = 503
    slug = "events-unavailable"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        super().__init__(message, headers=headers)


# --- where events live -----------------------------------------------------------------


def redis_url(broker_url: str) -> str | None:
    """redis-py's URL for the broker's Redis, or None when the broker is not Redis.

    Celery spells the embedded Redis's unix socket ``redis+socket:///path``; redis-py
    spells it ``unix:///path``.
    """
    scheme, _, rest = broker_url.partition("://")
    if scheme in ("redis", "rediss"):
        return broker_url
    if scheme == "redis+socket":
        return f"unix://{rest}"
    return None


def _events_url() -> str | None:
    return redis_url(get_settings().effective_broker_url)


# --- publishing ------------------------------------------------------------------------


def publish_event(workspace_id: uuid.UUID, kind: str, data: dict[str, Any]) -> None:
    """Send an event to the workspace's live clients now; never raises.

    ``data`` must be JSON-serialisable (UUIDs and datetimes are converted to strings).
    A no-op when the broker is not Redis.
    """
    fields = _encode(kind, data)
    if fields is not None:
        _send(workspace_id, fields)


def publish_after_commit(
    session: Tx, workspace_id: uuid.UUID, kind: str, data: dict[str, Any]
) -> None:
    """Send the event once ``session``'s transaction commits; nothing on rollback.

    ``data`` is encoded now, so later changes to the dict do not leak into the event.
    """
    fields = _encode(kind, data)
    if fields is not None:
        after_commit(session, partial(_send, workspace_id, fields))


def _json_default(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode(kind: str, data: dict[str, Any]) -> Fields | None:
    # A line break in the kind would break SSE framing; the data is one JSON line.
    if not kind or "\n" in kind or "\r" in kind:
        log.warning("live event dropped: invalid kind %r", kind)
        return None
    try:
        body = json.dumps(data, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        log.warning("live event %s dropped: data is not JSON-serialisable (%s)", kind, exc)
        return None
    return {"kind": kind, "data": body}


def _send(workspace_id: uuid.UUID, fields: Fields) -> None:
    url = _events_url()
    if url is not None:
        publisher(url).send(workspace_id, fields)


# --- reading ---------------------------------------------------------------------------


def parse_event_id(value: str) -> StreamId:
    """A stream id (``<ms>-<seq>``, or ``<ms>``) as a comparable pair; 422 if it is not one."""
    match = _ID.fullmatch(value.strip())
    if match is not None:
        ms, seq = int(match[1]), int(match[2] or 0)
        if ms < _U64 and seq < _U64:
            return ms, seq
    raise InvalidInput("Last-Event-ID must be an event id Herald sent, such as '1700000000000-0'.")


def _format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    kind: str
    data: str  # JSON text, as published


class EventStream:
    """One client's view of its workspace's events, from :func:`open_stream`.

    ``cursor`` is the id of the last event delivered (or the position the client starts
    from); ``missed`` says events after the client's Last-Event-ID may be gone.
    """

    def __init__(self, client: aioredis.Redis, key: str, cursor: str, *, missed: bool) -> None:
        self._redis = client
        self._key = key
        self.cursor = cursor
        self.missed = missed
        self._closed = False

    async def read(self, block_seconds: float) -> list[Event]:
        """The next events after the cursor, waiting up to ``block_seconds`` for one."""
        reply = await self._redis.xread(
            {self._key: self.cursor}, count=READ_BATCH, block=max(1, int(block_seconds * 1000))
        )
        assert isinstance(reply, list), "a RESP2 client answers XREAD with a list"
        events = [
            Event(str(entry_id), str(fields.get("kind", "")), str(fields.get("data", "null")))
            for _key, entries in reply
            for entry_id, fields in entries
        ]
        if events:
            self.cursor = events[-1].id
        return events

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._redis.aclose()


async def open_stream(workspace_id: uuid.UUID, last_event_id: str | None) -> EventStream:
    """Connect to the workspace's stream, positioned after ``last_event_id`` or at its end.

    Raises :class:`InvalidInput` for a malformed id and :class:`EventsUnavailable` when
    events are disabled or Redis does not answer. The caller must ``aclose()`` the stream.
    """
    position = parse_event_id(last_event_id) if last_event_id is not None else None
    url = _events_url()
    if url is None:
        scheme = get_settings().effective_broker_url.partition("://")[0]
        raise EventsUnavailable(
            f"Live events need a Redis broker, and HERALD_BROKER_URL uses {scheme}://. "
            "Everything else works; poll the API for changes instead."
        )
    # One connection of its own: XREAD BLOCK holds it. The socket timeout outlasts a block.
    timeout = get_settings().redis_timeout_seconds
    client = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        single_connection_client=True,
        socket_connect_timeout=timeout,
        socket_timeout=KEEPALIVE_SECONDS + 10,
        retry=AsyncRetry(NoBackoff(), 0),
    )
    key = stream_key(workspace_id)
    try:
        # A hung Redis answers 503 within the Redis timeout, not after the long read one.
        with anyio.fail_after(timeout):
            cursor, missed = await _starting_point(client, key, position)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await client.aclose()
        if isinstance(exc, redis.RedisError | OSError):  # TimeoutError is an OSError
            log.warning("live events unavailable: Redis does not answer (%r)", exc)
            raise EventsUnavailable(
                "Live events are unavailable: Redis does not answer. Try again shortly.",
                retry_after=5,
            ) from exc
        raise
    return EventStream(client, key, cursor, missed=missed)


async def _starting_point(
    client: aioredis.Redis, key: str, position: StreamId | None
) -> tuple[str, bool]:
    """Where to read from, and whether events after ``position`` may have been lost."""
    try:
        info: dict[str, Any] = dict(await client.xinfo_stream(key))
    except redis.ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        # Nothing was published here yet, or Redis lost it: only "from the start" is safe.
        return "0-0", position not in (None, (0, 0))
    last = parse_event_id(str(info["last-generated-id"]))
    if position is None:
        return _format_id(last), False
    if _missed(position, last, info.get("first-entry")):
        return _format_id(last), True
    return _format_id(position), False


def _missed(position: StreamId, last: StreamId, first: tuple[str, dict[str, str]] | None) -> bool:
    """Whether an entry after ``position`` is gone (trimmed, or lost by Redis)."""
    if position > last:
        return True  # an id this stream never issued: Redis lost data
    if not first:
        return position < last  # emptied by hand: whatever came after is gone
    oldest_id, oldest_fields = first
    if position >= parse_event_id(str(oldest_id)):
        return False  # everything after it is still here
    prev = oldest_fields.get("prev")
    if prev is None:
        return True
    prev_id = parse_event_id(str(prev))
    if prev_id == (0, 0):
        # The oldest entry is the stream's first: only a client that started before the
        # stream existed ("0-0") missed nothing; any other id is from a stream Redis lost.
        return position != (0, 0)
    return prev_id > position
