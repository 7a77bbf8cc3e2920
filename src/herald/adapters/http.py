"""HTTP plumbing every HTTP adapter shares: :class:`HttpAdapter` and its
:class:`HttpSettings` (timeouts), the guarded client (``herald.core.http``), one mapping
from what can go wrong with a request to the adapter error it means, and the reading of
answers that platforms word alike.

The client itself lives in ``herald.core.http`` (every request to a user-supplied URL,
not only an adapter's, goes through it); ``make_client`` and ``shared_client`` are
re-exported here for the adapters.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, Field

from herald.adapters import base
from herald.core.clock import utcnow
from herald.core.http import (
    USER_AGENT,
    AddressNotAllowed,
    ResponseTooLarge,
    make_client,
    shared_client,
)

__all__ = [
    "MAX_MESSAGE",
    "USER_AGENT",
    "HttpAdapter",
    "HttpSettings",
    "RateObservation",
    "api_json",
    "error_message",
    "is_retryable_status",
    "make_client",
    "raise_for_status",
    "raise_with_message",
    "rate_observation",
    "retry_after_seconds",
    "send",
    "shared_client",
    "transmit",
]

log = logging.getLogger(__name__)
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_MESSAGE = 500


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status (or a platform's error code in HTTP's numbering) means
    "nothing was done, try again later": timeouts, too early, too many requests, and
    server errors other than "not implemented" and "version not supported"."""
    return status in _RETRYABLE_STATUS or (status >= 500 and status not in (501, 505))


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


@dataclass(frozen=True)
class RateObservation:
    """What one answer says about the platform's rate limit: the tokens left, seconds
    until the window resets, seconds to wait after a 429, Discord's bucket id, and the
    limit itself (``X-RateLimit-Limit``)."""

    remaining: float | None = None
    reset_in: float | None = None
    retry_after: float | None = None
    bucket: str | None = None
    limit: float | None = None


def _first(response: httpx.Response, *names: str) -> str | None:
    for name in names:
        value: str = response.headers.get(name, "").strip()
        if value:
            return value
    return None


def _body_retry_after(response: httpx.Response) -> float | None:
    """A 429's wait in its body: Telegram's ``parameters.retry_after``, Discord's
    ``retry_after``, Matrix's ``retry_after_ms``."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    parameters = data.get("parameters")
    for value, unit in (
        (parameters.get("retry_after") if isinstance(parameters, dict) else None, 1.0),
        (data.get("retry_after"), 1.0),
        (data.get("retry_after_ms"), 1000.0),  # Matrix's M_LIMIT_EXCEEDED
    ):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _delay(float(value) / unit)
    return None


def rate_observation(response: httpx.Response, now: float | None = None) -> RateObservation | None:
    """The rate-limit state an answer reports (``X-RateLimit-*`` as Mastodon, X and
    Discord send them, ``ratelimit-*`` as Bluesky's PDS does, Retry-After or the body of
    a 429), or None when it reports none."""
    now = time.time() if now is None else now
    remaining: float | None = None
    if (
        text := _first(
            response, "X-RateLimit-Remaining", "X-Rate-Limit-Remaining", "RateLimit-Remaining"
        )
    ) is not None:
        try:
            remaining = max(0.0, float(text))
        except ValueError:
            remaining = None
    reset_in: float | None = None
    if (after := _first(response, "X-RateLimit-Reset-After")) is not None:
        try:
            reset_in = _delay(float(after))
        except ValueError:
            reset_in = None
    if reset_in is None:
        reset_in = retry_after_seconds(
            httpx.Response(
                200,
                headers={
                    name: value
                    for name, value in response.headers.items()
                    if name.lower() != "retry-after"
                },
            ),
            now,
        )
    retry_after: float | None = None
    if response.status_code == 429:
        retry_after = retry_after_seconds(response, now)
        if retry_after is None:
            retry_after = _body_retry_after(response)
    bucket = _first(response, "X-RateLimit-Bucket")
    limit: float | None = None
    if (
        text := _first(response, "X-RateLimit-Limit", "X-Rate-Limit-Limit", "RateLimit-Limit")
    ) is not None:
        try:
            limit = float(text) if float(text) >= 1 else None
        except ValueError:
            limit = None
    if remaining is None and retry_after is None and reset_in is None:
        return None
    return RateObservation(remaining, reset_in, retry_after, bucket, limit)


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
        raise base.AuthError(message)
    if is_retryable_status(status):
        raise base.RetryableError(message, retry_after=retry_after_seconds(response))
    raise base.PermanentError(message)


def raise_with_message(response: httpx.Response, *, platform: str, message: str) -> None:
    """Classify an error answer as :func:`raise_for_status` does, with our own message
    (for platforms whose error bodies say more than a message: WordPress, Ghost)."""
    location = httpx.URL(response.headers.get("Location", ""))
    if response.is_redirect and location.host:
        # Usually http:// for https://, or a www. missing: say where the site lives now.
        message += (
            f" (the site redirects to {location.scheme}://{location.host}; "
            "use that address in the channel's URL)"
        )
    try:
        raise_for_status(response, platform=platform)
    except base.RetryableError as exc:
        raise base.RetryableError(message, retry_after=exc.retry_after) from None
    except base.AdapterError as exc:
        raise type(exc)(message) from None


def api_json(
    response: httpx.Response,
    *path: str | int,
    platform: str,
    expect: type = dict,
    ambiguous: bool = False,
) -> Any:
    """The JSON answer (or its part at ``path``) of type ``expect``. Anything else means the
    URL does not lead to the platform's API; after a request that may have posted, that
    is ambiguous."""
    try:
        node = response.json()
        for step in path:
            node = node[step]
    except (ValueError, LookupError, TypeError):
        node = None
    if isinstance(node, expect) and not isinstance(node, bool):
        return node
    error = base.AmbiguousError if ambiguous else base.PermanentError
    raise error(
        f"{platform} answered {response.status_code} with something its API does not send; "
        "check the channel's URL"
    )


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
        raise base.PermanentError(f"{platform}: {exc.message}") from exc
    except ResponseTooLarge as exc:
        raise base.PermanentError(
            f"{platform}: {exc.message}; that is not an answer from {platform}'s API: "
            "check the channel's URL"
        ) from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise base.RetryableError(f"could not reach {platform}: {exc!s}") from exc
    except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        if not may_post:
            raise base.RetryableError(
                f"{platform} did not answer {request.url.path} ({type(exc).__name__})"
            ) from exc
        raise base.AmbiguousError(
            f"{platform} did not answer after the request was sent ({type(exc).__name__}); "
            "it may or may not have been posted"
        ) from exc
    except httpx.HTTPError as exc:
        raise base.RetryableError(f"{platform}: {exc!s}") from exc


def send(
    client: httpx.Client, request: httpx.Request, *, platform: str, may_post: bool = True
) -> httpx.Response:
    """:func:`transmit`, then map an error status to the adapter error it means."""
    response = transmit(client, request, platform=platform, may_post=may_post)
    raise_for_status(response, platform=platform)
    return response


class HttpSettings(base.StrictModel):
    """What every HTTP adapter's settings have: how long to wait on the platform. The
    bounds keep a refresh lease (``channels.store``) longer than any call it covers."""

    connect_timeout: float = Field(5.0, gt=0, le=60, description="Seconds to connect.")
    read_timeout: float = Field(30.0, gt=0, le=300, description="Seconds to wait for an answer.")

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout)


C = TypeVar("C", bound=BaseModel)
HS = TypeVar("HS", bound=HttpSettings)


class HttpAdapter(base.Adapter[C, HS]):
    """An adapter that talks to its platform over HTTP, every request through the one
    guarded client with the channel's timeouts."""

    settings_model: ClassVar[type[BaseModel]] = HttpSettings
    # How error messages name the platform, when not by its registry key.
    name_in_errors: ClassVar[str | None] = None
    # Told what each answer says about the platform's rate limit, with the request's
    # route ("POST /api/v10/webhooks/…": its method and path). The delivery sets it to
    # correct the channel's budget (herald.channels.budgets).
    rate_observer: Callable[[str, RateObservation], None] | None = None

    @property
    def _name(self) -> str:
        return self.name_in_errors or self.platform

    def build_request(self, method: str, url: str, **kwargs: Any) -> httpx.Request:
        """A request to the platform with the channel's timeouts (``httpx``'s arguments)."""
        return shared_client().build_request(method, url, timeout=self.settings.timeout(), **kwargs)

    def transmit(self, request: httpx.Request, *, may_post: bool = True) -> httpx.Response:
        """:func:`transmit` through the shared client: the answer whatever its status.
        Its rate headers go to :attr:`rate_observer`, if one is set."""
        response = transmit(shared_client(), request, platform=self._name, may_post=may_post)
        if self.rate_observer is not None:
            # Herald's clock, as the budget's (a reset is an absolute time).
            observed = rate_observation(response, utcnow().timestamp())
            if observed is not None:
                try:
                    self.rate_observer(f"{request.method} {request.url.path}", observed)
                except Exception:  # pacing is an extra: it never fails a delivery
                    log.exception("the rate observer failed")
        return response

    def send(self, request: httpx.Request, *, may_post: bool = True) -> httpx.Response:
        """:func:`send` through the shared client: an error status raises."""
        response = self.transmit(request, may_post=may_post)
        raise_for_status(response, platform=self._name)
        return response
