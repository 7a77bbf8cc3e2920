"""One conditional GET: validators sent and honoured (a 304 moves no body), redirects
followed hop by hop (a permanent one gives the new URL to store), the server's wait hints,
error statuses returned as answers, and every failure to get an answer raised as
FetchFailed, retryable or not."""

from __future__ import annotations

import gzip
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from herald.core.clock import set_clock
from herald.core.http import make_client
from herald.sources.fetch import FEED_ACCEPT, FetchFailed, Validators, fetch, hint_seconds
from tests.fakes.feed_server import FeedServer, feed_file

FEED = feed_file("rss20_guids.xml")


def test_a_conditional_get_answered_304_transfers_no_body(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", FEED)
    first = fetch(feed_server.url("/feed.xml"))
    assert (first.status, first.body, first.wire_bytes) == (200, FEED, len(FEED))
    assert first.validators.etag and first.validators.last_modified
    assert first.content_type == "application/rss+xml; charset=utf-8"

    second = fetch(feed_server.url("/feed.xml"), first.validators)

    assert (second.status, second.body, second.wire_bytes) == (304, b"", 0)
    stats = feed_server.stats("/feed.xml")
    assert (stats.requests, stats.conditional, stats.not_modified) == (2, 1, 1)
    assert stats.body_bytes == len(FEED)  # the first answer's only
    sent = feed_server.seen("/feed.xml")[1]
    assert sent["if-none-match"] == first.validators.etag
    assert sent["if-modified-since"] == first.validators.last_modified


def test_last_modified_alone_gets_304_until_the_document_changes(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", FEED, etag=False)
    first = fetch(feed_server.url("/feed.xml"))
    assert first.validators == Validators(last_modified=first.validators.last_modified)
    assert first.validators.last_modified

    assert fetch(feed_server.url("/feed.xml"), first.validators).status == 304
    feed_server.put("/feed.xml", FEED.replace(b"Fog season", b"Fog season, revised"), etag=False)
    changed = fetch(feed_server.url("/feed.xml"), first.validators)
    assert changed.status == 200
    assert b"Fog season, revised" in changed.body
    assert changed.validators.last_modified != first.validators.last_modified


def test_an_edited_document_is_sent_again_with_new_validators(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", FEED)
    first = fetch(feed_server.url("/feed.xml"))
    feed_server.put("/feed.xml", FEED + b"\n")
    again = fetch(feed_server.url("/feed.xml"), first.validators)
    assert (again.status, again.body) == (200, FEED + b"\n")
    assert again.validators.etag != first.validators.etag


def test_it_asks_for_feeds_and_compression(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", FEED)
    fetch(feed_server.url("/feed.xml"))
    sent = feed_server.seen("/feed.xml")[0]
    assert sent["accept"] == FEED_ACCEPT
    assert sent["accept-encoding"] == "gzip, deflate"
    assert "if-none-match" not in sent and "if-modified-since" not in sent
    assert sent["user-agent"].startswith("Herald/")


def test_a_gzip_body_is_read_decompressed_and_counted_compressed(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", FEED)
    feed_server.behave("/feed.xml", gzip=True)
    fetched = fetch(feed_server.url("/feed.xml"))
    assert fetched.body == FEED
    assert fetched.wire_bytes == len(gzip.compress(FEED, mtime=0)) < len(FEED)
    assert feed_server.stats("/feed.xml").body_bytes == fetched.wire_bytes


@pytest.mark.parametrize("status", [301, 308])
def test_a_permanent_redirect_gives_the_url_to_store(feed_server: FeedServer, status: int) -> None:
    feed_server.put("/new/feed.xml", FEED)
    feed_server.behave("/old.xml", status=status, location="/new/feed.xml")
    fetched = fetch(feed_server.url("/old.xml"))
    assert (fetched.status, fetched.body) == (200, FEED)
    assert fetched.url == fetched.moved_to == feed_server.url("/new/feed.xml")


@pytest.mark.parametrize("status", [302, 303, 307])
def test_a_temporary_redirect_is_followed_but_not_stored(
    feed_server: FeedServer, status: int
) -> None:
    feed_server.put("/feed.xml", FEED)
    feed_server.behave("/today.xml", status=status, location=feed_server.url("/feed.xml"))
    fetched = fetch(feed_server.url("/today.xml"))
    assert (fetched.status, fetched.url, fetched.moved_to) == (
        200,
        feed_server.url("/feed.xml"),
        None,
    )


def test_a_chain_is_permanent_only_if_every_hop_is(feed_server: FeedServer) -> None:
    feed_server.put("/c/feed.xml", FEED)
    feed_server.behave("/a.xml", status=301, location="b/")  # relative to /a.xml: /b/
    feed_server.behave("/b/", status=308, location="../c/feed.xml")
    assert fetch(feed_server.url("/a.xml")).moved_to == feed_server.url("/c/feed.xml")

    feed_server.behave("/b/", status=302, location="../c/feed.xml")
    temporary = fetch(feed_server.url("/a.xml"))
    assert (temporary.url, temporary.moved_to) == (feed_server.url("/c/feed.xml"), None)


def test_validators_go_to_every_hop(feed_server: FeedServer) -> None:
    feed_server.put("/new.xml", FEED)
    validators = fetch(feed_server.url("/new.xml")).validators
    feed_server.behave("/old.xml", status=301, location="/new.xml")
    assert fetch(feed_server.url("/old.xml"), validators).status == 304


def test_a_redirect_loop_fails_for_good(feed_server: FeedServer) -> None:
    feed_server.behave("/a", status=302, location="/b")
    feed_server.behave("/b", status=301, location="/a")
    with pytest.raises(FetchFailed, match="loop") as raised:
        fetch(feed_server.url("/a"))
    assert raised.value.retryable is False
    assert feed_server.stats("/a").requests == feed_server.stats("/b").requests == 1


def test_too_many_redirects_fail_for_good(feed_server: FeedServer) -> None:
    for hop in range(4):
        feed_server.behave(f"/{hop}", status=307, location=f"/{hop + 1}")
    feed_server.put("/4", FEED)
    assert fetch(feed_server.url("/0"), max_redirects=4).status == 200
    with pytest.raises(FetchFailed, match="more than 3") as raised:
        fetch(feed_server.url("/0"), max_redirects=3)
    assert raised.value.retryable is False


def test_a_redirect_to_an_unusable_address_fails_for_good(feed_server: FeedServer) -> None:
    feed_server.behave("/feed.xml", status=301, location="http://[::1/feed.xml")
    with pytest.raises(FetchFailed, match="unusable address") as raised:
        fetch(feed_server.url("/feed.xml"))
    assert raised.value.retryable is False


@pytest.mark.parametrize("status", [404, 410, 429, 500, 503])
def test_error_statuses_are_answers_not_exceptions(feed_server: FeedServer, status: int) -> None:
    feed_server.behave("/feed.xml", status=status)
    fetched = fetch(feed_server.url("/feed.xml"))
    assert (fetched.status, fetched.moved_to) == (status, None)


def test_retry_after_and_max_age_give_the_wait_hint(feed_server: FeedServer) -> None:
    feed_server.behave("/busy.xml", status=429, headers={"Retry-After": "120"})
    assert fetch(feed_server.url("/busy.xml")).hint_seconds == 120

    feed_server.put("/feed.xml", FEED)
    feed_server.behave("/feed.xml", headers={"Cache-Control": "public, max-age=3600"})
    answer = fetch(feed_server.url("/feed.xml"))
    assert answer.hint_seconds == 3600
    # A 304 carries the server's hint too.
    assert fetch(feed_server.url("/feed.xml"), answer.validators).hint_seconds == 3600

    feed_server.behave("/plain.xml")
    feed_server.put("/plain.xml", FEED)
    assert fetch(feed_server.url("/plain.xml")).hint_seconds is None


def test_retry_after_as_an_http_date_is_read_against_the_clock() -> None:
    now = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
    set_clock(lambda: now)
    try:
        later = format_datetime(now + timedelta(minutes=5), usegmt=True)
        assert hint_seconds(httpx.Headers({"Retry-After": later})) == 300
        earlier = format_datetime(now - timedelta(minutes=5), usegmt=True)
        assert hint_seconds(httpx.Headers({"Retry-After": earlier})) == 0
    finally:
        set_clock(None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Cache-Control": "max-age=600"}, 600),
        ({"Cache-Control": 'private, MAX-AGE="90"'}, 90),
        ({"Cache-Control": "s-maxage=900, max-age=60"}, 60),  # s-maxage is for shared caches
        ({"Cache-Control": "no-cache"}, None),
        ({"Cache-Control": "max-age=soon"}, None),
        ({"Retry-After": "30", "Cache-Control": "max-age=600"}, 600),
        ({"Retry-After": "7200", "Cache-Control": "max-age=600"}, 7200),
        ({"Retry-After": "tomorrow-ish"}, None),
        ({}, None),
    ],
)
def test_hint_seconds_is_the_longest_wait_asked_for(
    headers: dict[str, str], expected: int | None
) -> None:
    assert hint_seconds(httpx.Headers(headers)) == expected


def test_the_guard_refuses_a_private_address_when_not_allowed(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", FEED)
    with make_client(allowed=()) as production, pytest.raises(FetchFailed) as raised:
        fetch(feed_server.url("/feed.xml"), client=production)
    assert raised.value.retryable is False
    assert raised.value.status_code == 422
    assert "loopback" in raised.value.message
    assert feed_server.stats("/feed.xml").requests == 0


def test_a_redirect_to_a_refused_address_is_refused(feed_server: FeedServer) -> None:
    feed_server.behave("/feed.xml", status=302, location="http://10.0.0.8/feed.xml")
    with make_client(allowed=("127.0.0.0/8",)) as client, pytest.raises(FetchFailed) as raised:
        fetch(feed_server.url("/feed.xml"), client=client)
    assert raised.value.retryable is False
    assert "private" in raised.value.message


def test_a_body_over_the_cap_fails_for_good(feed_server: FeedServer) -> None:
    feed_server.put("/big.xml", FEED)
    with (
        make_client(max_response_bytes=len(FEED) - 1) as small,
        pytest.raises(FetchFailed) as raised,
    ):
        fetch(feed_server.url("/big.xml"), client=small)
    assert raised.value.retryable is False
    assert "larger than" in raised.value.message


def test_a_gzip_body_over_the_cap_decompressed_fails(feed_server: FeedServer) -> None:
    feed_server.put("/big.xml", FEED * 50)
    feed_server.behave("/big.xml", gzip=True)
    limit = len(FEED) * 10  # well above the compressed size, well below the real one
    with make_client(max_response_bytes=limit) as small, pytest.raises(FetchFailed) as raised:
        fetch(feed_server.url("/big.xml"), client=small)
    assert feed_server.stats("/big.xml").body_bytes < limit
    assert raised.value.retryable is False


def test_a_server_too_slow_is_a_retryable_failure(feed_server: FeedServer) -> None:
    feed_server.put("/slow.xml", FEED)
    feed_server.behave("/slow.xml", delay=30)
    with pytest.raises(FetchFailed, match=r"did not answer within 0\.2 s") as raised:
        fetch(feed_server.url("/slow.xml"), timeout=0.2)
    assert raised.value.retryable is True


def test_a_server_dripping_its_answer_is_cut_off_at_the_timeout(feed_server: FeedServer) -> None:
    # Each piece comes well within the timeout; the whole answer would take 5 s.
    feed_server.put("/drip.xml", FEED * 10)
    feed_server.behave("/drip.xml", drip=0.05)
    with pytest.raises(FetchFailed, match=r"within 0\.3 s") as raised:
        fetch(feed_server.url("/drip.xml"), timeout=0.3)
    assert raised.value.retryable is True


def test_a_refused_connection_is_a_retryable_failure() -> None:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchFailed, match="could not be reached") as raised:
        fetch(f"http://127.0.0.1:{port}/feed.xml")
    assert raised.value.retryable is True


@pytest.mark.parametrize("url", ["ftp://example.org/feed.xml", "feed.xml", "http://"])
def test_a_url_that_cannot_be_fetched_fails_for_good(url: str) -> None:
    with pytest.raises(FetchFailed) as raised:
        fetch(url)
    assert raised.value.retryable is False
