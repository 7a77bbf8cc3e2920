"""A source checked end to end against a local feed server: baselines, conditional GET,
new and edited items, drafts, failures, redirects, and the scheduler's claims."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from herald.core.clock import set_clock
from herald.core.db import session_scope
from herald.posts.models import Post
from herald.sources import check, monitor
from herald.sources.models import ItemUse, Source, SourceItem
from herald.sources.tasks import check_source_job, probe_source_job
from tests.conftest import Account
from tests.fakes.feed_server import FeedServer
from tests.sources.documents import FORMATS, Item, items, rss

pytestmark = pytest.mark.usefixtures("db_backend")


def _add(client: TestClient, account: Account, url: str, **fields: Any) -> uuid.UUID:
    body = {"kind": "feed", "name": f"feed {uuid.uuid4().hex[:6]}", "url": url, **fields}
    answer = client.post("/api/v1/sources", json=body, headers=account.headers)
    assert answer.status_code == 201, answer.text
    return uuid.UUID(answer.json()["id"])


def _check(source_id: uuid.UUID, auto_generate: bool | None = None) -> dict[str, Any]:
    """One check, as the job runs it: claim, read (no transaction), record."""
    with session_scope() as s:
        plan = check.claim_now(s, source_id)
    got = check.read(plan)
    with session_scope() as s:
        return check.record(s, plan, got, auto_generate=auto_generate)


def _items(source_id: uuid.UUID) -> list[SourceItem]:
    with session_scope() as s:
        query = select(SourceItem).where(SourceItem.source_id == source_id)
        return list(s.scalars(query.order_by(SourceItem.sort_at)))


def _wait_after_last_check(source: Source) -> timedelta:
    assert source.last_checked_at is not None
    return source.next_check_at - source.last_checked_at


def _source(source_id: uuid.UUID) -> Source:
    with session_scope() as s:
        return s.get_one(Source, source_id)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_three_checks_baseline_then_304_then_one_new_and_one_edited(
    kind: str, client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    render, content_type = FORMATS[kind]
    feed_server.put("/feed", render(items(1, 2, 3)), content_type)
    source_id = _add(client, account, feed_server.url("/feed"))

    first = _check(source_id)
    assert first["new"] == [] and first["status"] == 200
    assert [i.seen_at_subscribe for i in _items(source_id)] == [True, True, True]

    second = _check(source_id)
    assert second["not_modified"] is True and second["new"] == []
    stats = feed_server.stats("/feed")
    assert (stats.requests, stats.conditional, stats.not_modified) == (2, 1, 1)
    body_after_first = stats.body_bytes

    edited = Item(2, title="Post number 2, corrected")
    feed_server.put("/feed", render([Item(1), edited, Item(3), Item(4)]), content_type)
    third = _check(source_id)
    assert len(third["new"]) == 1 and len(third["updated"]) == 1
    assert feed_server.stats("/feed").body_bytes > body_after_first

    stored = _items(source_id)
    assert [i.title for i in stored] == [
        "Post number 1",
        "Post number 2, corrected",
        "Post number 3",
        "Post number 4",
    ]
    assert [i.revision for i in stored] == [1, 2, 1, 1]
    source = _source(source_id)
    assert (source.checks, source.not_modified, source.failures) == (3, 1, 0)
    assert source.format and source.format.startswith(kind)


def test_auto_generate_makes_at_most_three_drafts_and_never_two_from_one_item(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    feed_server.put("/feed", rss(items(1, 2)))
    source_id = _add(client, account, feed_server.url("/feed"), auto_generate=True)
    assert _check(source_id)["drafts"] == []  # the baseline makes none

    feed_server.put("/feed", rss(items(*range(1, 13))))  # ten new items
    made = _check(source_id)
    assert len(made["new"]) == 10 and len(made["drafts"]) == 3

    feed_server.put("/feed", rss([*items(*range(1, 12)), Item(12, body="Edited")]))
    again = _check(source_id)
    assert again["drafts"] == [] and len(again["updated"]) == 1
    with session_scope() as s:
        posts = s.scalars(select(Post).where(Post.workspace_id == account.workspace_id)).all()
        uses = s.scalar(select(func.count()).select_from(ItemUse))
    assert len(posts) == 3 and uses == 3
    # The newest items, each linked to its source page.
    assert {p.title for p in posts} == {"Post number 12", "Post number 11", "Post number 10"}
    assert all(p.canonical_url and p.canonical_url in p.body for p in posts)


def test_a_check_through_the_api_is_a_job_with_its_result(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    feed_server.put("/feed", rss(items(1)))
    source_id = _add(client, account, feed_server.url("/feed"))
    _check(source_id)
    feed_server.put("/feed", rss(items(1, 2)))

    started = client.post(
        "/api/v1/tasks/monitor-rss",
        json={"source_id": str(source_id), "auto_generate": True},
        headers=account.headers,
    )
    assert started.status_code == 202 and started.json()["status"] == "pending"
    task_id = started.json()["task_id"]
    check_source_job(task_id)  # the task body, as a worker runs it

    status = client.get(f"/api/v1/tasks/status/{task_id}", headers=account.headers).json()
    assert status["status"] == "SUCCESS"
    assert len(status["result"]["new"]) == 1 and len(status["result"]["drafts"]) == 1
    listed = client.get(f"/api/v1/sources/{source_id}/items", headers=account.headers).json()
    assert [i["title"] for i in listed["items"]] == ["Post number 2", "Post number 1"]
    assert listed["items"][0]["drafts"] == status["result"]["drafts"]


def test_the_connection_test_says_what_the_source_is(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    feed_server.put("/feed", rss(items(1, 2, 3)))
    source_id = _add(client, account, feed_server.url("/feed"))
    started = client.post(f"/api/v1/sources/{source_id}/test", headers=account.headers)
    assert started.status_code == 202
    probe_source_job(started.json()["task_id"])
    job = client.get(f"/api/v1/jobs/{started.json()['task_id']}", headers=account.headers).json()
    assert job["state"] == "SUCCESS", job
    result = job["result"]
    assert result["reachable"] is True and result["status"] == 200
    assert (result["format"], result["version"], result["item_count"]) == ("rss", "rss20", 3)
    assert result["conditional_get"] is True
    assert _items(source_id) == []  # a test stores nothing


def test_a_page_that_advertises_a_feed_is_followed_and_the_feed_stored(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    feed_server.put("/feed.xml", rss(items(1)))
    page = '<html><head><link rel="alternate" type="application/rss+xml" href="/feed.xml">'
    feed_server.put("/blog", page + "</head><body>Blog</body></html>", "text/html")
    source_id = _add(client, account, feed_server.url("/blog"))
    _check(source_id)
    source = _source(source_id)
    assert (source.url, source.page_url) == (feed_server.url("/feed.xml"), feed_server.url("/blog"))
    assert len(_items(source_id)) == 1


def test_failures_back_off_a_permanent_redirect_moves_and_410_disables(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    feed_server.put("/new", rss(items(1)))
    feed_server.behave("/old", status=301, location="/new")
    source_id = _add(client, account, feed_server.url("/old"))
    _check(source_id)
    assert _source(source_id).url == feed_server.url("/new")

    feed_server.behave("/new", status=503, headers={"Retry-After": "7200"})
    failed = _check(source_id)
    source = _source(source_id)
    assert failed["error"] and source.failures == 1 and source.last_status == 503
    assert _wait_after_last_check(source) >= timedelta(hours=2)

    feed_server.behave("/new", status=410)
    gone = _check(source_id)
    source = _source(source_id)
    assert gone["disabled"] is True and source.enabled is False
    assert source.disabled_reason and "410" in source.disabled_reason


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    now = [datetime.now(UTC).replace(microsecond=0)]
    set_clock(lambda: now[0])
    yield now
    set_clock(None)


def test_two_schedulers_check_each_source_once_per_due_time(
    client: TestClient, account: Account, feed_server: FeedServer, clock: list[datetime]
) -> None:
    """Two schedulers' monitor passes interleaved every simulated second for two minutes,
    sources at 1-minute intervals: each due check is claimed and recorded once."""
    feed_server.put("/feed", rss(items(1)))
    ids = [_add(client, account, feed_server.url("/feed"), interval_minutes=1) for _ in range(6)]
    claimed: dict[uuid.UUID, list[datetime]] = {i: [] for i in ids}
    start = clock[0]
    for _ in range(120):
        for _scheduler in range(2):
            with session_scope() as s:
                due = monitor.claim_due(s)
            for source_id, claim in due:
                claimed[source_id].append(claim)
                with session_scope() as s:
                    plan = check.plan_claimed(s, source_id, claim)
                assert plan is not None
                got = check.read(plan)
                with session_scope() as s:
                    check.record(s, plan, got)
        clock[0] += timedelta(seconds=1)
    for source_id, claims in claimed.items():
        assert len(claims) == len(set(claims))  # no due time twice
        # Created due now, then every minute on its phase: 2 or 3 due times in 2 minutes.
        assert 2 <= len(claims) <= 3
        assert _source(source_id).checks == len(claims)
        assert all(c < start + timedelta(minutes=2) for c in claims)


def test_the_source_may_ask_for_a_longer_interval_never_a_shorter_one(
    client: TestClient, account: Account, feed_server: FeedServer
) -> None:
    feed_server.put("/feed", rss(items(1)))
    feed_server.behave("/feed", headers={"Cache-Control": "max-age=3600"})
    source_id = _add(client, account, feed_server.url("/feed"), interval_minutes=1)
    _check(source_id)
    source = _source(source_id)
    assert source.hinted_interval_seconds == 3600
    assert _wait_after_last_check(source) >= timedelta(minutes=30)

    feed_server.behave("/feed", headers={"Cache-Control": "max-age=5"})
    feed_server.put("/feed", rss(items(1, 2)))
    _check(source_id)
    source = _source(source_id)
    assert source.hinted_interval_seconds == 5
    # Five seconds asked for, one minute set: the user's minute holds.
    assert _wait_after_last_check(source) >= timedelta(seconds=30)
