"""One conditional GET of a feed (or of a page advertising one), through the guarded client.

:func:`fetch` sends the validators of the last answer (``If-None-Match`` /
``If-Modified-Since``), follows redirects itself (the guarded client follows none, so
every hop is connected to through the same address check), and says what came back: the
status, the body, the new validators, the URL to store when the feed has moved for good,
and how long the server asks us to wait. HTTP error statuses are answers, returned for
the caller to classify; only a request that got no answer raises.

Errors::

    HeraldError
    └── FetchFailed     502 (422 for a refused address): no usable answer; ``retryable``
                        says whether trying again later may help
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urljoin

import httpx

from herald.core.clock import utcnow
from herald.core.errors import HeraldError
from herald.core.http import (
    AddressNotAllowed,
    OutgoingRequestRefused,
    ResponseTooLarge,
    shared_client,
)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.5, */*;q=0.1"
)
ACCEPT_ENCODING = "gzip, deflate"
# A host that does not take the connection within this is down: no need to wait longer.
CONNECT = 5.0

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})


class FetchFailed(HeraldError):
    """No usable answer: the address was refused, the connection failed or timed out, the
    body was too large, or the redirects went round in circles."""

    status_code = 502
    slug = "fetch-failed"

    def __init__(self, message: str, retryable: bool, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        if status_code is not None:
            self.status_code = status_code


@dataclass(frozen=True)
class Validators:
    """What an answer said to send back next time to be told "not modified"."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True)
class Fetched:
    url: str  # the URL that finally answered (after redirects)
    status: int  # that answer's HTTP status
    moved_to: str | None  # set when every redirect followed was permanent (301/308)
    content_type: str | None
    body: bytes  # b"" for 304 and bodiless answers
    validators: Validators  # from this answer; empty if it sent none
    hint_seconds: int | None  # how long the server asks us to wait (max-age, Retry-After)
    elapsed_seconds: float
    wire_bytes: int  # body bytes read off the wire (compressed, if it was)


def fetch(
    url: str,
    validators: Validators | None = None,
    *,
    timeout: float = 20.0,
    max_redirects: int = 5,
    accept: str = FEED_ACCEPT,
    client: httpx.Client | None = None,
) -> Fetched:
    """GET ``url`` (module docstring). ``client`` defaults to the process's guarded client
    (:func:`herald.core.http.shared_client`); pass one from ``make_client`` for other
    limits. Raises :class:`FetchFailed`."""
    http = client or shared_client()
    headers = {"Accept": accept, "Accept-Encoding": ACCEPT_ENCODING}
    if validators is not None and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators is not None and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    started = time.perf_counter()
    # ``timeout`` bounds the whole fetch, every hop and the body included: a server
    # dripping its answer a byte at a time never keeps a worker longer.
    deadline = started + timeout
    current = url
    visited = {url}
    permanent = True
    hops = 0
    while True:
        response = _send(http, current, headers, _left(deadline, url, timeout), timeout)
        try:
            location = response.headers.get("Location", "").strip()
            if response.status_code in _REDIRECTS and location:
                hops += 1
                # httpx has parsed it already (a Location it cannot read is raised in _send).
                target = urljoin(current, location)
                if hops > max_redirects:
                    raise FetchFailed(
                        f"{url} redirected more than {max_redirects} times", retryable=False
                    )
                if target in visited:
                    raise FetchFailed(f"{url} redirects in a loop (back to {target})", False)
                visited.add(target)
                permanent = permanent and response.status_code in _PERMANENT
                current = target
                continue
            body = _read(response, current, deadline, timeout)
            return Fetched(
                url=current,
                status=response.status_code,
                moved_to=current if hops and permanent else None,
                content_type=response.headers.get("Content-Type"),
                body=body,
                validators=Validators(
                    etag=response.headers.get("ETag") or None,
                    last_modified=response.headers.get("Last-Modified") or None,
                ),
                hint_seconds=hint_seconds(response.headers),
                elapsed_seconds=time.perf_counter() - started,
                wire_bytes=response.num_bytes_downloaded,
            )
        finally:
            response.close()


def _send(
    http: httpx.Client, url: str, headers: dict[str, str], left: float, timeout: float
) -> httpx.Response:
    try:
        request = http.build_request(
            "GET", url, headers=headers, timeout=httpx.Timeout(left, connect=min(CONNECT, left))
        )
        return http.send(request, stream=True)
    except AddressNotAllowed as exc:
        raise FetchFailed(exc.message, retryable=False, status_code=422) from None
    except OutgoingRequestRefused as exc:
        raise FetchFailed(exc.message, retryable=False) from None
    except httpx.TimeoutException:
        raise FetchFailed(f"{url} did not answer within {timeout:g} s", retryable=True) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FetchFailed(f"{url} cannot be fetched: {exc}", retryable=False) from None
    except httpx.RemoteProtocolError as exc:
        # httpx reads a redirect's Location even when not following it.
        if str(exc).startswith("Invalid URL in location header"):
            raise FetchFailed(f"{url} redirects to an unusable address: {exc}", False) from None
        raise FetchFailed(f"{url} could not be reached: {_reason(exc)}", retryable=True) from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{url} could not be reached: {_reason(exc)}", retryable=True) from None


def _left(deadline: float, url: str, timeout: float) -> float:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise FetchFailed(f"{url} did not answer within {timeout:g} s", retryable=True)
    return left


def _read(response: httpx.Response, url: str, deadline: float, timeout: float) -> bytes:
    pieces: list[bytes] = []
    try:
        for piece in response.iter_bytes():
            pieces.append(piece)
            _left(deadline, url, timeout)
    except ResponseTooLarge as exc:
        raise FetchFailed(exc.message, retryable=False) from None
    except httpx.TimeoutException:
        raise FetchFailed(f"{url} stopped sending its answer (timed out)", True) from None
    except httpx.DecodingError as exc:
        raise FetchFailed(f"{url} sent a body that cannot be decoded: {exc}", False) from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{url} broke off its answer: {_reason(exc)}", True) from None
    return b"".join(pieces)


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def hint_seconds(headers: httpx.Headers) -> int | None:
    """The longest wait the answer asks for: ``Cache-Control: max-age`` and
    ``Retry-After`` (seconds, or an HTTP date read against the injected clock)."""
    hints = [h for h in (_max_age(headers), _retry_after(headers)) if h is not None]
    return max(hints) if hints else None


def _max_age(headers: httpx.Headers) -> int | None:
    for directive in ",".join(headers.get_list("Cache-Control")).split(","):
        name, _, value = directive.strip().partition("=")
        if name.strip().lower() == "max-age":
            value = value.strip().strip('"')
            if value.isascii() and value.isdigit():
                return int(value)
    return None


def _retry_after(headers: httpx.Headers) -> int | None:
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0, math.ceil((when - utcnow()).total_seconds()))
