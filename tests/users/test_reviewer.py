"""The reviewer role: reads everything, writes and decides on posts, publishes them, but
manages no channels (nor their slots) and no sources: those are 403 problem+json, and
change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.users.models import Role
from tests.conftest import Account, MakeAccount
from tests.scheduling import make_channel, make_post

FORBIDDEN = "Reviewers cannot manage channels, sources, agents or providers."
FEED = {"kind": "feed", "name": "Example", "url": "https://news.example.org/feed.xml"}


@pytest.fixture
def reviewer(make_account: MakeAccount) -> Account:
    return make_account("rita@example.com", role=Role.REVIEWER)


def test_an_admin_adds_a_reviewer(client: TestClient, account: Account) -> None:
    response = client.post(
        "/api/v1/users",
        json={"email": "rev@example.com", "role": "reviewer"},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "reviewer"


def test_a_reviewer_cannot_manage_channels_or_sources(
    client: TestClient, account: Account, reviewer: Account
) -> None:
    channel = make_channel(client, account)
    source = client.post("/api/v1/sources", json=FEED, headers=account.headers).json()["id"]
    webhook = {
        "platform": "webhook",
        "name": "hook",
        "credentials": {"url": "https://example.com/h", "secret": "s" * 20},
    }
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/v1/channels", webhook),
        ("PATCH", f"/api/v1/channels/{channel}", {"name": "renamed"}),
        ("PATCH", f"/api/v1/channels/{channel}", {"state": "paused"}),
        ("DELETE", f"/api/v1/channels/{channel}", None),
        ("POST", f"/api/v1/channels/{channel}/test", None),
        (
            "PUT",
            f"/api/v1/channels/{channel}/slots/config",
            {"timezone": "UTC", "slots": [{"weekdays": ["mon"], "time": "09:00"}]},
        ),
        ("POST", "/api/v1/sources", {**FEED, "name": "Another"}),
        ("PATCH", f"/api/v1/sources/{source}", {"interval_minutes": 45}),
        ("DELETE", f"/api/v1/sources/{source}", None),
        ("POST", f"/api/v1/sources/{source}/check", {}),
        ("POST", "/api/v1/tasks/monitor-rss", {"source_id": source}),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=reviewer.headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == FORBIDDEN
    # Nothing changed, and the member who owns them still manages them.
    channels = client.get("/api/v1/channels", headers=reviewer.headers).json()
    assert [(c["name"], c["state"]) for c in channels] == [("site", "active")]
    slots = client.get(f"/api/v1/channels/{channel}/slots/config", headers=reviewer.headers)
    assert slots.status_code == 200 and slots.json()["slots"] == []
    sources = client.get("/api/v1/sources", headers=reviewer.headers).json()
    assert [(s["name"], s["interval_minutes"]) for s in sources] == [("Example", 30)]
    renamed = client.patch(
        f"/api/v1/channels/{channel}", json={"name": "renamed"}, headers=account.headers
    )
    assert renamed.status_code == 200


def test_a_member_still_manages_channels(client: TestClient, make_account: MakeAccount) -> None:
    member = make_account(admin=False)
    channel = make_channel(client, member)
    paused = client.patch(
        f"/api/v1/channels/{channel}", json={"state": "paused"}, headers=member.headers
    )
    assert paused.status_code == 200


def test_a_reviewer_reads_writes_reviews_and_publishes_posts(
    client: TestClient, account: Account, reviewer: Account
) -> None:
    channel = make_channel(client, account)
    source = client.post("/api/v1/sources", json=FEED, headers=account.headers).json()["id"]
    assert client.get(f"/api/v1/channels/{channel}", headers=reviewer.headers).status_code == 200
    tested = client.post(f"/api/v1/sources/{source}/test", headers=reviewer.headers)
    assert tested.status_code == 202  # a test stores nothing

    post = make_post(client, reviewer, "Written by a reviewer")
    edited = client.patch(
        f"/api/v1/posts/{post}", json={"body": "Edited."}, headers=reviewer.headers
    )
    assert edited.status_code == 200
    submitted = client.post(f"/api/v1/posts/{post}/submit", headers=account.headers)
    assert submitted.json()["state"] == "in_review"
    approved = client.post(
        f"/api/v1/posts/{post}/approve", json={"channel_ids": [channel]}, headers=reviewer.headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["post"]["reviewed_by"] == str(reviewer.user_id)

    other = make_post(client, account, "Approved, then published by hand")
    client.post(f"/api/v1/posts/{other}/submit", headers=account.headers)
    client.post(f"/api/v1/posts/{other}/approve", json={}, headers=reviewer.headers)
    published = client.post(
        f"/api/v1/posts/{other}/publish", json={"channel_ids": [channel]}, headers=reviewer.headers
    )
    assert published.status_code == 202, published.text
