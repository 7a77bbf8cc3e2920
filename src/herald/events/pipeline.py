"""Live events' pipelined Redis client: how events are stored in Redis, and this process's
connections that append them (:mod:`herald.events.service` is the API that publishes and
reads them).

Why the pipelined publisher stays: wall time. Waiting for each event's answer (redis-py's
``Script``) adds a round trip per event: 1.3-2.8 ms more wall time per delivery (10-25 %
of a serial delivery's), for 1-7 % of its CPU (``python -m bench.machinery_cost``, 3
runs, "events unpipelined"). ``tests/events`` pins the redis-py connection calls it
uses. The Lua script is for correctness, not speed: it records each entry's predecessor
("prev") in the same atomic step, which is how a reader knows exactly whether it missed
anything.

Each process keeps one connection per Redis and **pipelines** its appends: a send writes
the command and returns without waiting for Redis's answer, and the answers are read
later, before the next send or by :func:`flush_events`. Redis runs a connection's commands
in the order it receives them, so a workspace's events keep their order. With Redis
unreachable the event is dropped with a warning, sending is skipped for a moment (so a
dead Redis costs milliseconds, not a timeout per event), and the next send that gets
through adds a ``reset`` entry to every workspace that lost one. An append whose answer
is an error, or is lost with the connection, counts as lost the same way.

**Retention:** every XADD trims entries older than :data:`RETENTION` (approximate
trimming, which only ever removes older entries), so a client that reconnects within
10 minutes misses nothing; :data:`MAX_EVENTS` caps a workspace's stream during a burst.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from herald.core.settings import get_settings

log = logging.getLogger(__name__)

Fields = dict[FieldT, EncodableT]  # an event as stored: {"kind": ..., "data": <JSON text>}

STREAM_PREFIX = "herald:events:"
# Kept at least this long (the promise to clients is 10 minutes).
RETENTION = timedelta(minutes=15)
_RETENTION_MS = int(RETENTION.total_seconds() * 1000)
# A burst beyond this many events in a workspace trims early; readers then get a reset.
MAX_EVENTS = 20_000
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


def stream_key(workspace_id: uuid.UUID) -> str:
    return f"{STREAM_PREFIX}{workspace_id}"


def flush_events() -> None:
    """Wait until Redis has answered every event this process sent (at most about
    ``HERALD_REDIS_TIMEOUT_SECONDS``); a lost one is remembered for a ``reset``, as in publishing.

    Publishing does not need it. It is for a reader in this process that must see its
    own events in the stream (tests), and for a process about to exit."""
    for client in list(_PUBLISHERS.values()):
        client.flush()


_PUBLISHERS: dict[str, _Publisher] = {}


def publisher(url: str) -> _Publisher:
    """This process's pipelined client for the Redis at ``url``."""
    found = _PUBLISHERS.get(url)
    if found is None:  # setdefault is atomic: racing threads end up with one
        found = _PUBLISHERS.setdefault(url, _Publisher(url))
    return found


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
