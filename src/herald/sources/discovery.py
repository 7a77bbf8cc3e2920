"""Finding the feeds a web page advertises, so that a person may give Herald a site's page
instead of its feed.

A page advertises a feed with ``<link rel="alternate" type="application/rss+xml"
href="...">`` in its head (likewise Atom and JSON Feed; the RSS Advisory Board's
autodiscovery note and the HTML standard's ``rel=alternate`` with a type). ``rel`` is a
set of space-separated tokens, compared without case; ``href`` is resolved against the
page's ``<base href>`` if it has one, else its URL.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/feed+json", "application/json"}
)

# How much of a page is read for its <link>s: they belong in the head.
_SCAN_BYTES = 512 * 1024
_HEAD_BYTES = 2048
_HTML_START = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]")
_FEED_ROOT = re.compile(rb"<(rss|feed|rdf:rdf)[\s>]")
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class _FeedLinks(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.found: list[str] = []
        self._based = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: (value or "").strip() for name, value in attrs}
        if tag == "base" and not self._based and values.get("href"):
            # Only the first <base href> counts (HTML standard).
            self.base_url = absolute_url(self.base_url, values["href"]) or self.base_url
            self._based = True
        elif tag == "link" and values.get("href"):
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").split(";")[0].strip().lower()
            if "alternate" in rels and kind in FEED_TYPES:
                url = absolute_url(self.base_url, values["href"])
                if url is not None and url not in self.found:
                    self.found.append(url)

    handle_startendtag = handle_starttag


def absolute_url(base: str, href: str) -> str | None:
    """``href`` made absolute against ``base``; None unless that is a well-formed http(s)
    URL (a bad IPv6 literal or port in a page or feed must not stop it being read)."""
    try:
        url = urljoin(base, href)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def find_feeds(html: bytes, base_url: str) -> list[str]:
    """The feeds the page advertises: absolute http(s) URLs, in document order, each once."""
    parser = _FeedLinks(base_url)
    # The markup that matters is ASCII; any charset's other bytes can only be text.
    parser.feed(html[:_SCAN_BYTES].decode("utf-8", "replace"))
    parser.close()
    return parser.found


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """Whether an answer is a web page rather than a feed. The body decides when it says
    (servers often send feeds as text/html, and pages as text/xml); the Content-Type
    only when it does not."""
    head = body[:_HEAD_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"{"):
        return False  # JSON
    html = _HTML_START.search(head)
    feed = _FEED_ROOT.search(head)
    if html or feed:
        # Whichever comes first is the document (an RSS item may quote "<html>").
        return feed is None or (html is not None and html.start() < feed.start())
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind in _HTML_TYPES
