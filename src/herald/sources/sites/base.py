"""What the three site clients share: the answers they give, their one error, the pacing
that keeps Herald under each site's rate limit, and the one way a request is sent.

Every request goes through the guarded client (``herald.core.http.shared_client()``): a
forum URL is the user's, and even the fixed sites' hosts are settings-free constants
that tests point at local fakes.

**Pacing.** :data:`PACER` spaces requests to one site's host at least the site's
interval apart (each site module says its limit and where it is documented) for all of
Herald: the next free slot of each host is kept in the broker's Redis, so every worker
process on every host takes its turn from the same line (a site's limit is per IP or
per client, not per process); without Redis, each process paces alone. A
``Retry-After`` (seconds or an HTTP date), or a rate-limit header saying nothing is
left, holds that host for the time the site asked.

**Retries.** A timeout, a connection failure, a 429 or a 5xx is tried again, up to
``ATTEMPTS`` times in all, after an exponential back-off (1, 2, 4 s... capped at
``MAX_BACKOFF``) or the site's ``Retry-After`` when longer. A site asking for more than
``MAX_WAIT`` is not waited for inside one request: the :class:`SiteError` says so
(``retryable``, with ``hint_seconds``) and the caller decides. Anything else (a 4xx, an
answer that is not the site's JSON, an address the guarded client refuses) fails at
once.

Time is read and spent through :func:`set_pacing` (``time.time``, shared by every host,
and ``time.sleep`` by default) so tests replace waiting by a record of the waits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from herald.adapters.http import error_message, is_retryable_status, retry_after_seconds
from herald.core.errors import HeraldError
from herald.core.http import OutgoingRequestRefused, shared_client
from herald.core.settings import get_settings
from herald.events.service import redis_url
from herald.sources.entries import Entry

log = logging.getLogger(__name__)

ATTEMPTS = 4
BASE_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# Longest wait a site may ask for that is spent inside one request; past it the caller
# (the monitor's next check, the research job's next page) decides.
MAX_WAIT = 120.0
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class SiteError(HeraldError):
    """A site's answer could not be had or read, after the retries it deserved.

    ``retryable``: trying again later may work (429, 5xx, timeouts); ``status``: the
    site's HTTP status, None when it never answered; ``hint_seconds``: how long the site
    asked to be left alone, if it said."""

    status_code = 502
    slug = "site-error"

    def __init__(
        self,
        message: str,
        retryable: bool = False,
        status: int | None = None,
        *,
        hint_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.hint_seconds = hint_seconds


@dataclass(frozen=True)
class SiteRead:
    """One read of a source of a site kind: the newest items, newest first."""

    entries: list[Entry]
    status: int
    title: str | None
    hint_seconds: int | None
    wire_bytes: int
    elapsed_seconds: float
    content_type: str = "application/json"


@dataclass(frozen=True)
class SitePage:
    """One page of a search. ``next_cursor`` is None when there is no next page, or when
    this page already reached items older than ``since`` (those are left out)."""

    entries: list[Entry]
    next_cursor: str | None
    status: int
    wire_bytes: int
    elapsed_seconds: float
    title: str | None = None


# --- where the fixed sites live ------------------------------------------------------------


@dataclass(frozen=True)
class SiteEndpoints:
    """The fixed sites' base URLs (a Discourse forum's is the user's own)."""

    reddit: str = "https://www.reddit.com"
    reddit_oauth: str = "https://oauth.reddit.com"
    hackernews: str = "https://hn.algolia.com"  # Algolia's Hacker News search API
    hackernews_items: str = "https://news.ycombinator.com"  # where an item's page lives


_endpoints = SiteEndpoints()


def endpoints() -> SiteEndpoints:
    return _endpoints


def set_endpoints(value: SiteEndpoints | None) -> None:
    """Point the fixed sites elsewhere (tests: local fakes); ``None`` restores them."""
    global _endpoints  # noqa: PLW0603
    _endpoints = value or SiteEndpoints()


# --- time, pacing ------------------------------------------------------------------------

_now: Callable[[], float] = time.time
_sleep: Callable[[float], None] = time.sleep


def set_pacing(
    now: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None
) -> None:
    """Replace the clock (seconds, shared by every process: wall time by default) and the
    wait used by pacing and back-off (tests); ``None`` restores ``time.time`` /
    ``time.sleep``."""
    global _now, _sleep  # noqa: PLW0603
    _now = now or time.time
    _sleep = sleep or time.sleep


def pause(seconds: float) -> None:
    """Wait, through the same clock as pacing (tests record it instead)."""
    if seconds > 0:
        _sleep(seconds)


class LocalPacer:
    """Spaces requests to each key ``interval`` seconds apart within this process, across
    threads: each caller reserves the next free slot under the lock, then waits outside it."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, interval: float, now: float) -> float:
        """Take the key's next slot; the seconds from ``now`` until it."""
        with self._lock:
            start = max(now, self._next.get(key, 0.0))
            self._next[key] = start + interval
        return start - now

    def hold(self, key: str, until: float) -> None:
        with self._lock:
            self._next[key] = max(self._next.get(key, 0.0), until)

    def reset(self) -> None:
        with self._lock:
            self._next.clear()


# The next free slot of a key, kept in Redis so that every worker process on every host
# takes its turn from the same line. KEYS[1] the key; ARGV: now, interval (seconds).
_RESERVE = """
local now = tonumber(ARGV[1])
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local free = start + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.6f', free), 'PX', math.ceil((free - now) * 1000) + 1000)
return string.format('%.6f', start - now)
"""
# KEYS[1] the key; ARGV: now, until (seconds): nothing before ``until``.
_HOLD = """
local now = tonumber(ARGV[1])
local free = math.max(tonumber(ARGV[2]), tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], string.format('%.6f', free), 'PX', math.ceil((free - now) * 1000) + 1000)
return 1
"""
PACE_PREFIX = "herald:pace:"
# After Redis failed, how long this process paces alone before trying it again.
_REDIS_PAUSE = 30.0


class Pacer:
    """Requests to each key (a site's host) at least ``interval`` seconds apart, for all
    of Herald: the slots live in the broker's Redis (one Lua call per request), shared by
    every worker process on every host, since a site's limit is per IP or per client,
    not per process. Without a Redis broker, or while it fails, this process paces on
    its own (:class:`LocalPacer`), and says so in the log once."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._local = LocalPacer()
        self._client: tuple[int, redis.Redis] | None = None
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _redis(self) -> redis.Redis | None:
        if time.monotonic() < self._paused_until:
            return None
        url = self._url if self._url is not None else redis_url(get_settings().effective_broker_url)
        if url is None:
            return None
        with self._lock:
            if self._client is None or self._client[0] != os.getpid():
                timeout = get_settings().redis_timeout_seconds
                client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=timeout,
                    socket_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                )
                self._client = (os.getpid(), client)
            return self._client[1]

    def _shared(self, script: str, key: str, *args: float) -> Any:
        client = self._redis()
        if client is None:
            return None
        try:
            return client.eval(script, 1, PACE_PREFIX + key, *(f"{a:.6f}" for a in args))
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() >= self._paused_until:
                log.warning("pacing sites in this process alone for now: Redis failed (%s)", exc)
            self._paused_until = time.monotonic() + _REDIS_PAUSE
            return None

    def wait(self, key: str, interval: float) -> float:
        """Wait for this key's next slot; returns the seconds waited."""
        now = _now()
        shared = self._shared(_RESERVE, key, now, interval)
        delay = float(shared) if shared is not None else self._local.reserve(key, interval, now)
        if delay > 0:
            _sleep(delay)
        return max(delay, 0.0)

    def hold(self, key: str, seconds: float) -> None:
        """No request to this key for ``seconds`` from now (the site asked)."""
        now = _now()
        if self._shared(_HOLD, key, now, now + seconds) is None:
            self._local.hold(key, now + seconds)

    def reset(self) -> None:
        """Forget every slot (tests)."""
        self._local.reset()
        client = self._redis()
        if client is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                for name in client.scan_iter(match=PACE_PREFIX + "*"):
                    client.delete(name)


PACER = Pacer()


# --- one request --------------------------------------------------------------------------


@dataclass
class Answer:
    """A site's JSON answer and what it cost."""

    data: Any
    status: int
    content_type: str
    wire_bytes: int
    elapsed_seconds: float
    hint_seconds: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def read(self, entries: list[Entry], title: str | None) -> SiteRead:
        """This answer as a source's read: its entries, with what the answer cost."""
        return SiteRead(
            entries,
            self.status,
            title,
            self.hint_seconds,
            self.wire_bytes,
            self.elapsed_seconds,
            self.content_type,
        )


def backoff(attempt: int) -> float:
    """The wait before try ``attempt + 1`` (attempt counts from 1)."""
    return float(min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (attempt - 1)))


def _hint(response: httpx.Response) -> float | None:
    """How long the site asked us to wait: ``Retry-After`` on any answer, or the reset of
    a rate-limit window with nothing left in it (Reddit's ``X-Ratelimit-*``)."""
    if response.headers.get("Retry-After"):
        return retry_after_seconds(response)
    remaining = response.headers.get("X-Ratelimit-Remaining", "").strip()
    try:
        exhausted = remaining != "" and float(remaining) < 1
    except ValueError:
        exhausted = False
    if exhausted or response.status_code == 429:
        return retry_after_seconds(response)
    return None


def _failure(site: str, response: httpx.Response) -> SiteError:
    status = response.status_code
    hint = _hint(response)
    hint_seconds = round(hint) if hint is not None else None
    if response.is_redirect:
        where = response.headers.get("Location", "")
        return SiteError(
            f"{site} answered {status}, redirecting to {where or 'elsewhere'}: check the "
            "source's URL or name",
            status=status,
        )
    words = error_message(response)
    if status in (401, 403):
        return SiteError(
            f"{site} refused access ({status}: {words}): the credentials are wrong, or it "
            "is private",
            status=status,
        )
    if status == 404:
        return SiteError(f"{site} has no such page (404): check the source", status=status)
    return SiteError(
        f"{site} answered {status}: {words}",
        retryable=is_retryable_status(status),
        status=status,
        hint_seconds=hint_seconds,
    )


def get_json(
    site: str,
    url: str,
    *,
    interval: float,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    """One JSON request to a site, paced, retried as the module docstring says."""
    client = shared_client()
    key = f"{site}:{httpx.URL(url).host}"
    started = _now()
    wire = 0
    attempt = 0
    while True:
        attempt += 1
        PACER.wait(key, interval)
        request = client.build_request(
            method,
            url,
            params=dict(params or {}),
            headers={"Accept": "application/json", **(headers or {})},
            data=dict(data) if data else None,
            timeout=TIMEOUT,
        )
        failure: SiteError
        wait: float | None = None
        try:
            response = client.send(request, auth=httpx.BasicAuth(*auth) if auth else None)
        except OutgoingRequestRefused as exc:
            raise SiteError(f"{site}: {exc.message}") from exc
        except httpx.TimeoutException:
            failure = SiteError(f"{site} did not answer in time", retryable=True)
        except httpx.TransportError as exc:
            failure = SiteError(
                f"{site} could not be reached ({type(exc).__name__}: {exc})", retryable=True
            )
        else:
            wire += response.num_bytes_downloaded
            hint = _hint(response)
            if hint is not None:
                PACER.hold(key, min(hint, MAX_WAIT))
            if response.status_code == 200:
                return _read(site, response, started, wire, hint)
            failure = _failure(site, response)
            wait = hint
        if not failure.retryable or attempt >= ATTEMPTS:
            raise failure
        if wait is not None and wait > MAX_WAIT:
            raise failure
        # The pacer holds the host for the site's own wait; back off on top of it.
        _sleep(backoff(attempt))


def _read(
    site: str, response: httpx.Response, started: float, wire: int, hint: float | None
) -> Answer:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        data = response.json()
    except ValueError:
        raise SiteError(
            f"{site} answered {content_type or 'something'} that is not JSON: check the "
            "source's URL",
            status=response.status_code,
        ) from None
    return Answer(
        data=data,
        status=response.status_code,
        content_type=content_type,
        wire_bytes=wire,
        elapsed_seconds=_now() - started,
        hint_seconds=round(hint) if hint is not None else None,
        headers=dict(response.headers),
    )


# --- reading answers ---------------------------------------------------------------------


def shape_error(site: str, what: str) -> SiteError:
    return SiteError(f"{site} answered JSON without {what}: is this the right address?")


def from_epoch(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def from_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
