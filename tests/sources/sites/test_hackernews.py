"""Hacker News through a local Algolia HN search API: the newest stories, searches paged
by Algolia's page numbers, and its failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from herald.core.errors import InvalidInput
from herald.sources import sites
from herald.sources.sites import SiteError, base
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.sites import EPOCH
from tests.sources.sites.helpers import Waits


@pytest.mark.parametrize(
    ("query", "settings", "expected"),
    [
        (" rust ", {}, (None, "rust", {"tags": "story"})),
        (
            "rust",
            {"tags": "show_hn", "min_points": 10},
            (None, "rust", {"tags": "show_hn", "min_points": 10}),
        ),
    ],
)
def test_a_source_is_a_search(
    query: str, settings: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    assert sites.check_config("hackernews", url=None, query=query, settings=settings) == expected


@pytest.mark.parametrize(
    ("url", "query", "settings", "message"),
    [
        (None, "", {}, "needs a query"),
        ("https://news.ycombinator.com", "rust", {}, "not a URL"),
        (None, "rust", {"tags": "everything"}, "settings.tags is one of"),
        (None, "rust", {"min_points": -1}, "min_points is a whole number"),
    ],
)
def test_a_config_that_cannot_work_says_what_to_change(
    url: str | None, query: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        sites.check_config("hackernews", url=url, query=query, settings=settings)
    assert message in raised.value.message


def test_latest_reads_the_newest_matching_stories(hackernews: FakeHackerNews) -> None:
    hackernews.add_stories(40, word="rust")
    hackernews.add_stories(5, word="golang")
    hackernews.add_story("Rust, but a comment", created=EPOCH, tags=("comment",))

    read = sites.latest("hackernews", url=None, query="rust", settings={})

    assert (read.status, read.title) == (200, "Hacker News: rust")
    assert len(read.entries) == 30
    ask, linked = read.entries[0], read.entries[1]
    assert ask.title == "Rust story 0" and ask.guid and ask.guid.startswith("hackernews:")
    object_id = ask.guid.removeprefix("hackernews:")
    # Ask HN has no URL: the item's own page stands in; its text is the summary.
    assert ask.link == ask.comments_url == f"{hackernews.base_url}/item?id={object_id}"
    assert ask.summary_text == "Ask HN: rust 0?"
    assert linked.link == "https://example.com/rust/1"
    assert (linked.score, linked.comments) == (7, 1)
    assert ask.published_at == EPOCH
    (seen,) = hackernews.requests
    assert seen.path == "/api/v1/search_by_date"
    assert "tags=story" in seen.query and "hitsPerPage=30" in seen.query


def test_a_search_pages_by_number_and_lets_algolia_filter_since(
    hackernews: FakeHackerNews,
) -> None:
    hackernews.add_stories(250, word="sqlite")
    since = EPOCH - timedelta(minutes=7 * 229)  # the 230 newest

    sizes, cursor = [], None
    while True:
        page = sites.search("hackernews", "sqlite", since=since, cursor=cursor)
        sizes.append(len(page.entries))
        cursor = page.next_cursor
        if cursor is None:
            break

    assert sizes == [100, 100, 30]
    queries = [seen.query for seen in hackernews.requests]
    assert [q.split("page=")[1].split("&")[0] for q in queries] == ["0", "1", "2"]
    assert all(f"created_at_i%3E%3D{int(since.timestamp())}" in q for q in queries)


def test_a_429_with_retry_after_is_honoured(hackernews: FakeHackerNews, waits: Waits) -> None:
    hackernews.add_stories(3)
    hackernews.fail_next(429, headers={"Retry-After": "30"})
    read = sites.latest("hackernews", url=None, query="rust", settings={})
    assert len(read.entries) == 3
    assert sum(waits.slept) >= 30 and hackernews.count() == 2


def test_server_errors_are_retried_with_backoff_then_given_up(
    hackernews: FakeHackerNews, waits: Waits
) -> None:
    hackernews.add_stories(3)
    for _ in range(base.ATTEMPTS):
        hackernews.fail_next(503, "down for maintenance")
    with pytest.raises(SiteError) as raised:
        sites.latest("hackernews", url=None, query="rust", settings={})
    assert (raised.value.status, raised.value.retryable) == (503, True)
    assert "down for maintenance" in raised.value.message
    assert hackernews.count() == base.ATTEMPTS
    backoffs = [w for w in waits.slept if w >= base.BASE_BACKOFF]
    assert backoffs[:3] == [1.0, 2.0, 4.0]


def test_a_slow_or_dropped_answer_is_retried(
    hackernews: FakeHackerNews, monkeypatch: pytest.MonkeyPatch
) -> None:
    hackernews.add_stories(2)
    monkeypatch.setattr(base, "TIMEOUT", 0.3)
    hackernews.hang_next()
    hackernews.drop_next()
    read = sites.latest("hackernews", url=None, query="rust", settings={})
    assert len(read.entries) == 2
    assert hackernews.count() == 3


def test_a_bad_request_is_not_retried(hackernews: FakeHackerNews) -> None:
    hackernews.fail_next(400, "invalid numericFilters")
    with pytest.raises(SiteError) as raised:
        sites.latest("hackernews", url=None, query="rust", settings={})
    assert (raised.value.status, raised.value.retryable) == (400, False)
    assert hackernews.count() == 1
