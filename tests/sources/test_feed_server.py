"""The local feed server the source tests and the benchmark rely on."""

from __future__ import annotations

import http.client

from tests.fakes.feed_server import FeedServer


def test_stopping_closes_kept_alive_connections() -> None:
    # A client's pooled connection must not reach a stopped server's handlers (the next
    # server may listen on the same port).
    server = FeedServer().start()
    server.put("/feed.xml", b"<rss/>")
    connection = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=5)
    try:
        connection.request("GET", "/feed.xml")
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (200, b"<rss/>")
        assert answer.getheader("Connection") != "close"  # kept alive
        server.stop()
        assert connection.sock is not None
        assert connection.sock.recv(1) == b""  # closed by the server, not by a timeout
    finally:
        connection.close()
        server.stop()


def test_behaviour_for_a_number_of_answers_then_the_document() -> None:
    with FeedServer() as server:
        server.put("/feed.xml", b"<rss/>")
        server.behave("/feed.xml", status=503, headers={"Retry-After": "5"}, times=2)
        statuses = []
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=5)
            connection.request("GET", "/feed.xml")
            statuses.append(connection.getresponse().status)
            connection.close()
        assert statuses == [503, 503, 200]
        assert server.stats("/feed.xml").requests == 3


def _port(server: FeedServer) -> int:
    return int(server.url("/").rsplit(":", 1)[1].rstrip("/"))
