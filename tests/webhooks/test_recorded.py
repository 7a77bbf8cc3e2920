"""Where events are recorded: each in the transaction of its change, with its data."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.core.db import session_scope
from herald.publishing.tasks import deliver as deliver_publication
from herald.webhooks.models import WebhookEvent
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.fakes.webhook_receiver import Receiver
from tests.webhooks import add_webhook


def _events() -> list[tuple[str, dict[str, Any]]]:
    with session_scope() as session:
        return [
            (e.type, e.data)
            for e in session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at))
        ]


def _channel_and_post(
    client: TestClient, account: Account, receiver: Receiver
) -> tuple[dict[str, Any], dict[str, Any]]:
    channel = client.post(
        "/api/v1/channels",
        json={
            "platform": "webhook",
            "name": "hook",
            "credentials": receiver.credentials(),
            "retry": {"max_retries": 0, "retry_base_seconds": 1, "retry_max_seconds": 1},
        },
        headers=account.headers,
    ).json()
    post = client.post("/api/v1/posts", json={"title": "Hi"}, headers=account.headers).json()
    return channel, post


def _deliver(client: TestClient, account: Account, post_id: str, channel_id: str) -> str:
    answer = client.post(
        f"/api/v1/posts/{post_id}/publish",
        json={"channel_ids": [channel_id]},
        headers=account.headers,
    ).json()
    (publication,) = answer["publications"]
    deliver_publication(publication["id"])
    return str(publication["id"])


def test_a_refused_delivery_records_delivery_failed_with_the_error(
    client: TestClient, account: Account, event_receiver: EventReceiver, receiver: Receiver
) -> None:
    add_webhook(client, account, event_receiver, ["delivery.failed", "delivery.published"])
    channel, post = _channel_and_post(client, account, receiver)
    receiver.script = deque([400])
    publication_id = _deliver(client, account, post["id"], channel["id"])
    ((kind, data),) = _events()
    assert kind == "delivery.failed"
    assert data["delivery_id"] == publication_id
    assert (data["post_id"], data["channel_id"]) == (post["id"], channel["id"])
    assert data["platform"] == "webhook" and data["url"] is None
    assert "receiver says 400" in data["error"]


def test_refused_credentials_record_channel_needs_reconnect_once(
    client: TestClient, account: Account, event_receiver: EventReceiver, receiver: Receiver
) -> None:
    add_webhook(client, account, event_receiver, ["channel.needs_reconnect"])
    channel, post = _channel_and_post(client, account, receiver)
    receiver.script = deque([401, 401])
    _deliver(client, account, post["id"], channel["id"])
    other = client.post("/api/v1/posts", json={"title": "2"}, headers=account.headers).json()
    _deliver(client, account, other["id"], channel["id"])  # held: the channel is not active
    ((kind, data),) = _events()
    assert kind == "channel.needs_reconnect"
    assert (data["channel_id"], data["platform"], data["name"]) == (
        channel["id"],
        "webhook",
        "hook",
    )
    assert data["reason"]


def test_a_review_decision_records_post_reviewed(
    client: TestClient, account: Account, event_receiver: EventReceiver
) -> None:
    add_webhook(client, account, event_receiver, ["post.reviewed"])
    post = client.post("/api/v1/posts", json={"title": "Draft"}, headers=account.headers).json()
    assert client.post(f"/api/v1/posts/{post['id']}/submit", headers=account.headers).is_success
    rejected = client.post(
        f"/api/v1/posts/{post['id']}/reject", json={"note": "Not yet."}, headers=account.headers
    )
    assert rejected.is_success, rejected.text
    ((kind, data),) = _events()
    assert kind == "post.reviewed"
    assert (data["post_id"], data["decision"]) == (post["id"], "rejected")
    assert data["reviewer_email"] == account.email


def test_scheduling_and_moving_a_post_record_post_scheduled_each_time(
    client: TestClient, account: Account, event_receiver: EventReceiver, receiver: Receiver
) -> None:
    add_webhook(client, account, event_receiver, ["post.scheduled"])
    channel, post = _channel_and_post(client, account, receiver)
    first, moved = (datetime.now(UTC) + timedelta(hours=h) for h in (1, 3))
    scheduled = client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": first.isoformat(), "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert scheduled.status_code == 202, scheduled.text
    (publication,) = scheduled.json()["publications"]
    again = client.patch(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": moved.isoformat()},
        headers=account.headers,
    )
    assert again.status_code == 200, again.text
    recorded = _events()
    assert [kind for kind, _ in recorded] == ["post.scheduled", "post.scheduled"]
    deliveries = [{"delivery_id": publication["id"], "channel_id": channel["id"]}]
    for (_, data), when, rescheduled in zip(recorded, (first, moved), (False, True), strict=True):
        assert data["post_id"] == post["id"]
        assert datetime.fromisoformat(data["due_at"]) == when
        assert data["deliveries"] == deliveries
        assert data["rescheduled"] is rescheduled
