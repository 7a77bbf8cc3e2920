"""The one HTTP client for requests to addresses someone gave Herald: channels now, feeds,
sources and outgoing webhooks later (DESIGN §7).

What it guarantees, whoever calls it:

- **No request reaches an address Herald must not touch** (loopback, private, reserved...
  in any notation, or a name resolving to one): :mod:`herald.core.address_guard` checks
  every address where the socket is opened. Redirects are not followed; a caller that
  follows one connects again, through the same check.
- **No answer grows the process**: the body is read as it streams and reading stops past
  ``HERALD_HTTP_MAX_RESPONSE_BYTES`` (counted on the wire and decompressed).
- **No transaction waits on the network** (DESIGN §2): sending while this thread has a
  database transaction open is a programming error, raised before anything is sent.
- No cookies are kept (one client serves every workspace), and proxy variables from the
  environment are ignored (``trust_env=False``): a proxy would connect on our behalf to
  an address the guard never sees.

Errors::

    HeraldError
    ├── OutgoingRequestRefused    [core.address_guard] the client would not send or read this
    │   ├── AddressNotAllowed     [core.address_guard] 422: a refused address
    │   └── ResponseTooLarge      502: the answer is larger than the configured cap
    └── TransactionOpenError      500: a request sent with a database transaction open (a bug)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from http.cookiejar import CookieJar
from typing import Any

import httpcore
import httpx

from herald import __version__
from herald.core.address_guard import (
    AddressNotAllowed,
    GuardedBackend,
    OutgoingRequestRefused,
    Resolver,
    check_url,
    parse_networks,
    system_resolver,
)
from herald.core.db import transaction_open
from herald.core.errors import HeraldError
from herald.core.settings import get_settings

# The guard's refusals are raised through this client; its callers catch them from here.
__all__ = [
    "POOL_LIMITS",
    "USER_AGENT",
    "AddressNotAllowed",
    "GuardedClient",
    "GuardedTransport",
    "OutgoingRequestRefused",
    "ResponseTooLarge",
    "TransactionOpenError",
    "check_url",
    "make_client",
    "reset_shared_client",
    "shared_client",
]

USER_AGENT = f"Herald/{__version__} (+https://herald.dev)"

SIZE_SETTING = "HERALD_HTTP_MAX_RESPONSE_BYTES"


class ResponseTooLarge(OutgoingRequestRefused):
    status_code = 502
    slug = "response-too-large"


class TransactionOpenError(HeraldError):
    """A request was about to be sent while this thread holds a database transaction:
    the transaction (and, on SQLite, the writer lock) would wait on the network."""

    status_code = 500
    slug = "transaction-open"


# --- the answer ------------------------------------------------------------------------

# A compressed answer goes to the decompressor in pieces this small, so that one piece
# inflates (deflate: ~1032 times at most) to about 2 MB before the count is checked.
_COMPRESSED_PIECE = 2 * 1024


def _too_large(host: str, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"the answer from {host} is larger than {limit} bytes ({SIZE_SETTING}); "
        "Herald stopped reading it"
    )


class _CappedStream(httpx.SyncByteStream):
    """The body as it comes off the wire, refused past ``limit`` bytes."""

    def __init__(self, stream: httpx.SyncByteStream, *, limit: int, host: str, piece: int) -> None:
        self._stream = stream
        self._limit = limit
        self._host = host
        self._piece = piece

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise _too_large(self._host, self._limit)
            if self._piece and len(chunk) > self._piece:
                view = memoryview(chunk)
                for start in range(0, len(chunk), self._piece):
                    yield bytes(view[start : start + self._piece])
            else:
                yield chunk

    def close(self) -> None:
        self._stream.close()


class _CappedResponse(httpx.Response):
    """A response whose decompressed body is refused past ``limit`` bytes too (a small
    gzip answer can inflate a thousandfold). ``read()``, ``text`` and ``json()`` all
    read through ``iter_bytes``."""

    def __init__(self, *args: Any, limit: int, host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.herald_limit = limit
        self.herald_host = host

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        seen = 0
        for chunk in super().iter_bytes(chunk_size):
            seen += len(chunk)
            if seen > self.herald_limit:
                raise _too_large(self.herald_host, self.herald_limit)
            yield chunk


# httpx's own defaults.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over a :class:`GuardedBackend`, with the size cap.

    httpx has no public way to give its transport a network backend, so the connection
    pool it builds is replaced by the same pool over ours (``_pool`` is what
    ``HTTPTransport`` sends through). tests/core/test_http.py fails if that changes."""

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        max_response_bytes: int,
        limits: httpx.Limits = POOL_LIMITS,
    ) -> None:
        # The CA bundle as httpx reads it (SSL_CERT_FILE / SSL_CERT_DIR still count).
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("httpx.HTTPTransport no longer sends through _pool")
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
        self.backend = backend
        self.max_response_bytes = max_response_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        limit = self.max_response_bytes
        host = request.url.host
        declared = response.headers.get("Content-Length", "")
        bodiless = request.method == "HEAD" or response.status_code in (204, 304)
        if declared.isdigit() and int(declared) > limit and not bodiless:
            response.close()
            raise _too_large(host, limit)
        assert isinstance(response.stream, httpx.SyncByteStream)
        encoded = response.headers.get("Content-Encoding", "identity").strip().lower()
        compressed = encoded not in ("", "identity")
        stream = _CappedStream(
            response.stream, limit=limit, host=host, piece=_COMPRESSED_PIECE if compressed else 0
        )
        if not compressed:
            response.stream = stream  # the wire count is the body's size
            return response
        return _CappedResponse(
            status_code=response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
            limit=limit,
            host=host,
        )


# --- the client ------------------------------------------------------------------------


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing. One client serves every channel of every
    workspace in a process, so a cookie one platform sets must not ride along on the next
    request to that host made for someone else. Nothing logs in with cookies."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Any) -> None:
        return None


class GuardedClient(httpx.Client):
    """``httpx.Client`` over a :class:`GuardedTransport`, keeping no cookies and refusing
    to send while a database transaction is open on this thread."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cookies=_NoCookies(), **kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return super().cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        # httpx would put them in a new jar, one that keeps cookies across workspaces.
        raise TypeError("Herald's HTTP client keeps no cookies")

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if transaction_open():
            raise TransactionOpenError(
                f"an HTTP request to {request.url.host} was about to be sent while this "
                "thread has a database transaction open; commit (or roll back) before "
                "calling the network (DESIGN §2: no transaction spans a network call)"
            )
        return super().send(request, **kwargs)


def make_client(
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    allowed: Sequence[str] | None = None,
    max_response_bytes: int | None = None,
    resolver: Resolver | None = None,
    network: httpcore.NetworkBackend | None = None,
) -> GuardedClient:
    """A guarded client; ``allowed`` (CIDRs) and ``max_response_bytes`` default to the
    settings. Redirects are not followed: a platform API never needs one for a write, and
    a redirect is how a URL would be bounced elsewhere (a caller that follows one anyway
    goes through the same check for every hop). ``resolver`` and ``network`` (what opens
    the socket to a checked address) are for tests."""
    settings = get_settings()
    networks = parse_networks(
        tuple(settings.allowed_private_networks if allowed is None else allowed)
    )
    transport = GuardedTransport(
        GuardedBackend(allowed=networks, resolver=resolver or system_resolver, inner=network),
        max_response_bytes=max_response_bytes or settings.http_max_response_bytes,
    )
    return GuardedClient(
        transport=transport,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


_shared: tuple[int, GuardedClient] | None = None
_shared_lock = threading.Lock()


def shared_client() -> GuardedClient:
    """One pooled client per process: building one costs ~20 ms (the CA bundle is loaded
    into a new SSL context each time), more than the request itself. Pass each request's
    timeout with ``build_request(..., timeout=...)``. Made anew after a fork."""
    global _shared  # noqa: PLW0603
    pid = os.getpid()
    with _shared_lock:
        if _shared is None or _shared[0] != pid:
            _shared = (pid, make_client())
        return _shared[1]


def reset_shared_client() -> None:
    """Forget the shared client (after the settings it was built from change: tests)."""
    global _shared
    with _shared_lock:
        previous, _shared = _shared, None
    if previous is not None and previous[0] == os.getpid():
        previous[1].close()
