"""Reading a feed source over the network, as a check and a source test do: against the
local feed server, which honours and counts conditional GETs."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from herald.sources import feed_reader  # not its names: pytest would collect test_feed
from herald.sources.feed_reader import NoFeedAdvertised, read_feed
from herald.sources.feeds import NotAFeed
from herald.sources.fetch import fetch
from tests.fakes.feed_server import RSS, FeedServer, feed_file

ATOM = "application/atom+xml"
JSON_FEED = "application/feed+json"
HTML = "text/html; charset=utf-8"


# --- the three checks, at the network's end ---------------------------------------


def rss_next(body: bytes) -> bytes:
    """One new item and one edited item."""
    new = b"""<item><title>Storm warning</title>
      <guid isPermaLink="false">lighthouse-post-1043</guid>
      <link>https://lighthouse.example.org/2026/11/storm</link>
      <description>Gale force 9.</description>
    </item>"""
    edited = body.replace(b"A Fresnel lens weighs more", b"A Fresnel lens weighs far more")
    return edited.replace(b"<item>", new + b"<item>", 1)


def atom_next(body: bytes) -> bytes:
    new = b"""<entry><title>Glue-ups</title><link href="posts/glue"/>
      <id>tag:workshop.example.io,2026:post-78</id><updated>2026-11-05T10:00:00Z</updated>
      <summary>Clamp everything.</summary></entry>"""
    edited = body.replace(b"Cut on the waste side.", b"Always cut on the waste side.")
    return edited.replace(b"<entry>", new + b"<entry>", 1)


def json_next(body: bytes) -> bytes:
    data = json.loads(body)
    data["items"][0]["content_html"] = "<p>The couchettes are back, with showers.</p>"
    data["items"].insert(
        0, {"id": "https://nighttrains.example.com/p/new", "title": "New", "content_text": "New"}
    )
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("name", "content_type", "changed"),
    [
        ("rss20_guids.xml", RSS, rss_next),
        ("atom10_xml_base.xml", ATOM, atom_next),
        ("jsonfeed11.json", JSON_FEED, json_next),
    ],
)
def test_three_checks_unchanged_then_one_new_and_one_edited_item(
    feed_server: FeedServer, name: str, content_type: str, changed: Callable[[bytes], bytes]
) -> None:
    body = feed_server.put_file("/feed", name, content_type)
    url = feed_server.url("/feed")

    first = read_feed(url)
    assert first.document is not None and first.fetched.status == 200
    before = {e.key: e.content_hash for e in first.document.entries}

    second = read_feed(url, first.fetched.validators)
    assert (second.fetched.status, second.document, second.fetched.wire_bytes) == (304, None, 0)
    assert feed_server.stats("/feed").body_bytes == len(body)  # the second moved no body

    feed_server.put("/feed", changed(body), content_type)
    third = read_feed(url, first.fetched.validators)
    assert third.document is not None and third.fetched.status == 200
    after = {e.key: e.content_hash for e in third.document.entries}
    assert len(after.keys() - before.keys()) == 1  # exactly one new item
    assert before.keys() <= after.keys()
    edited = [key for key in before if before[key] != after[key]]
    assert len(edited) == 1  # one item kept its key and changed its content
    stats = feed_server.stats("/feed")
    assert (stats.requests, stats.conditional, stats.not_modified) == (3, 2, 1)


# --- read_feed ----------------------------------------------------------------------------


def test_a_feed_is_read_and_its_validators_returned(feed_server: FeedServer) -> None:
    feed_server.put_file("/feed.xml", "rss20_guids.xml")
    read = read_feed(feed_server.url("/feed.xml"))
    assert (read.feed_url, read.page_url) == (feed_server.url("/feed.xml"), None)
    assert read.document is not None and read.document.title == "Lighthouse Notes"
    assert read.fetched.validators.etag


def test_a_page_is_followed_to_the_first_feed_it_advertises(feed_server: FeedServer) -> None:
    feed_server.put_file("/blog/", "page_with_feeds.html", HTML)
    feed_server.put_file("/feed.rss", "rss20_guids.xml")
    feed_server.put_file("/feed.atom", "atom10_xml_base.xml", ATOM)  # advertised second

    read = read_feed(feed_server.url("/blog/"))

    assert read.page_url == feed_server.url("/blog/")
    assert read.feed_url == read.fetched.url == feed_server.url("/feed.rss")
    assert read.document is not None and read.document.format == "rss"
    assert feed_server.stats("/feed.atom").requests == 0

    # The validators returned are the feed's, and they go to the feed found.
    assert read.fetched.validators == fetch(feed_server.url("/feed.rss")).validators
    again = read_feed(feed_server.url("/blog/"), read.fetched.validators)
    assert (again.fetched.status, again.document) == (304, None)
    assert again.feed_url == feed_server.url("/feed.rss")
    assert feed_server.stats("/blog/").not_modified == 0
    assert feed_server.stats("/feed.rss").not_modified == 1


def test_a_page_advertising_no_feed_is_not_a_feed(feed_server: FeedServer) -> None:
    feed_server.put_file("/", "page_without_feeds.html", HTML)
    with pytest.raises(NoFeedAdvertised, match="advertises no feed") as raised:
        read_feed(feed_server.url("/"))
    assert raised.value.answer.status == 200
    assert raised.value.status_code == 422


def test_an_advertised_feed_that_is_not_one_is_not_a_feed(feed_server: FeedServer) -> None:
    feed_server.put_file("/", "page_with_feeds.html", HTML)
    feed_server.put("/feed.rss", b'{"not": "a feed"}', "application/json")
    with pytest.raises(NotAFeed, match="not a JSON Feed"):
        read_feed(feed_server.url("/"))


def test_a_permanent_move_gives_the_new_feed_url(feed_server: FeedServer) -> None:
    feed_server.put_file("/new.xml", "rss20_guids.xml")
    feed_server.behave("/old.xml", status=301, location="/new.xml")
    assert read_feed(feed_server.url("/old.xml")).feed_url == feed_server.url("/new.xml")

    feed_server.behave("/elsewhere.xml", status=302, location="/new.xml")
    read = read_feed(feed_server.url("/elsewhere.xml"))
    assert read.feed_url == feed_server.url("/elsewhere.xml")  # a temporary move is not kept
    assert read.fetched.url == feed_server.url("/new.xml")


@pytest.mark.parametrize("status", [404, 410, 429, 503])
def test_an_error_status_is_returned_without_a_document(
    feed_server: FeedServer, status: int
) -> None:
    feed_server.behave("/feed.xml", status=status, headers={"Retry-After": "60"})
    read = read_feed(feed_server.url("/feed.xml"))
    assert (read.fetched.status, read.document, read.fetched.hint_seconds) == (status, None, 60)


def test_an_error_page_in_html_is_not_searched_for_feeds(feed_server: FeedServer) -> None:
    # A 404 page advertising the site's feed is still a 404 for this URL.
    feed_server.put_file("/feed.rss", "rss20_guids.xml")
    feed_server.put_file("/gone", "page_with_feeds.html", HTML)
    feed_server.behave("/gone", status=404)
    assert read_feed(feed_server.url("/gone")).fetched.status == 404
    assert feed_server.stats("/feed.rss").requests == 0


# --- test_feed ------------------------------------------------------------------------------


def test_the_test_reports_a_feed_that_honours_validators(feed_server: FeedServer) -> None:
    feed_server.put_file("/feed.xml", "rss20_guids.xml")
    report = feed_reader.test_feed(feed_server.url("/feed.xml"))
    assert report.reachable and report.status == 200 and report.error is None
    assert (report.format, report.version, report.title) == ("rss", "rss20", "Lighthouse Notes")
    assert report.item_count == 3
    assert report.newest_item_at == datetime(2026, 11, 3, 8, 30, tzinfo=UTC)
    assert report.conditional_get is True
    assert report.content_type == RSS
    assert report.feed_url == feed_server.url("/feed.xml") and report.page_url is None
    assert report.elapsed_seconds > 0
    stats = feed_server.stats("/feed.xml")
    assert (stats.requests, stats.not_modified) == (2, 1)


def test_the_test_reports_a_server_that_ignores_validators(feed_server: FeedServer) -> None:
    feed_server.put_file("/feed.xml", "rss20_guids.xml")
    feed_server.behave("/feed.xml", conditional=False)
    report = feed_reader.test_feed(feed_server.url("/feed.xml"))
    assert report.conditional_get is False
    assert feed_server.stats("/feed.xml").conditional == 1  # asked, and ignored


def test_the_test_reports_a_server_that_gives_no_validators(feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", feed_file("rss20_guids.xml"), etag=False, last_modified=False)
    report = feed_reader.test_feed(feed_server.url("/feed.xml"))
    assert report.conditional_get is False
    assert feed_server.stats("/feed.xml").requests == 1  # nothing to ask with


def test_the_test_follows_a_page_and_says_so(feed_server: FeedServer) -> None:
    feed_server.put_file("/", "page_with_feeds.html", HTML)
    feed_server.put_file("/feed.rss", "jsonfeed10.json", JSON_FEED)  # any advertised format
    report = feed_reader.test_feed(feed_server.url("/"))
    assert (report.page_url, report.feed_url) == (
        feed_server.url("/"),
        feed_server.url("/feed.rss"),
    )
    assert (report.format, report.version, report.item_count) == ("json", "json10", 2)
    assert report.conditional_get is True


def test_the_test_reports_a_malformed_feed_with_its_problem(feed_server: FeedServer) -> None:
    feed_server.put_file("/feed.xml", "rss20_malformed.xml")
    report = feed_reader.test_feed(feed_server.url("/feed.xml"))
    assert report.item_count == 2 and report.error is None
    assert report.problem is not None and "not well-formed" in report.problem


def test_the_test_reports_a_page_without_a_feed(feed_server: FeedServer) -> None:
    feed_server.put_file("/", "page_without_feeds.html", HTML)
    report = feed_reader.test_feed(feed_server.url("/"))
    assert (report.reachable, report.status, report.content_type) == (True, 200, HTML)
    assert report.error is not None and "advertises no feed" in report.error
    assert (report.format, report.item_count, report.conditional_get) == (None, 0, None)


def test_the_test_reports_a_document_that_is_no_feed(feed_server: FeedServer) -> None:
    feed_server.put("/data.json", b'{"rows": []}', "application/json")
    report = feed_reader.test_feed(feed_server.url("/data.json"))
    assert report.reachable and report.status == 200
    assert report.error is not None and "not a JSON Feed" in report.error


def test_the_test_reports_an_error_status(feed_server: FeedServer) -> None:
    feed_server.behave("/feed.xml", status=410)
    report = feed_reader.test_feed(feed_server.url("/feed.xml"))
    assert (report.reachable, report.status, report.error) == (
        True,
        410,
        "the server answered HTTP 410",
    )
    assert report.conditional_get is None


def test_the_test_reports_an_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = feed_reader.test_feed(f"http://127.0.0.1:{port}/feed.xml")
    assert (report.reachable, report.status, report.conditional_get) == (False, None, None)
    assert report.error is not None and "could not be reached" in report.error


def test_the_report_is_json(feed_server: FeedServer) -> None:
    feed_server.put_file("/feed.xml", "atom10_xml_base.xml", ATOM)
    fields = feed_reader.test_feed(feed_server.url("/feed.xml")).as_json()
    assert json.loads(json.dumps(fields))["newest_item_at"] == "2026-11-04T08:00:00+00:00"
    assert fields["format"] == "atom"
