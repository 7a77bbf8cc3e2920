"""HTTP plumbing every HTTP adapter shares: one client shape, one error mapping."""

from __future__ import annotations

import email.utils
import math
import os
import threading
import time
from datetime import UTC, datetime
from http.cookiejar import CookieJar
from typing import Any

import httpx

from herald import __version__
from herald.adapters.base import AmbiguousError, AuthError, PermanentError, RetryableError

USER_AGENT = f"Herald/{__version__} (+https://herald.dev)"
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_MESSAGE = 500


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing. One client serves every channel of every
    workspace in a process, so a cookie one platform sets must not ride along on the next
    request to that host made for someone else. No adapter logs in with cookies."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Any) -> None:
        return None


class _Cookieless(httpx.Cookies):
    """httpx's cookies over :class:`_NoCookies`, without reading ``Set-Cookie`` at all:
    httpx wraps every answer and its request in urllib objects for the jar first, about
    30 µs a request spent on a jar that keeps nothing."""

    def __init__(self) -> None:
        super().__init__(_NoCookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.Client):
    """An ``httpx.Client`` that keeps no cookies (see :class:`_NoCookies`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _Cookieless()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("Herald's HTTP client keeps no cookies")


def make_client(*, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> httpx.Client:
    # Redirects are not followed: a platform API never needs one for a write, and a
    # redirect is how a user-supplied URL would be bounced to an internal address.
    return _Client(
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


_shared: tuple[int, httpx.Client] | None = None
_shared_lock = threading.Lock()


def shared_client() -> httpx.Client:
    """One pooled client per process: building one costs ~20 ms (the CA bundle is loaded
    into a new SSL context each time), more than the request itself. Pass each request's
    timeout with ``build_request(..., timeout=...)``. Made anew after a fork."""
    global _shared  # noqa: PLW0603
    pid = os.getpid()
    with _shared_lock:
        if _shared is None or _shared[0] != pid:
            _shared = (pid, make_client())
        return _shared[1]


def _delay(seconds: float) -> float | None:
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _until(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _delay(when.timestamp() - now)


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta or HTTP date) or a rate-limit reset header."""
    now = time.time() if now is None else now
    value = response.headers.get("Retry-After", "").strip()
    if value:
        if value.isascii() and value.isdigit():
            return float(value)
        seconds = _until(value, now)
        if seconds is not None:
            return seconds
    for header in ("X-RateLimit-Reset", "X-Rate-Limit-Reset", "RateLimit-Reset"):
        reset = response.headers.get(header, "").strip()
        if not reset:
            continue
        try:
            number = float(reset)
        except ValueError:
            seconds = _until(reset, now)
        else:
            # Epoch seconds if it looks like a timestamp, otherwise seconds from now.
            seconds = _delay(number - now if number > 1_000_000_000 else number)
        if seconds is not None:
            return seconds
    return None


_MESSAGE_KEYS = ("error_description", "detail", "message", "msg", "error", "errors", "title")


def _words(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            found = _words(value.get(key))
            if found:
                return found
        return None
    if isinstance(value, list):
        return "; ".join(w for w in map(_words, value) if w) or None
    return None


def error_message(response: httpx.Response) -> str:
    """The platform's own words, as short as they come."""
    try:
        data: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:MAX_MESSAGE] or response.reason_phrase
    return (_words(data) or str(data))[:MAX_MESSAGE]


def raise_for_status(response: httpx.Response, *, platform: str) -> None:
    """Map an HTTP error answer to the adapter error it means."""
    status = response.status_code
    if status < 300:
        return
    message = f"{platform} answered {status}: {error_message(response)}"
    if status in (401, 403):
        raise AuthError(message)
    if status in RETRYABLE_STATUS or (status >= 500 and status not in (501, 505)):
        raise RetryableError(message, retry_after=retry_after_seconds(response))
    raise PermanentError(message)


def transmit(
    client: httpx.Client, request: httpx.Request, *, platform: str, may_post: bool = True
) -> httpx.Response:
    """Send one request and return the answer whatever its status (for platforms whose
    error body, not the status, says what went wrong).

    Failures before the request left are retryable. A lost answer after it left is
    ambiguous when the call ``may_post``; a login, lookup or upload posts nothing, so
    there it is retryable too.
    """
    try:
        return client.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise RetryableError(f"could not reach {platform}: {exc!s}") from exc
    except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        if not may_post:
            raise RetryableError(
                f"{platform} did not answer {request.url.path} ({type(exc).__name__})"
            ) from exc
        raise AmbiguousError(
            f"{platform} did not answer after the request was sent ({type(exc).__name__}); "
            "it may or may not have been posted"
        ) from exc
    except httpx.HTTPError as exc:
        raise RetryableError(f"{platform}: {exc!s}") from exc


def send(
    client: httpx.Client, request: httpx.Request, *, platform: str, may_post: bool = True
) -> httpx.Response:
    """:func:`transmit`, then map an error status to the adapter error it means."""
    response = transmit(client, request, platform=platform, may_post=may_post)
    raise_for_status(response, platform=platform)
    return response
