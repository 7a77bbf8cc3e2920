"""Discourse forums: latest topics (of the forum or a category) and searches, against a
local forum that follows Discourse's JSON, its paging, API keys and rate limiter."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest

from herald.core.errors import InvalidInput
from herald.sources import sites
from herald.sources.sites import SiteError
from tests.fakes.discourse import FakeDiscourse
from tests.fakes.sites import EPOCH
from tests.sources.sites.helpers import Waits


@pytest.mark.parametrize(
    ("url", "query", "settings", "expected"),
    [
        ("https://Forum.Example.org/", None, {}, ("https://forum.example.org", None, {})),
        (
            "https://example.org/community/c/dev/7",
            " herald ",
            {},
            ("https://example.org/community", "herald", {"category": "dev/7"}),
        ),
        (
            "https://forum.example.org/latest",
            None,
            {"category": "/support/9/"},
            ("https://forum.example.org", None, {"category": "support/9"}),
        ),
    ],
)
def test_a_source_is_a_forum_with_an_optional_search_and_category(
    url: str, query: str | None, settings: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    assert sites.check_config("discourse", url=url, query=query, settings=settings) == expected


@pytest.mark.parametrize(
    ("url", "settings", "message"),
    [
        (None, {}, "needs the forum's URL"),
        ("forum.example.org", {}, "is not a forum URL"),
        ("ftp://forum.example.org", {}, "is not a forum URL"),
        ("http://[::1", {}, "is not a forum URL"),
        ("https://forum.example.org:99999", {}, "is not a forum URL"),
        ("https://forum.example.org", {"category": "dev"}, "slug and id as in its URL"),
        ("https://forum.example.org", {"tag": "x"}, "not ['tag']"),
    ],
)
def test_a_config_that_cannot_work_says_what_to_change(
    url: str | None, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        sites.check_config("discourse", url=url, query=None, settings=settings)
    assert message in raised.value.message


def test_latest_reads_the_forums_latest_topics(forum: FakeDiscourse) -> None:
    forum.add_topics(35)
    read = sites.latest("discourse", url=forum.base_url, query=None, settings={})
    assert read.status == 200 and read.title == f"127.0.0.1:{forum.port}"
    assert len(read.entries) == 30  # one page of the topic list
    first = read.entries[0]
    topic = max(forum.topics, key=lambda t: t["bumped_at"])
    assert first.guid == f"discourse:127.0.0.1:{forum.port}/t/{topic['id']}"
    assert first.link == f"{forum.base_url}/t/{topic['slug']}/{topic['id']}"
    assert first.title == "Herald question 0"
    assert first.summary_text == "How do I use herald for thing 0 & friends?"
    assert first.published_at == EPOCH
    assert forum.requests[0].path == "/latest.json"


def test_a_category_reads_its_own_latest(forum: FakeDiscourse) -> None:
    forum.add_topics(3, word="herald", category_id=7)
    forum.add_topics(2, word="billing", category_id=9)
    read = sites.latest("discourse", url=f"{forum.base_url}/c/support/9", query=None, settings={})
    assert [e.title for e in read.entries] == ["Billing question 0", "Billing question 1"]
    assert read.title == f"127.0.0.1:{forum.port} #support"
    assert forum.requests[0].path == "/c/support/9.json"


def test_a_search_pages_until_since(forum: FakeDiscourse) -> None:
    forum.add_topics(130, word="celery")
    forum.add_topics(10, word="redis")
    since = EPOCH - timedelta(minutes=7 * 109)  # the 110 newest

    pages, cursor = [], None
    while True:
        page = sites.search(
            "discourse", "celery", base_url=forum.base_url, since=since, cursor=cursor
        )
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert [len(p.entries) for p in pages] == [50, 50, 10]
    entry = pages[0].entries[0]
    post = next(p for p in forum.posts if p["created_at"] == "2026-11-30T12:00:00.000Z")
    assert entry.guid == f"discourse:127.0.0.1:{forum.port}/p/{post['id']}"
    assert entry.link is not None
    assert entry.link.endswith(f"/t/celery-question-0/{post['topic_id']}/1")
    assert entry.title == "Celery question 0" and entry.author == "sam"
    queries = [seen.query for seen in forum.requests]
    assert all("order%3Alatest" in q for q in queries)
    assert [q.split("page=")[1] for q in queries] == ["1", "2", "3"]


def test_a_private_forum_needs_its_api_key(waits: Waits) -> None:
    with FakeDiscourse(private=True) as private:
        private.add_topics(2)
        with pytest.raises(SiteError) as raised:
            sites.latest("discourse", url=private.base_url, query=None, settings={})
        assert (raised.value.status, raised.value.retryable) == (403, False)
        read = sites.latest(
            "discourse",
            url=private.base_url,
            query=None,
            settings={},
            credentials=private.credentials(),
        )
        assert len(read.entries) == 2
        assert private.requests[-1].headers["api-username"] == "system"


def test_its_rate_limiter_is_obeyed(forum: FakeDiscourse, waits: Waits) -> None:
    forum.add_topics(1)
    forum.fail_next(429, headers={"Retry-After": "12"})
    read = sites.latest("discourse", url=forum.base_url, query="herald", settings={})
    assert len(read.entries) == 1
    assert sum(waits.slept) >= 12


def test_a_wait_longer_than_a_request_should_take_is_left_to_the_caller(
    forum: FakeDiscourse, waits: Waits
) -> None:
    forum.fail_next(429, headers={"Retry-After": "3600"})
    with pytest.raises(SiteError) as raised:
        sites.latest("discourse", url=forum.base_url, query=None, settings={})
    assert raised.value.retryable and raised.value.hint_seconds == 3600
    assert forum.count() == 1 and waits.slept == []


def test_the_source_test_says_what_it_found(forum: FakeDiscourse) -> None:
    forum.add_topics(4)
    found = sites.test_site("discourse", url=forum.base_url, query=None, settings={})
    assert found == {
        "reachable": True,
        "status": 200,
        "content_type": "application/json",
        "format": "discourse-json",
        "title": f"127.0.0.1:{forum.port}",
        "item_count": 4,
        "newest_item_at": EPOCH.isoformat(),
        "conditional_get": None,
        "elapsed_seconds": found["elapsed_seconds"],
        "error": None,
    }
    assert found["elapsed_seconds"] >= 0


def test_the_source_test_of_something_else(forum: FakeDiscourse, waits: Waits) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    nothing = sites.test_site("discourse", url=f"http://127.0.0.1:{port}", query=None, settings={})
    assert nothing["reachable"] is False and "could not be reached" in nothing["error"]
    missing = sites.test_site("discourse", url=f"{forum.base_url}/c/x/99", query=None, settings={})
    assert (missing["reachable"], missing["status"]) == (True, 404)


def test_a_forum_on_a_private_address_is_refused_without_a_request(waits: Waits) -> None:
    with pytest.raises(SiteError) as raised:
        sites.latest("discourse", url="http://10.1.2.3", query=None, settings={})
    assert not raised.value.retryable and raised.value.status is None
    assert "10.1.2.3" in raised.value.message
