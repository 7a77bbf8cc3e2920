"""Live events: publish a workspace's state changes, and read them back as a stream.

Why the pipelined publisher stays: wall time. Waiting for each event's answer (redis-py's
``Script``) adds a round trip per event: 1.3-2.8 ms more wall time per delivery (10-25 %
of a serial delivery's), for 1-7 % of its CPU (``python -m bench.machinery_cost``, 3
runs, "events unpipelined"). ``tests/events`` pins the redis-py connection calls it
uses. The Lua script is for correctness, not speed: it records each entry's predecessor
("prev") in the same atomic step, which is how a reader knows exactly whether it missed
anything.

The database is the truth; an event only tells a client, quickly, what to re-read.

**Publishing** (sync: services, tasks, after-commit hooks) appends one entry to the Redis
stream ``herald:events:<workspace_id>`` on the broker's Redis and never raises. Each
process keeps one connection and **pipelines** its appends: a publish writes the command
and returns without waiting for Redis's answer, and the answers are read later, before
the next publish or by :func:`flush_events`. Redis runs a connection's commands in the
order it receives them, so a workspace's events keep their order, and a delivery does not
sit out a round trip per event (on a busy host, Redis's turn on the CPU) between its
claim and its request to the platform. With Redis unreachable the event is dropped with
a warning, publishing is skipped for a moment (so a dead Redis costs milliseconds, not a
timeout per event), and the next publish that gets through adds a ``reset`` entry to
every workspace that lost one: connected clients learn to re-read instead of silently
missing a change. An append whose answer is an error, or is lost with the connection,
counts as lost the same way.

**Retention:** every XADD trims entries older than :data:`RETENTION` (approximate
trimming, which only ever removes older entries), so a client that reconnects within
10 minutes misses nothing; :data:`MAX_EVENTS` caps a workspace's stream during a burst.

**Reading:** a stream entry id is the SSE ``id:``. :func:`open_stream` resumes after the
id a client last saw, or, when entries after it may have been trimmed (or Redis lost
the stream), flags ``missed`` so the client is told to re-read (a ``reset`` event).

Errors::

    HeraldError
    ├── InvalidInput        422: a Last-Event-ID that is not a stream id
    └── EventsUnavailable   503: the broker is not Redis, or Redis does not answer
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, cast

import anyio
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from herald.core.errors import HeraldError, InvalidInput
from herald.core.settings import get_settings
from herald.core.tx import Tx, after_commit

log = logging.getLogger(__name__)

StreamId = tuple[int, int]
Fields = dict[FieldT, EncodableT]  # an event as stored: {"kind": ..., "data": <JSON text>}

STREAM_PREFIX = "herald:events:"
# Kept at least this long (the promise to clients is 10 minutes).
RETENTION = timedelta(minutes=15)
_RETENTION_MS = int(RETENTION.total_seconds() * 1000)
# A burst beyond this many events in a workspace trims early; readers then get a reset.
MAX_EVENTS = 20_000
# Longest XREAD BLOCK before the endpoint sends a keepalive comment.
KEEPALIVE_SECONDS = 15.0
READ_BATCH = 100
# After Redis failed to answer, publishing drops events without trying for this long.
PAUSE_AFTER_FAILURE = 1.0
# Appends sent without their answer read before publishing waits for the oldest answer.
MAX_UNANSWERED = 256

RESET = "reset"
RESET_DATA = json.dumps({"reason": "events were missed; re-read state"})
_RESET_FIELDS: Fields = {"kind": RESET, "data": RESET_DATA}

# Appends one event per key, in one command. Each entry records the id of the entry
# before it ("prev"), so a reader can tell exactly whether anything after its position
# was trimmed: only if the oldest entry left has a "prev" newer than that position.
# Entries older than the retention are trimmed by Redis's own clock, so a skewed clock on
# this host cannot trim too much. KEYS: a stream per event; ARGV: retention (ms), max
# length, then kind and data per event.
_APPEND = """
local now = redis.call('TIME')
local min_id = string.format('%d-0', tonumber(now[1]) * 1000 - tonumber(ARGV[1]))
local ids = {}
for i, key in ipairs(KEYS) do
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local prev = '0-0'
  if #last > 0 then prev = last[1][1] end
  ids[i] = redis.call('XADD', key, 'MINID', '~', min_id, '*',
                      'kind', ARGV[2 * i + 1], 'data', ARGV[2 * i + 2], 'prev', prev)
  redis.call('XTRIM', key, 'MAXLEN', '~', ARGV[2])
end
return ids
"""

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


def stream_key(workspace_id: uuid.UUID) -> str:
    return f"{STREAM_PREFIX}{workspace_id}"


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
        _publisher(url).send(workspace_id, fields)


def flush_events() -> None:
    """Wait until Redis has answered every event this process sent (at most about
    ``HERALD_REDIS_TIMEOUT_SECONDS``); a lost one is remembered for a ``reset``, as in publishing.

    Publishing does not need it. It is for a reader in this process that must see its
    own events in the stream (tests), and for a process about to exit."""
    for publisher in list(_PUBLISHERS.values()):
        publisher.flush()


_PUBLISHERS: dict[str, _Publisher] = {}


def _publisher(url: str) -> _Publisher:
    publisher = _PUBLISHERS.get(url)
    if publisher is None:  # setdefault is atomic: racing threads end up with one
        publisher = _PUBLISHERS.setdefault(url, _Publisher(url))
    return publisher


# A forked child (Celery's prefork pool) must not use, or read the answers on, its
# parent's connection, nor wait on a lock another thread held at the fork.
os.register_at_fork(after_in_child=_PUBLISHERS.clear)
atexit.register(flush_events)


class _Wire(Protocol):
    """What publishing uses of a redis-py connection (which is not typed)."""

    def connect(self) -> None: ...
    def send_command(self, *args: EncodableT) -> None: ...
    def can_read(self, timeout: float = 0) -> bool: ...
    def read_response(self) -> Any: ...
    def disconnect(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Sent:
    """An append Redis has not answered yet: the workspaces it carried, for a reset."""

    workspaces: frozenset[uuid.UUID]
    kind: str


class _Publisher:
    """This process's pipelined connection to one Redis, and the workspaces it let down.

    Thread-safe (the API's threadpool publishes concurrently): one lock orders the
    commands on the connection and the reading of their answers.
    """

    def __init__(self, url: str) -> None:
        # No retries: redis-py's default retries a refused connect for seconds. The
        # timeouts bound a Redis that takes the connection and never answers (stopped).
        timeout = get_settings().redis_timeout_seconds
        self._pool = redis.ConnectionPool.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._connection: _Wire | None = None
        self._sha: str | None = None
        self._unanswered: deque[_Sent] = deque()
        self._lock = threading.Lock()
        self._missed: set[uuid.UUID] = set()
        self._paused_until = 0.0

    def send(self, workspace_id: uuid.UUID, fields: Fields) -> None:
        with self._lock:
            if time.monotonic() < self._paused_until:
                self._missed.add(workspace_id)
                return
            try:
                connection, sha = self._ready()
            except Exception as exc:  # whatever happened, the caller's work must go on
                self._lost(exc, frozenset({workspace_id}), str(fields["kind"]))
                return
            # Reset markers first: a client reads "re-read", then the new event.
            missed, self._missed = self._missed, set()
            batch = [(lost, _RESET_FIELDS) for lost in sorted(missed)] + [(workspace_id, fields)]
            sent = _Sent(frozenset(ws for ws, _ in batch), str(fields["kind"]))
            try:
                connection.send_command(
                    "EVALSHA",
                    sha,
                    len(batch),
                    *(stream_key(ws) for ws, _ in batch),
                    _RETENTION_MS,
                    MAX_EVENTS,
                    *(v for _, f in batch for v in (f["kind"], f["data"])),
                )
            except Exception as exc:
                self._lost(exc, sent.workspaces, sent.kind)
                return
            self._unanswered.append(sent)

    def flush(self) -> None:
        with self._lock:
            if self._connection is None or not self._unanswered:
                return
            try:
                self._read_answers(self._connection, wait=True)
            except Exception as exc:
                self._lost(exc)

    def _ready(self) -> tuple[_Wire, str]:
        """The connection, with the answers that already arrived read, and the script's
        SHA (loaded on a new connection). Raises whatever the connection raised."""
        connection = self._connection
        if connection is not None:
            try:
                self._read_answers(connection, wait=len(self._unanswered) >= MAX_UNANSWERED)
                if not self._unanswered and connection.can_read(0):
                    raise redis.ConnectionError("data on the connection that nothing asked for")
            except redis.ConnectionError as exc:
                # Closed under us (Redis restarted, or dropped an idle client): what it
                # had not answered is lost, but a new connection may well work.
                if self._unanswered:
                    self._lost(exc, pause=False)
                else:
                    self._disconnect()
                connection = None
        if connection is None:
            connection = cast(_Wire, self._pool.make_connection())
            self._connection = connection
            connection.connect()
        if self._sha is None:
            self._read_answers(connection, wait=True)
            connection.send_command("SCRIPT", "LOAD", _APPEND)
            answer = connection.read_response()
            self._sha = answer.decode() if isinstance(answer, bytes) else str(answer)
        return connection, self._sha

    def _read_answers(self, connection: _Wire, *, wait: bool) -> None:
        """Read Redis's answers to earlier appends: those already here, or all of them."""
        while self._unanswered and (wait or connection.can_read(0)):
            try:
                connection.read_response()
            except redis.ResponseError as exc:  # Redis refused that one append
                sent = self._unanswered.popleft()
                self._missed |= sent.workspaces
                if isinstance(exc, NoScriptError):
                    self._sha = None  # the script cache was flushed: load it again
                log.warning(
                    "live event %s dropped: Redis refused it (%s); its clients will be "
                    "told to re-read",
                    sent.kind,
                    exc,
                )
            else:
                self._unanswered.popleft()

    def _lost(
        self,
        exc: Exception,
        workspaces: frozenset[uuid.UUID] = frozenset(),
        kind: str = "",
        *,
        pause: bool = True,
    ) -> None:
        """The connection failed: nothing unanswered on it is known to have arrived, and
        neither did the event being sent (``workspaces``, ``kind``), if any."""
        lost = {ws for sent in self._unanswered for ws in sent.workspaces} | workspaces
        self._missed |= lost
        self._disconnect()
        if pause:
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        log.warning(
            "live event%s dropped: Redis did not take it (%s); the clients of %d "
            "workspace(s) will be told to re-read",
            f" {kind}" if kind else "s",
            exc,
            len(lost),
        )

    def _disconnect(self) -> None:
        self._unanswered.clear()
        self._sha = None
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None


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
