"""The one HTTP client for requests to addresses someone gave Herald: channels now, feeds,
sources and outgoing webhooks later (DESIGN §7).

What it guarantees, whoever calls it:

- **No request reaches an address Herald must not touch**: loopback, private, link-local,
  CGNAT, multicast, reserved and unspecified addresses, in every notation a URL can spell
  them (IPv4 in decimal, hex, octal and short forms, IPv6, IPv4 mapped or embedded in
  IPv6 by NAT64 or 6to4, ``localhost``, trailing dots), nor any name that resolves to one.
  The check is made where the socket is opened: the name is resolved once, every address
  is checked, and the socket connects to the checked address itself (TLS still names the
  host), so a second DNS answer (rebinding) is never used. Redirects are not followed;
  a caller that follows one connects again, through the same check. Networks listed in
  ``HERALD_ALLOWED_PRIVATE_NETWORKS`` may be reached (loopback for tests and one-machine
  set-ups).
- **No answer grows the process**: the body is read as it streams and reading stops past
  ``HERALD_HTTP_MAX_RESPONSE_BYTES`` (counted on the wire and decompressed).
- **No transaction waits on the network** (DESIGN §2): sending while this thread has a
  database transaction open is a programming error, raised before anything is sent.
- No cookies are kept (one client serves every workspace), and proxy variables from the
  environment are ignored (``trust_env=False``): a proxy would connect on our behalf to
  an address this module never sees.

:func:`check_url` is the same rule on a URL's text alone (no DNS): the early, friendly
refusal when a channel is saved. The connect-time check is the guard.

Errors::

    HeraldError
    ├── OutgoingRequestRefused    the guarded client would not send or read this
    │   ├── AddressNotAllowed     422: the host is, or resolves to, a refused address
    │   └── ResponseTooLarge      502: the answer is larger than the configured cap
    └── TransactionOpenError      500: a request sent with a database transaction open (a bug)
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from herald import __version__
from herald.core.db import transaction_open
from herald.core.errors import HeraldError
from herald.core.settings import get_settings

USER_AGENT = f"Herald/{__version__} (+https://herald.dev)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], Sequence[IPAddress]]

ALLOW_SETTING = "HERALD_ALLOWED_PRIVATE_NETWORKS"
SIZE_SETTING = "HERALD_HTTP_MAX_RESPONSE_BYTES"


class OutgoingRequestRefused(HeraldError):
    """The guarded client would not send this request or read its answer."""


class AddressNotAllowed(OutgoingRequestRefused):
    status_code = 422
    slug = "address-not-allowed"


class ResponseTooLarge(OutgoingRequestRefused):
    status_code = 502
    slug = "response-too-large"


class TransactionOpenError(HeraldError):
    """A request was about to be sent while this thread holds a database transaction:
    the transaction (and, on SQLite, the writer lock) would wait on the network."""

    status_code = 500
    slug = "transaction-open"


# --- which addresses -------------------------------------------------------------------

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IANA's special-purpose registries, minus the few that are globally reachable. Each with
# the words a person reads in the refusal.
REFUSED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("100.64.0.0/10"), "a shared (CGNAT) address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.0.0.0/24"), "a reserved (IETF protocol assignments) address"),
    (_V4("192.0.2.0/24"), "a reserved (documentation) address"),
    (_V4("192.88.99.0/24"), "a reserved (6to4 relay) address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V4("198.18.0.0/15"), "a reserved (benchmarking) address"),
    (_V4("198.51.100.0/24"), "a reserved (documentation) address"),
    (_V4("203.0.113.0/24"), "a reserved (documentation) address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
    (_V6("::/128"), "an unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("::/96"), "a reserved (IPv4-compatible IPv6) address"),
    (_V6("64:ff9b:1::/48"), "a private (local NAT64) address"),
    (_V6("100::/64"), "a reserved (discard) address"),
    (_V6("2001::/23"), "a reserved (IETF protocol assignments) address"),
    (_V6("2001:db8::/32"), "a reserved (documentation) address"),
    (_V6("3fff::/20"), "a reserved (documentation) address"),
    (_V6("fc00::/7"), "a private (unique local) address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a private (site-local) address"),
    (_V6("ff00::/8"), "a multicast address"),
)
_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_NAT64 = _V6("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped (``::ffff:a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``) or 6to4 (``2002:aabb:ccdd::``)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be reached (``"a private address"``), or None if it may."""
    if any(address in network for network in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            why = refusal(embedded, allowed)
            return None if why is None else f"{why} ({embedded} in IPv6 form)"
    for network, why in REFUSED_NETWORKS:
        if address in network:
            return why
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        # Outside 2000::/3 (IPv4-compatible ::a.b.c.d included): nothing public lives there.
        return "a reserved (not global unicast) address"
    return None


@lru_cache(maxsize=16)
def parse_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``HERALD_ALLOWED_PRIVATE_NETWORKS`` as networks (a bare address is its own /32 or /128)."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{ALLOW_SETTING}: {value!r} is not a network; write CIDRs such as "
                "127.0.0.0/8,::1/128"
            ) from None
    return tuple(networks)


def allowed_networks() -> tuple[IPNetwork, ...]:
    """The networks the settings allow although private."""
    return parse_networks(tuple(get_settings().allowed_private_networks))


# --- host notations --------------------------------------------------------------------

_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}


def _ipv4_number(part: str) -> int | None:
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if not part:
        return 0  # "0x" alone is zero, as browsers read it
    if not set(part.lower()) <= _DIGITS[base]:
        return None
    return int(part, base)


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any notation browsers and ``inet_aton`` accept: dotted
    decimal, one to four parts (``127.1``), each decimal, hex (``0x7f``) or octal
    (``0177``), one trailing dot; None if ``host`` is not one."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or "" in parts:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = (n for n in numbers if n is not None)
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any notation; None for a name."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return parse_ipv4(host)


_LOOPBACK_NAMES = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def _fixed_addresses(host: str) -> tuple[IPAddress, ...] | None:
    """The addresses ``host`` stands for without asking DNS: a literal, or a localhost
    name (RFC 6761: always loopback); None for any other name."""
    literal = ip_literal(host)
    if literal is not None:
        return (literal,)
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return _LOOPBACK_NAMES
    return None


def _refuse(host: str, address: IPAddress, why: str) -> AddressNotAllowed:
    subject = f"{address} is" if ip_literal(host) == address else f"{host} resolves to {address},"
    return AddressNotAllowed(
        f"{subject} {why}: Herald does not send requests there unless {ALLOW_SETTING} includes it"
    )


def check_addresses(
    host: str, addresses: Iterable[IPAddress], allowed: Sequence[IPNetwork]
) -> list[IPAddress]:
    """``addresses`` (what ``host`` resolved to), if every one may be reached; one refused
    address refuses them all (the answer is the attacker's to order)."""
    checked = list(addresses)
    for address in checked:
        why = refusal(address, allowed)
        if why is not None:
            raise _refuse(host, address, why)
    return checked


def check_url(url: str, *, allowed: Sequence[IPNetwork] | None = None) -> None:
    """Refuse ``url`` if its host is a refused address in any notation, or a localhost
    name. Text only, never DNS: safe inside a request's transaction. A name that resolves
    to a refused address passes here and is refused when connecting."""
    allowed = allowed_networks() if allowed is None else allowed
    hosts: set[str] = set()
    with contextlib.suppress(httpx.InvalidURL, TypeError, ValueError):
        hosts.add(httpx.URL(url).host)  # as the client itself will read it
    with contextlib.suppress(ValueError):
        hosts.add(urlsplit(url).hostname or "")  # as a lenient parser would
    for host in {unquote(h) for h in hosts} | hosts:
        if host:
            fixed = _fixed_addresses(host)
            if fixed is not None:
                check_addresses(host, fixed, allowed)


# --- the connection --------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's answer for ``host`` (``getaddrinfo``), in its order."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend with the address check: resolve once, check every
    address, connect to a checked one. httpcore still wraps the socket in TLS for the
    URL's host name (SNI and certificate), and the Host header stays the name."""

    def __init__(
        self,
        *,
        allowed: Sequence[IPNetwork],
        resolver: Resolver = system_resolver,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.allowed = tuple(allowed)
        self.resolver = resolver
        self.inner = inner or httpcore.SyncBackend()

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """What ``host`` resolves to, every address checked."""
        fixed = _fixed_addresses(host)
        if fixed is None:
            try:
                resolved = list(self.resolver(host, port))
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            if not resolved:
                raise httpcore.ConnectError(f"cannot resolve {host}: no address")
            return check_addresses(host, resolved, self.allowed)
        return check_addresses(host, fixed, self.allowed)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in self.addresses(host, port):
            try:
                # A literal address: the inner backend's getaddrinfo only parses it.
                return self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next address, as socket.create_connection does
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressNotAllowed(
            "Herald does not send requests to user-given URLs over unix sockets"
        )

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


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
