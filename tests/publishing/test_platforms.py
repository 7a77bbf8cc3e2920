"""Platform adapters inside the engine: the channel's store in the database, deliveries
run as the worker runs them, against the platforms' local fakes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.channels.models import Channel
from herald.core.crypto import decrypt_json
from herald.core.db import session_scope
from tests.conftest import Account
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.x import FakeX
from tests.publishing.test_engine import deliver, publish


def add_channel(client: TestClient, account: Account, platform: str, credentials: Any) -> str:
    response = client.post(
        "/api/v1/channels",
        json={"platform": platform, "name": platform, "credentials": credentials},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def new_post(client: TestClient, account: Account, body: str) -> str:
    response = client.post(
        "/api/v1/posts", json={"title": "t", "body": body}, headers=account.headers
    )
    return str(response.json()["id"])


def stored_credentials(channel_id: str) -> dict[str, Any]:
    with session_scope() as session:
        channel = session.get_one(Channel, uuid.UUID(channel_id))
        return decrypt_json(channel.credentials_encrypted)


@pytest.fixture
def bluesky() -> Iterator[FakeBluesky]:
    with FakeBluesky() as fake:
        yield fake
        assert fake.violations == []


@pytest.fixture
def x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake
        assert fake.violations == []


def test_fifty_bluesky_posts_log_in_once(
    client: TestClient, account: Account, bluesky: FakeBluesky, redis_broker: str
) -> None:
    channel = add_channel(client, account, "bluesky", bluesky.credentials())
    outcomes = []
    for number in range(50):
        post = new_post(client, account, f"Note {number}: https://example.org/{number} ünïcödé")
        (publication,) = publish(client, account, post, channel)
        # A new adapter per delivery, as in the worker: only the database keeps the login.
        outcomes.append(deliver(publication["id"]))
    assert outcomes == ["published"] * 50
    assert bluesky.logins == 1
    assert len(bluesky.posts()) == 50


def test_expired_x_token_is_refreshed_once_and_stored(
    client: TestClient, account: Account, x: FakeX, redis_broker: str
) -> None:
    credentials = x.credentials() | {
        "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    }
    old_refresh = credentials["refresh_token"]
    channel = add_channel(client, account, "x", credentials)
    (publication,) = publish(client, account, new_post(client, account, "Hello X"), channel)
    assert deliver(publication["id"]) == "published"
    assert x.refreshes == 1
    stored = stored_credentials(channel)
    assert stored["refresh_token"] == x.refresh_token != old_refresh
    # The next delivery uses the stored pair: no second refresh.
    (second,) = publish(client, account, new_post(client, account, "Hello again"), channel)
    assert deliver(second["id"]) == "published"
    assert x.refreshes == 1
    assert len(x.posts) == 2


def test_refused_x_refresh_marks_the_channel_needs_reconnect(
    client: TestClient, account: Account, x: FakeX, redis_broker: str
) -> None:
    credentials = x.credentials() | {
        "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    }
    channel = add_channel(client, account, "x", credentials)
    x.revoke()
    post = new_post(client, account, "Will wait")
    (publication,) = publish(client, account, post, channel)
    assert deliver(publication["id"]) == "auth"
    state = client.get(f"/api/v1/channels/{channel}", headers=account.headers).json()
    assert state["state"] == "needs_reconnect"
    (held,) = client.get(f"/api/v1/posts/{post}/publications", headers=account.headers).json()
    assert held["state"] == "retry_wait"
    assert x.posts == {}
