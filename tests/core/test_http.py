"""The guarded HTTP client (``herald.core.http``): the SSRF table (every notation of every
refused address, and names resolving to them, refused before any socket opens), allowed
networks, DNS rebinding, the response size cap, redirects, proxies from the environment,
and the transaction guard. Names are resolved by a fake resolver, never by real DNS; the
only sockets opened go to servers this module starts on loopback."""

from __future__ import annotations

import ipaddress
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpcore
import httpx
import pytest
from sqlalchemy import text

from herald.core import db
from herald.core.address_guard import (
    AddressNotAllowed,
    GuardedBackend,
    IPAddress,
    check_url,
    parse_ipv4,
    refusal,
)
from herald.core.http import (
    USER_AGENT,
    ResponseTooLarge,
    TransactionOpenError,
    make_client,
)
from herald.core.settings import Settings

MB = 1024 * 1024

# --- a local server, a fake resolver, a network that records where it was asked to go --


@dataclass
class Server:
    """A loopback HTTP/1.0 server (one connection per request) with a few routes:
    ``/`` answers "ok"; ``/stream?bytes=N`` streams N bytes without a length;
    ``/declared`` declares a huge Content-Length; ``/gzip?bytes=N`` is N zero bytes
    gzipped; ``/redirect?to=URL`` answers 302."""

    hits: list[str] = field(default_factory=list)
    sent: int = 0  # body bytes /stream managed to write before the client hung up
    gzipped: dict[int, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> Server:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with state.lock:
                    state.hits.append(self.path)
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/stream":
                    self._stream(int(query["bytes"]))
                elif url.path == "/declared":
                    self.send_response(200)
                    self.send_header("Content-Length", str(400 * MB))
                    self.end_headers()
                    self.wfile.write(b"x" * 1024)
                elif url.path == "/gzip":
                    body = state.gzip(int(query["bytes"]))
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif url.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query["to"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def do_HEAD(self) -> None:
                with state.lock:
                    state.hits.append(f"HEAD {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", str(400 * MB))
                self.end_headers()

            def _stream(self, size: int) -> None:
                self.send_response(200)
                self.end_headers()
                chunk = b"x" * (64 * 1024)
                written = 0
                try:
                    while written < size:
                        self.wfile.write(chunk[: size - written])
                        written += min(len(chunk), size - written)
                        with state.lock:
                            state.sent = max(state.sent, written)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the cap is for

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def gzip(self, size: int) -> bytes:
        """``size`` zero bytes, gzipped (made once, a megabyte at a time)."""
        if size not in self.gzipped:
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            zeros = b"\0" * min(size, MB)
            parts = [packer.compress(zeros[: min(MB, size - at)]) for at in range(0, size, MB)]
            self.gzipped[size] = b"".join(parts) + packer.flush()
        return self.gzipped[size]

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server().start()
    yield s
    s.stop()


class FakeDNS:
    """A resolver answering from a table, always the same answer for a name; a name in
    ``in_turn`` gets one answer per call, the last repeated. Unknown names do not resolve."""

    def __init__(
        self,
        table: dict[str, Sequence[str]],
        in_turn: dict[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        self.table = table
        self.in_turn = in_turn or {}
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host in self.in_turn:
            answers = self.in_turn[host]
            answer = answers[min(self.calls.count(host), len(answers)) - 1]
        elif host in self.table:
            answer = self.table[host]
        else:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in answer]


class RecordingNetwork(httpcore.NetworkBackend):
    """Where the guarded client asks to connect. ``route`` sends an address to a local
    port (a stand-in for a public host); loopback addresses connect for real (so a
    request that slipped through would reach the local server); anything else fails."""

    def __init__(self, route: dict[str, int] | None = None) -> None:
        self.connects: list[str] = []
        self.route = route or {}
        self.real = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        self.connects.append(host)
        if host in self.route:
            return self.real.connect_tcp("127.0.0.1", self.route[host], timeout=timeout)
        if ipaddress.ip_address(host).is_loopback:
            return self.real.connect_tcp(host, port, timeout=timeout)
        raise httpcore.ConnectError(f"the test network has nothing at {host}")


def refusing_client(dns: FakeDNS | None = None, **kwargs: Any) -> httpx.Client:
    """The production defaults: no private network allowed."""
    return make_client(allowed=[], resolver=dns or FakeDNS({}), **kwargs)


# --- the SSRF table ------------------------------------------------------------------------

DNS = FakeDNS(
    {
        "metadata.internal": ["169.254.169.254"],
        "intranet.example": ["10.0.0.1"],
        "ula.example": ["fd00::1"],
        "redis.example": ["127.0.0.1"],
        "mapped.example": ["::ffff:127.0.0.1"],
        "cgnat.example": ["100.64.0.1"],
        "zero.example": ["0.0.0.0"],  # noqa: S104 - an address to refuse, not to bind
        # One refused address among public ones refuses the name: the order is the
        # answering server's to choose.
        "mixed.example": ["93.184.215.14", "10.1.2.3"],
        "mixed6.example": ["2606:4700::1111", "fe80::1"],
    }
)

# (URL, what the refusal says). Loopback URLs carry a port where a server listens: if one
# got through, the server would see it (checked below).
REFUSED: list[Any] = [
    # IPv4 and its other spellings
    pytest.param("http://0.0.0.0:{port}/", "unspecified", id="0.0.0.0"),  # noqa: S104
    pytest.param("http://0:{port}/", "unspecified", id="0"),
    pytest.param("http://127.0.0.1:{port}/", "loopback", id="127.0.0.1"),
    pytest.param("http://127.0.0.1.:{port}/", "loopback", id="127.0.0.1 trailing dot"),
    pytest.param("http://127.1:{port}/", "loopback", id="127.1"),
    pytest.param("http://127.0.1:{port}/", "loopback", id="127.0.1"),
    pytest.param("http://0x7f000001:{port}/", "loopback", id="0x7f000001"),
    pytest.param("http://0X7F.1:{port}/", "loopback", id="0X7F.1"),
    pytest.param("http://2130706433:{port}/", "loopback", id="2130706433"),
    pytest.param("http://017700000001:{port}/", "loopback", id="017700000001"),
    pytest.param("http://0177.0.0.1:{port}/", "loopback", id="0177.0.0.1"),
    pytest.param("http://127.255.255.254:{port}/", "loopback", id="127.255.255.254"),
    pytest.param("http://10.0.0.1/", "private", id="10.0.0.1"),
    pytest.param("http://172.16.5.4/", "private", id="172.16.5.4"),
    pytest.param("http://192.168.1.1/", "private", id="192.168.1.1"),
    pytest.param("http://0xc0a80101/", "private", id="0xc0a80101"),
    pytest.param("http://169.254.169.254/latest/meta-data/", "link-local", id="169.254.169.254"),
    pytest.param("http://2852039166/", "link-local", id="169.254.169.254 decimal"),
    pytest.param("http://100.64.0.1/", "CGNAT", id="100.64.0.1"),
    pytest.param("http://224.0.0.1/", "multicast", id="224.0.0.1"),
    pytest.param("http://239.255.255.250:1900/", "multicast", id="239.255.255.250"),
    pytest.param("http://240.0.0.1/", "reserved", id="240.0.0.1"),
    pytest.param("http://255.255.255.255/", "reserved", id="255.255.255.255"),
    pytest.param("http://192.0.2.1/", "documentation", id="192.0.2.1"),
    pytest.param("http://198.18.0.1/", "benchmarking", id="198.18.0.1"),
    # IPv6, and IPv4 inside it
    pytest.param("http://[::]:{port}/", "unspecified", id="[::]"),
    pytest.param("http://[::1]:{port}/", "loopback", id="[::1]"),
    pytest.param("http://[0:0:0:0:0:0:0:1]:{port}/", "loopback", id="[::1] long"),
    pytest.param("http://[::ffff:127.0.0.1]:{port}/", "loopback", id="[::ffff:127.0.0.1]"),
    pytest.param("http://[::ffff:7f00:1]:{port}/", "loopback", id="[::ffff:7f00:1]"),
    pytest.param("http://[::ffff:10.0.0.1]/", "private", id="[::ffff:10.0.0.1]"),
    pytest.param("http://[::ffff:a9fe:a9fe]/", "link-local", id="[::ffff:a9fe:a9fe]"),
    pytest.param("http://[::127.0.0.1]:{port}/", "IPv4-compatible", id="[::127.0.0.1]"),
    pytest.param("http://[64:ff9b::7f00:1]/", "loopback", id="NAT64 [64:ff9b::7f00:1]"),
    pytest.param("http://[64:ff9b::a00:1]/", "private", id="NAT64 [64:ff9b::10.0.0.1]"),
    pytest.param("http://[2002:7f00:1::1]/", "loopback", id="6to4 [2002:7f00:1::1]"),
    pytest.param("http://[2002:a9fe:a9fe::]/", "link-local", id="6to4 169.254.169.254"),
    pytest.param("http://[fd00::1]/", "unique local", id="[fd00::1]"),
    pytest.param("http://[fc00::1]/", "unique local", id="[fc00::1]"),
    pytest.param("http://[fe80::1]/", "link-local", id="[fe80::1]"),
    pytest.param("http://[fe80::1%25eth0]/", "link-local", id="[fe80::1%eth0]"),
    pytest.param("http://[fec0::1]/", "site-local", id="[fec0::1]"),
    pytest.param("http://[ff02::1]/", "multicast", id="[ff02::1]"),
    pytest.param("http://[2001:db8::1]/", "documentation", id="[2001:db8::1]"),
    pytest.param("http://[100::1]/", "discard", id="[100::1]"),
    pytest.param("http://[4000::1]/", "not global unicast", id="[4000::1]"),
    # localhost, in every case and with a trailing dot, on any port
    pytest.param("http://localhost:{port}/", "loopback", id="localhost"),
    pytest.param("http://localhost:6379/", "loopback", id="localhost:6379"),
    pytest.param("http://LOCALHOST.:{port}/", "loopback", id="LOCALHOST."),
    pytest.param("http://api.localhost:{port}/", "loopback", id="api.localhost"),
    pytest.param("https://localhost/", "loopback", id="https localhost"),
    # names that resolve to refused addresses (the fake resolver)
    pytest.param("http://metadata.internal/", "link-local", id="name -> 169.254.169.254"),
    pytest.param("http://intranet.example/", "private", id="name -> 10.0.0.1"),
    pytest.param("http://ula.example/", "unique local", id="name -> fd00::1"),
    pytest.param("http://redis.example:{port}/", "loopback", id="name -> 127.0.0.1"),
    pytest.param("http://redis.example.:{port}/", "loopback", id="name. -> 127.0.0.1"),
    pytest.param("http://mapped.example:{port}/", "loopback", id="name -> ::ffff:127.0.0.1"),
    pytest.param("http://cgnat.example/", "CGNAT", id="name -> 100.64.0.1"),
    pytest.param("http://zero.example:{port}/", "unspecified", id="name -> 0.0.0.0"),
    pytest.param("http://mixed.example/", "private", id="name -> public + 10.1.2.3"),
    pytest.param("http://mixed6.example/", "link-local", id="name -> public + fe80::1"),
    pytest.param("https://user:pw@metadata.internal/", "link-local", id="userinfo"),
]


class ExactDNS(FakeDNS):
    """:class:`FakeDNS` that also knows names with a trailing dot."""

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        return super().__call__(host.rstrip("."), port)


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_refused_addresses_are_refused_before_any_connection(
    server: Server, url: str, why: str
) -> None:
    network = RecordingNetwork()
    dns = ExactDNS(DNS.table)
    url = url.format(port=server.port)
    with refusing_client(dns, network=network) as client:
        try:
            request = client.build_request("GET", url)
        except httpx.InvalidURL:
            # httpx itself refuses to read a few spellings (0177.0.0.1): nothing is sent.
            assert "0177" in url
            return
        with pytest.raises(AddressNotAllowed) as refused:
            client.send(request)
    message = refused.value.message
    assert why in message
    assert "HERALD_ALLOWED_PRIVATE_NETWORKS" in message
    assert network.connects == [], "a socket was opened to a refused address"
    assert server.hits == []
    assert refused.value.status_code == 422


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_check_url_refuses_every_literal_notation_without_dns(url: str, why: str) -> None:
    """What a channel's URL is checked with when it is saved: literal addresses and
    localhost names are refused by their text alone; other names pass (no DNS inside the
    request's transaction) and are refused when the client connects."""
    url = url.format(port=8080)
    host = urlsplit(url).hostname or ""
    is_name = any(host.rstrip(".") == name for name in DNS.table)
    if is_name:
        check_url(url, allowed=())  # passes: the connect-time check refuses it
        return
    with pytest.raises(AddressNotAllowed, match=why):
        check_url(url, allowed=())


@pytest.mark.parametrize(
    "url",
    [
        "https://mastodon.social/api/v1/statuses",
        "https://93.184.215.14/",
        "https://[2606:4700::1111]/",
        "https://[64:ff9b::808:808]/",  # NAT64 of a public address
        "https://[2002:808:808::1]/",  # 6to4 of a public address
        "https://1.2.3.4.example/",  # a name that starts like an address
        "https://0x7f000001.example/",
        "https://localhost.example/",
        "https://127.1.example.com/",
    ],
)
def test_public_urls_pass_check_url(url: str) -> None:
    check_url(url, allowed=())


def test_check_url_reads_the_host_as_both_parsers_do() -> None:
    """Tricks that make two URL parsers disagree about the host: both readings are
    checked (the connect-time check still decides what is actually contacted)."""
    for url in (
        "http://public.example@127.0.0.1/",
        "http://%31%32%37.0.0.1/",
        "http://127.0.0.1%2e/",
        "http://[::ffff:127.0.0.1]/",
    ):
        with pytest.raises(AddressNotAllowed):
            check_url(url, allowed=())


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),  # noqa: S104 - parsed, not bound
        ("0x", "0.0.0.0"),  # noqa: S104
        ("1.2.3.4.", "1.2.3.4"),
        ("4294967295", "255.255.255.255"),
        ("4294967296", None),
        ("1.2.3.256", None),
        ("256.1", None),
        ("1.2.3.4.5", None),
        ("08.1.1.1", None),  # 8 is no octal digit
        ("0xg.1", None),
        ("1..2", None),
        ("example.com", None),
        ("", None),
        (" 1.2.3.4", None),
    ],
)
def test_parse_ipv4_reads_every_notation(host: str, expected: str | None) -> None:
    parsed = parse_ipv4(host)
    assert (str(parsed) if parsed else None) == expected


def test_allowed_networks_reach_what_they_name_and_nothing_else(server: Server) -> None:
    with make_client(allowed=["127.0.0.0/8"], resolver=FakeDNS({})) as client:
        assert client.get(server.url("/")).text == "ok"
        assert client.get(server.url("/", host="127.1")).text == "ok"
        with pytest.raises(AddressNotAllowed):
            client.get("http://10.0.0.1/")
        # localhost stands for 127.0.0.1 and ::1: both must be allowed.
        with pytest.raises(AddressNotAllowed, match=r"::1"):
            client.get(server.url("/", host="localhost"))
    with make_client(allowed=["127.0.0.0/8", "::1/128"]) as client:
        assert client.get(server.url("/", host="localhost")).text == "ok"
    with make_client(allowed=["10.0.0.0/8"]) as client, pytest.raises(AddressNotAllowed):
        client.get(server.url("/"))
    assert server.hits == ["/", "/", "/"]


def test_the_default_allows_nothing_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_ALLOWED_PRIVATE_NETWORKS", raising=False)
    assert Settings().allowed_private_networks == []
    assert refusal(ipaddress.ip_address("127.0.0.1")) == "a loopback address"
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed=()) == "a loopback address"


def test_the_setting_is_comma_separated_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8, ::1/128,10.1.2.3")
    assert Settings().allowed_private_networks == ["127.0.0.0/8", "::1/128", "10.1.2.3"]
    monkeypatch.setenv("HERALD_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8,lan")
    with pytest.raises(ValueError, match="'lan' is not a network"):
        Settings()


def test_a_name_is_resolved_once_and_the_checked_address_is_connected_to(
    server: Server,
) -> None:
    """DNS rebinding: the attacker's DNS answers a public address first and 127.0.0.1
    after. The client resolves once per connection and connects to the address it
    checked, so the public answer is what it reaches, and a later (loopback) answer is
    refused: nothing reaches the loopback server."""
    public = Server().start()  # stands in for the public host at 93.184.215.14
    try:
        dns = FakeDNS({}, in_turn={"rebind.example": [["93.184.215.14"], ["127.0.0.1"]]})
        network = RecordingNetwork(route={"93.184.215.14": public.port})
        url = f"http://rebind.example:{server.port}/"
        with refusing_client(dns, network=network) as client:
            assert client.get(url).text == "ok"  # from the public stand-in
            with pytest.raises(AddressNotAllowed, match=r"rebind.example resolves to 127.0.0.1"):
                client.get(url)  # the stand-in closed the connection: connect anew
        assert dns.calls == ["rebind.example", "rebind.example"]
        assert network.connects == ["93.184.215.14"]  # an address, never the name
        assert public.hits == ["/"]
        assert server.hits == [], "the rebound name reached loopback"
    finally:
        public.stop()


def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    with refusing_client(FakeDNS({})) as client, pytest.raises(httpx.ConnectError, match="nowhere"):
        client.get("https://nowhere.example/")


# --- redirects, proxies, unix sockets ------------------------------------------------------


def test_redirects_are_not_followed_and_each_hop_is_checked_when_they_are(
    server: Server,
) -> None:
    inside = server.url("/")
    with make_client(allowed=["127.0.0.1/32"]) as client:
        hop = server.url(f"/redirect?to={server.url('/', host='127.0.0.2')}")
        answer = client.get(hop)
        assert answer.status_code == 302  # returned, not followed
        with pytest.raises(AddressNotAllowed, match=r"127.0.0.2 is a loopback address"):
            client.get(hop, follow_redirects=True)
        assert client.get(server.url(f"/redirect?to={inside}"), follow_redirects=True).text == "ok"
    assert server.hits.count("/") == 1


def test_proxies_from_the_environment_are_ignored(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect on Herald's behalf to an address the guard never sees."""
    proxy = Server().start()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url("/"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with make_client(allowed=["127.0.0.1/32"]) as client:
            assert client.trust_env is False
            assert client.get(server.url("/direct")).status_code == 200
        assert server.hits == ["/direct"]
        assert proxy.hits == []
    finally:
        proxy.stop()


def test_unix_sockets_are_refused() -> None:
    with pytest.raises(AddressNotAllowed, match="unix"):
        GuardedBackend(allowed=()).connect_unix_socket("/var/run/docker.sock")


# --- the size cap --------------------------------------------------------------------------


def test_a_stream_past_the_cap_is_cut_off(server: Server) -> None:
    """The answer is read as it arrives and reading stops past the cap: the server could
    not push its 64 MB (only what the sockets' buffers held)."""
    with make_client(allowed=["127.0.0.1/32"], max_response_bytes=1 * MB) as client:
        with pytest.raises(ResponseTooLarge, match=r"larger than 1048576 bytes") as too_large:
            client.get(server.url(f"/stream?bytes={64 * MB}"))
        assert "HERALD_HTTP_MAX_RESPONSE_BYTES" in too_large.value.message
        # Under the cap, the same route reads whole.
        assert len(client.get(server.url(f"/stream?bytes={MB // 2}")).content) == MB // 2
    assert server.sent < 64 * MB // 2


def test_a_declared_length_past_the_cap_is_refused_before_reading(server: Server) -> None:
    with make_client(allowed=["127.0.0.1/32"], max_response_bytes=MB) as client:
        with pytest.raises(ResponseTooLarge):
            client.get(server.url("/declared"))
        # A HEAD answer declares the length of a body it does not carry.
        assert client.head(server.url("/declared")).status_code == 200


def test_streaming_callers_are_capped_too(server: Server) -> None:
    with (
        make_client(allowed=["127.0.0.1/32"], max_response_bytes=MB) as client,
        client.stream("GET", server.url(f"/stream?bytes={8 * MB}")) as answer,
        pytest.raises(ResponseTooLarge),
    ):
        for _ in answer.iter_raw():
            pass


@pytest.mark.parametrize("read", ["read", "json", "text", "iter_bytes"])
def test_a_compressed_answer_is_capped_decompressed_without_inflating_it_all(
    server: Server, read: str
) -> None:
    """100 MB of zeros gzip to ~100 kB, under any sane cap on the wire: the cap counts
    what it inflates to, and reading stops early, so memory never holds the 100 MB."""
    with make_client(allowed=["127.0.0.1/32"], max_response_bytes=MB) as client:
        request = client.build_request("GET", server.url(f"/gzip?bytes={100 * MB}"))
        assert len(server.gzip(100 * MB)) < 200 * 1024

        def read_it() -> object:
            answer = client.send(request, stream=read == "iter_bytes")
            readers: dict[str, Callable[[], object]] = {
                "read": answer.read,
                "json": answer.json,
                "text": lambda: answer.text,
                "iter_bytes": lambda: list(answer.iter_bytes()),
            }
            return readers[read]()

        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge):
                read_it()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 * MB, f"reading the gzip bomb peaked at {peak / MB:.0f} MB"
        small = client.get(server.url(f"/gzip?bytes={MB // 2}"))
        assert small.content == b"\0" * (MB // 2)


# --- the transaction guard -----------------------------------------------------------------


@pytest.mark.parametrize("scope", ["session_scope", "read_scope"])
def test_no_request_while_a_transaction_is_open(
    db_backend: str, server: Server, scope: str
) -> None:
    with make_client(allowed=["127.0.0.1/32"]) as client:
        with getattr(db, scope)() as session:
            session.execute(text("SELECT 1"))
            with pytest.raises(TransactionOpenError, match="transaction open"):
                client.get(server.url("/"))
        assert server.hits == []
        assert client.get(server.url("/")).text == "ok"  # after the commit
    assert server.hits == ["/"]


# --- what the client always was ------------------------------------------------------------


def test_make_client_never_follows_redirects() -> None:
    with make_client(connect_timeout=2.0, read_timeout=9.0) as client:
        assert client.follow_redirects is False
        assert client.headers["User-Agent"] == USER_AGENT
        assert client.timeout.connect == 2.0
        assert client.timeout.read == 9.0


def test_make_client_keeps_no_cookies() -> None:
    """The client is shared by every channel: one platform's cookie must not be sent on
    another channel's request."""
    url = "https://platform.example/api/v1/statuses"
    with make_client() as client:
        request = client.build_request("POST", url)
        answer = httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, request=request)
        client.cookies.extract_cookies(answer)
        client.cookies.set("other", "x", domain="platform.example")
        assert not client.cookies
        assert "cookie" not in client.build_request("POST", url).headers
        with pytest.raises(TypeError, match="keeps no cookies"):
            client.cookies = {"session": "abc"}
