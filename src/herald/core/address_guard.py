"""The address guard of Herald's HTTP client (:mod:`herald.core.http`): which addresses
a request to a user-given URL may reach, and the network backend that enforces it.

- **No request reaches an address Herald must not touch**: loopback, private, link-local,
  CGNAT, multicast, reserved and unspecified addresses, in every notation a URL can spell
  them (IPv4 in decimal, hex, octal and short forms, IPv6, IPv4 mapped or embedded in
  IPv6 by NAT64 or 6to4, ``localhost``, trailing dots), nor any name that resolves to one.
  The check is made where the socket is opened (:class:`GuardedBackend`): the name is
  resolved once, every address is checked, and the socket connects to the checked address
  itself (TLS still names the host), so a second DNS answer (rebinding) is never used.
  Networks listed in ``HERALD_ALLOWED_PRIVATE_NETWORKS`` may be reached (loopback for
  tests and one-machine set-ups).

:func:`check_url` is the same rule on a URL's text alone (no DNS): the early, friendly
refusal when a channel is saved. The connect-time check is the guard.

Errors::

    HeraldError
    └── OutgoingRequestRefused    the guarded client would not send or read this
        └── AddressNotAllowed     422: the host is, or resolves to, a refused address
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from herald.core.errors import HeraldError
from herald.core.settings import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], Sequence[IPAddress]]

ALLOW_SETTING = "HERALD_ALLOWED_PRIVATE_NETWORKS"


class OutgoingRequestRefused(HeraldError):
    """The guarded client would not send this request or read its answer."""


class AddressNotAllowed(OutgoingRequestRefused):
    status_code = 422
    slug = "address-not-allowed"


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
