"""Sources of the site kinds end to end: added through the API (their fields checked and
normalised), checked as the monitor checks them (a baseline, then only what is new, an
edit updated), and tested; against the local Reddit, Hacker News and Discourse."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.core.db import session_scope
from herald.sources import check
from herald.sources.models import Source, SourceItem
from herald.sources.tasks import probe_source_job
from tests.conftest import Account
from tests.fakes.discourse import FakeDiscourse
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.reddit import FakeReddit
from tests.fakes.sites import EPOCH

pytestmark = pytest.mark.usefixtures("db_backend")


def add(client: TestClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": f"source {uuid.uuid4().hex[:6]}", **fields}
    answer = client.post("/api/v1/sources", json=body, headers=account.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def check_now(source_id: str) -> dict[str, Any]:
    """One check, as the job runs it: claim, read (no transaction), record."""
    with session_scope() as session:
        plan = check.claim_now(session, uuid.UUID(source_id))
    got = check.read(plan)
    with session_scope() as session:
        return check.record(session, plan, got, auto_generate=None)


def titles(source_id: str) -> list[str]:
    with session_scope() as session:
        query = select(SourceItem.title).where(SourceItem.source_id == uuid.UUID(source_id))
        return list(session.scalars(query.order_by(SourceItem.sort_at.desc())))


def test_a_subreddit_baseline_then_new_posts_then_an_edit(
    client: TestClient, account: Account, reddit: FakeReddit
) -> None:
    reddit.add_posts("python", 3)
    source = add(client, account, kind="reddit", query="r/Python")
    assert (source["query"], source["settings"]) == ("Python", {"mode": "subreddit"})

    first = check_now(source["id"])
    assert first["new"] == [] and first["status"] == 200
    assert len(titles(source["id"])) == 3

    reddit.add_post("python", "Fresh one", created=EPOCH + timedelta(minutes=5))
    reddit.add_post("python", "Fresher one", created=EPOCH + timedelta(minutes=6))
    reddit.posts[-1]["title"] = "Python post 2, corrected"  # the oldest, edited
    second = check_now(source["id"])
    assert len(second["new"]) == 2 and len(second["updated"]) == 1
    assert titles(source["id"]) == [
        "Fresher one",
        "Fresh one",
        "Python post 0",
        "Python post 1",
        "Python post 2, corrected",
    ]
    with session_scope() as session:
        stored = session.get_one(Source, uuid.UUID(source["id"]))
        assert (stored.title, stored.last_status, stored.failures) == ("r/Python", 200, 0)


def test_a_config_that_cannot_work_is_a_422(client: TestClient, account: Account) -> None:
    refused: list[tuple[dict[str, Any], str]] = [
        ({"kind": "reddit", "query": "r/no spaces"}, "is not a subreddit name"),
        ({"kind": "hackernews"}, "needs a query"),
        ({"kind": "discourse", "url": "forum.example.org"}, "http:// or https://"),
        (
            {"kind": "discourse", "url": "https://f.example.org", "settings": {"category": "x"}},
            "slug and id",
        ),
    ]
    for fields, message in refused:
        answer = client.post(
            "/api/v1/sources", json={"name": "x", **fields}, headers=account.headers
        )
        assert answer.status_code == 422, fields
        assert message in answer.json()["detail"]


def test_a_hacker_news_search_that_fails_backs_off(
    client: TestClient, account: Account, hackernews: FakeHackerNews
) -> None:
    hackernews.add_stories(5, word="sqlite")
    source = add(client, account, kind="hackernews", query="sqlite")
    assert check_now(source["id"])["status"] == 200
    hackernews.fail_next(403, "blocked")
    failed = check_now(source["id"])
    assert failed["status"] == 403
    with session_scope() as session:
        stored = session.get_one(Source, uuid.UUID(source["id"]))
        assert stored.failures == 1 and "refused access" in (stored.last_error or "")


def test_a_forum_category_is_read_and_tested(
    client: TestClient, account: Account, forum: FakeDiscourse
) -> None:
    forum.add_topics(4, word="herald", category_id=7)
    forum.add_topics(2, word="billing", category_id=9)
    source = add(client, account, kind="discourse", url=f"{forum.base_url}/c/support/9/")
    assert (source["url"], source["settings"]) == (forum.base_url, {"category": "support/9"})
    check_now(source["id"])
    assert titles(source["id"]) == ["Billing question 0", "Billing question 1"]

    started = client.post(f"/api/v1/sources/{source['id']}/test", headers=account.headers)
    assert started.status_code == 202
    probe_source_job(started.json()["task_id"])
    job = client.get(f"/api/v1/jobs/{started.json()['task_id']}", headers=account.headers).json()
    assert job["state"] == "SUCCESS", job
    result = job["result"]
    assert (result["reachable"], result["status"], result["item_count"]) == (True, 200, 2)
    assert result["format"] == "discourse-json" and result["conditional_get"] is None
