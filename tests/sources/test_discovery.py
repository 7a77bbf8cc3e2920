"""Discovery: the feeds a page advertises, and telling a page from a feed."""

from __future__ import annotations

import pytest

from herald.sources.discovery import find_feeds, looks_like_html
from tests.fakes.feed_server import feed_file


def test_a_page_advertising_rss_and_atom_gives_both_in_order() -> None:
    page = feed_file("page_with_feeds.html")
    # Attribute case, a rel with several tokens, a type with parameters, relative and
    # absolute hrefs; the repeated and the empty link are left out.
    assert find_feeds(page, "https://workshop.example.io/blog/index.html") == [
        "https://workshop.example.io/feed.rss",
        "https://workshop.example.io/feed.atom",
    ]


def test_a_page_advertising_nothing_gives_nothing() -> None:
    # A plain <a> to a feed, a language alternate and a non-alternate feed link are not
    # advertisements.
    assert find_feeds(feed_file("page_without_feeds.html"), "https://example.org/") == []


def test_hrefs_resolve_against_the_first_base_href() -> None:
    page = b"""<html><head><base href="https://cdn.example.net/site/"><base href="/x/">
    <link rel=alternate type=application/feed+json href=feed.json>
    <link rel="alternate" type="application/json" href="/api/feed.json"/>
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    </head></html>"""
    assert find_feeds(page, "https://example.org/blog/") == [
        "https://cdn.example.net/site/feed.json",
        "https://cdn.example.net/api/feed.json",
    ]


def test_a_page_in_another_charset_still_gives_its_links() -> None:
    page = '<html><head><title>Grüße</title><link rel="alternate" '
    page += 'type="application/atom+xml" href="/atom.xml"></head></html>'
    assert find_feeds(page.encode("latin-1"), "http://koeln.example.de/") == [
        "http://koeln.example.de/atom.xml"
    ]


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("page_with_feeds.html", "text/html; charset=utf-8", True),
        ("page_without_feeds.html", None, True),
        # Servers send feeds as text/html and pages as text/xml: the body decides.
        ("page_with_feeds.html", "text/xml", True),
        ("rss20_guids.xml", "text/html", False),
        ("rss091.xml", "text/html", False),  # a DOCTYPE, but an RSS one
        ("rss10_rdf.xml", "text/html", False),
        ("atom10_xml_base.xml", "text/html", False),
        ("jsonfeed11.json", "text/html", False),
    ],
)
def test_looks_like_html(name: str, content_type: str | None, expected: bool) -> None:
    assert looks_like_html(feed_file(name), content_type) is expected


def test_an_rss_item_quoting_html_is_still_a_feed() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><item><description>'
    body += b"&lt;html&gt; <![CDATA[<html><body>x</body></html>]]></description></item>"
    assert looks_like_html(body, "text/html") is False


def test_when_the_body_says_nothing_the_content_type_decides() -> None:
    assert looks_like_html(b"just some text", "text/html") is True
    assert looks_like_html(b"just some text", "application/xml") is False
    assert looks_like_html(b"\xef\xbb\xbf  <HTML lang=en>", None) is True


def test_unusable_hrefs_are_skipped() -> None:
    page = b"""<html><head><base href="http://[bad/">
    <link rel="alternate" type="application/rss+xml" href="http://[::1/feed">
    <link rel="alternate" type="application/rss+xml" href="http://x.example:99999/feed">
    <link rel="alternate" type="application/rss+xml" href="/good.xml"></head></html>"""
    assert find_feeds(page, "https://example.org/") == ["https://example.org/good.xml"]
