"""Reading a feed source from the network: what a source check and a source test call.

:func:`read_feed` fetches the source's URL (conditionally, with the validators of the last
answer); when the answer is a web page it follows the first feed the page advertises
(so a person may give a site's address), and parses any 2xx answer. It touches no
database: the caller stores what it returns, before or after, never during.

:func:`test_feed` is the same read made for a person: it never raises for the network or
the document, and it tries a second, conditional request to tell whether the server
honours validators.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from herald.sources.discovery import find_feeds, looks_like_html
from herald.sources.feeds import FeedDocument, NotAFeed, parse_feed
from herald.sources.fetch import Fetched, FetchFailed, Validators, fetch


@dataclass(frozen=True)
class FeedRead:
    fetched: Fetched  # the feed's answer (the last one when a page was followed)
    feed_url: str  # the feed's URL (moved_to applied; the one found if a page was given)
    page_url: str | None  # the page's URL when the feed was found through a page
    document: FeedDocument | None  # None for 304 and for error statuses


class NoFeedAdvertised(NotAFeed):
    """The URL is a web page that advertises no feed; ``answer`` is the page's answer."""

    def __init__(self, message: str, answer: Fetched) -> None:
        super().__init__(message)
        self.answer = answer


def read_feed(url: str, validators: Validators | None = None) -> FeedRead:
    """Fetch and read the feed at ``url`` (module docstring). Raises :class:`FetchFailed`
    (no answer) and :class:`NotAFeed` (an answer that holds no feed).

    Pass the stored ``feed_url`` with its validators once a page has led to it: whether
    ``url`` is a page is known only from its answer, so the validators are sent with the
    first request too (a page unchanged since the feed's Last-Modified would answer 304)."""
    read = _locate(url, validators)
    return FeedRead(read.fetched, read.feed_url, read.page_url, _document(read))


def _locate(url: str, validators: Validators | None) -> FeedRead:
    """The feed's answer, through the page when ``url`` answers with one; not parsed."""
    fetched = fetch(url, validators)
    if not (_has_body(fetched) and looks_like_html(fetched.body, fetched.content_type)):
        return FeedRead(fetched, fetched.moved_to or url, None, None)
    # A page. The validators the caller keeps are the feed's (FeedRead.fetched is the
    # feed's answer), so they go to the feed found; the page's own are never returned.
    page_url = fetched.moved_to or url
    found = find_feeds(fetched.body, fetched.url)
    if not found:
        raise NoFeedAdvertised(
            f'{url} is an HTML page that advertises no feed (no <link rel="alternate" '
            'type="application/rss+xml"> or Atom or JSON Feed link); give the feed\'s URL',
            fetched,
        )
    feed = fetch(found[0], validators)
    return FeedRead(feed, feed.moved_to or found[0], page_url, None)


def _has_body(fetched: Fetched) -> bool:
    return 200 <= fetched.status < 300 and fetched.status != 204


def _document(read: FeedRead) -> FeedDocument | None:
    if not _has_body(read.fetched):
        return None
    return parse_feed(
        read.fetched.body, url=read.fetched.url, content_type=read.fetched.content_type
    )


@dataclass(frozen=True)
class FeedTest:
    """The answer of a source's connection test (POST /sources/{id}/test)."""

    reachable: bool
    status: int | None
    content_type: str | None
    format: str | None
    version: str | None
    title: str | None
    item_count: int
    newest_item_at: datetime | None
    # True: a second request with the validators got 304; False: it got a body again,
    # or the answer gave no validators; None: not tried (no feed was read).
    conditional_get: bool | None
    feed_url: str | None
    page_url: str | None
    elapsed_seconds: float
    problem: str | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        fields = asdict(self)
        if self.newest_item_at is not None:
            fields["newest_item_at"] = self.newest_item_at.isoformat()
        return fields


def test_feed(url: str) -> FeedTest:
    """Read ``url`` once as a check would (with no validators) and say what happened."""
    started = time.perf_counter()
    try:
        read = _locate(url, None)
    except FetchFailed as exc:
        return _report(None, elapsed=time.perf_counter() - started, error=exc.message)
    except NoFeedAdvertised as exc:
        return _report(exc.answer, elapsed=exc.answer.elapsed_seconds, error=exc.message)
    # The page's time too, when the feed was found through one.
    elapsed = time.perf_counter() - started
    try:
        document = _document(read)
    except NotAFeed as exc:
        return _report(read.fetched, read, elapsed=elapsed, error=exc.message)
    if document is None:
        error = f"the server answered HTTP {read.fetched.status}"
        return _report(read.fetched, read, elapsed=elapsed, error=error)
    return _report(
        read.fetched,
        read,
        document,
        elapsed=elapsed,
        conditional_get=_honours_validators(read),
    )


def _honours_validators(read: FeedRead) -> bool:
    """Whether the feed answers 304 when asked again with the validators it just gave."""
    if not read.fetched.validators:
        return False
    try:
        again = fetch(read.fetched.url, read.fetched.validators)
    except FetchFailed:
        return False
    return again.status == 304


def _report(
    fetched: Fetched | None,
    read: FeedRead | None = None,
    document: FeedDocument | None = None,
    *,
    elapsed: float,
    conditional_get: bool | None = None,
    error: str | None = None,
) -> FeedTest:
    dates = [
        moment
        for entry in (document.entries if document else [])
        if (moment := entry.published_at or entry.updated_at) is not None
    ]
    return FeedTest(
        reachable=fetched is not None,
        status=fetched.status if fetched else None,
        content_type=fetched.content_type if fetched else None,
        format=document.format if document else None,
        version=document.version if document else None,
        title=document.title if document else None,
        item_count=len(document.entries) if document else 0,
        newest_item_at=max(dates) if dates else None,
        conditional_get=conditional_get,
        feed_url=read.feed_url if read else None,
        page_url=read.page_url if read else None,
        elapsed_seconds=elapsed,
        problem=document.problem if document else None,
        error=error,
    )
