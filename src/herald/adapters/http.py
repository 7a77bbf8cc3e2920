"""HTTP plumbing every HTTP adapter shares: the guarded client (``herald.core.http``) and
one mapping from what can go wrong with a request to the adapter error it means.

The client itself lives in ``herald.core.http`` (every request to a user-supplied URL,
not only an adapter's, goes through it); ``make_client`` and ``shared_client`` are
re-exported here for the adapters.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from herald.adapters.base import AmbiguousError, AuthError, PermanentError, RetryableError
from herald.core.http import (
    USER_AGENT,
    AddressNotAllowed,
    ResponseTooLarge,
    make_client,
    shared_client,
)

__all__ = [
    "MAX_MESSAGE",
    "RETRYABLE_STATUS",
    "USER_AGENT",
    "error_message",
    "make_client",
    "raise_for_status",
    "retry_after_seconds",
    "send",
    "shared_client",
    "transmit",
]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_MESSAGE = 500


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

    What the guarded client refuses is permanent: an address Herald may not reach stays
    refused until someone changes the channel (or the setting), and an answer larger
    than the cap is no platform's answer to an API call (the URL leads elsewhere), so
    sending again would only fetch it again.
    """
    try:
        return client.send(request)
    except AddressNotAllowed as exc:
        raise PermanentError(f"{platform}: {exc.message}") from exc
    except ResponseTooLarge as exc:
        raise PermanentError(
            f"{platform}: {exc.message}; that is not an answer from {platform}'s API: "
            "check the channel's URL"
        ) from exc
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
