"""Reddit: a subreddit's new posts and searches, read from a local Reddit that follows
its listing JSON, pagination, OAuth and rate-limit headers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from herald.core.errors import InvalidInput
from herald.sources import sites
from herald.sources.sites import SiteError
from herald.sources.sites.reddit import INTERVAL
from tests.fakes.reddit import FakeReddit
from tests.fakes.sites import EPOCH
from tests.sources.sites.helpers import Waits


@pytest.mark.parametrize(
    ("url", "query", "settings", "expected"),
    [
        (None, "r/python", {}, (None, "python", {"mode": "subreddit"})),
        (None, "/r/Python/", {}, (None, "Python", {"mode": "subreddit"})),
        (None, "python", {"mode": "subreddit"}, (None, "python", {"mode": "subreddit"})),
        (None, "rust+golang", {"mode": "subreddit"}, (None, "rust+golang", {"mode": "subreddit"})),
        (None, "  async io ", {}, (None, "async io", {"mode": "search"})),
        (
            None,
            "async",
            {"subreddit": "r/python"},
            (None, "async", {"mode": "search", "subreddit": "python"}),
        ),
        ("https://www.reddit.com/r/rust/", None, {}, (None, "rust", {"mode": "subreddit"})),
    ],
)
def test_a_source_is_a_subreddit_or_a_search(
    url: str | None, query: str | None, settings: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    assert sites.check_config("reddit", url=url, query=query, settings=settings) == expected


@pytest.mark.parametrize(
    ("url", "query", "settings", "message"),
    [
        (None, None, {}, "needs a query"),
        (None, "r/no spaces", {}, "is not a subreddit name"),
        (None, "python", {"mode": "hot"}, "settings.mode is one of"),
        (None, "python", {"sort": "top"}, "not ['sort']"),
        ("https://example.com/feed", None, {}, "not a URL"),
        (None, "r/python", {"subreddit": "rust"}, "settings.subreddit is for a search"),
    ],
)
def test_a_config_that_cannot_work_says_what_to_change(
    url: str | None, query: str | None, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        sites.check_config("reddit", url=url, query=query, settings=settings)
    assert message in raised.value.message


def test_latest_reads_a_subreddits_new_posts_newest_first(reddit: FakeReddit) -> None:
    reddit.add_posts("python", 30)
    reddit.add_post("rust", "Not this one", created=EPOCH + timedelta(hours=1))
    reddit.add_post(
        "python",
        "A link post",
        created=EPOCH + timedelta(minutes=1),
        url="https://example.com/article?utm_source=reddit",
        score=99,
        comments=12,
    )

    read = sites.latest("reddit", url=None, query="r/python", settings={})

    assert (read.status, read.title) == (200, "r/python")
    assert read.wire_bytes > 1000 and read.hint_seconds is None
    assert len(read.entries) == 25  # one page, as the monitor reads
    first, second = read.entries[:2]
    assert first.title == "A link post" and first.site == "reddit"
    assert first.guid and first.guid.startswith("reddit:t3_")
    assert first.link == "https://example.com/article?utm_source=reddit"
    assert (first.score, first.comments) == (99, 12)
    assert first.comments_url and first.comments_url.startswith(
        f"{reddit.base_url}/r/python/comments/"
    )
    assert first.published_at == EPOCH + timedelta(minutes=1)
    assert first.extra["subreddit"] == "python"
    # raw_json=1: the self text arrives as HTML, not escaped twice, and is sanitised.
    assert second.summary_html == "<p>About python, part 0 &amp; more</p>"
    assert second.summary_text == "About python, part 0 & more"
    # A self post links to itself (Reddit gives its own host's URL).
    assert second.link and second.comments_url
    assert second.link.removeprefix("https://www.reddit.com") == second.comments_url.removeprefix(
        reddit.base_url
    )
    dates = [e.published_at for e in read.entries if e.published_at is not None]
    assert len(dates) == len(read.entries)
    assert dates == sorted(dates, reverse=True)
    (seen,) = reddit.requests
    assert seen.path == "/r/python/new.json"
    assert "raw_json=1" in seen.query and "limit=25" in seen.query
    assert not reddit.violations


def test_a_search_pages_through_listings_until_since(reddit: FakeReddit, waits: Waits) -> None:
    reddit.add_posts("python", 150, word="asyncio")  # 7 minutes apart, newest at EPOCH
    reddit.add_posts("rust", 20, word="tokio")
    since = EPOCH - timedelta(minutes=7 * 119)  # the 120 newest are on or after it

    pages = []
    cursor = None
    while True:
        page = sites.search("reddit", "asyncio", since=since, cursor=cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert [len(p.entries) for p in pages] == [100, 20]
    entries = [e for p in pages for e in p.entries]
    assert len({e.key for e in entries}) == 120
    assert all(e.published_at and e.published_at >= since for e in entries)
    assert all("Asyncio" in e.title for e in entries)
    first, second = reddit.requests
    assert first.path == second.path == "/search.json"
    assert "sort=new" in first.query and "limit=100" in first.query
    last_guid = pages[0].entries[-1].guid
    assert last_guid is not None
    assert f"after={last_guid.removeprefix('reddit:')}" in second.query
    # Unauthenticated: the second request waited its turn (about 10 a minute).
    assert waits.slept == [INTERVAL]


def test_a_search_within_one_subreddit(reddit: FakeReddit) -> None:
    reddit.add_posts("python", 3, word="asyncio")
    reddit.add_posts("learnpython", 2, word="asyncio")
    read = sites.latest("reddit", url=None, query="asyncio", settings={"subreddit": "learnpython"})
    assert read.title == "r/learnpython: asyncio"
    assert len(read.entries) == 2
    (seen,) = reddit.requests
    assert seen.path == "/r/learnpython/search.json" and "restrict_sr=on" in seen.query


def test_with_an_app_an_app_only_token_is_taken_once(reddit: FakeReddit) -> None:
    reddit.add_posts("python", 5)
    for _ in range(2):
        read = sites.latest(
            "reddit", url=None, query="r/python", settings={}, credentials=reddit.credentials()
        )
        assert len(read.entries) == 5
    token, *listings = reddit.requests
    assert token.path == "/api/v1/access_token" and token.method == "POST"
    assert "grant_type=client_credentials" in token.body.decode()
    assert [seen.path for seen in listings] == ["/r/python/new", "/r/python/new"]
    assert all(seen.headers["authorization"].startswith("bearer ") for seen in listings)


def test_a_wrong_app_secret_is_refused_for_good(reddit: FakeReddit) -> None:
    wrong = {**reddit.credentials(), "client_secret": "nope"}
    with pytest.raises(SiteError) as raised:
        sites.latest("reddit", url=None, query="r/python", settings={}, credentials=wrong)
    assert (raised.value.status, raised.value.retryable) == (401, False)
    assert reddit.count() == 1  # no retry of a refusal


def test_an_unknown_subreddit_is_a_clear_error(reddit: FakeReddit) -> None:
    reddit.add_posts("python", 1)
    with pytest.raises(SiteError) as raised:
        sites.latest("reddit", url=None, query="r/nosuchplace", settings={})
    assert raised.value.status == 404 and not raised.value.retryable
    assert "no such page" in raised.value.message


def test_an_exhausted_window_holds_until_its_reset(reddit: FakeReddit, waits: Waits) -> None:
    reddit.add_posts("python", 2)
    reddit.refill(1)
    first = sites.latest("reddit", url=None, query="r/python", settings={})
    assert first.hint_seconds == 42  # X-Ratelimit-Remaining: 0, X-Ratelimit-Reset: 42
    reddit.refill()
    sites.latest("reddit", url=None, query="r/python", settings={})
    assert waits.slept == [pytest.approx(42)]
    assert reddit.count() == 2  # waited, never refused


def test_a_429_is_waited_out_and_retried(reddit: FakeReddit, waits: Waits) -> None:
    reddit.add_posts("python", 2)
    reddit.fail_next(429, headers={"Retry-After": "17"})
    read = sites.latest("reddit", url=None, query="r/python", settings={})
    assert len(read.entries) == 2
    assert reddit.count() == 2
    assert sum(waits.slept) >= 17
