"""Adapter state kept in the channel's row: cached logins, refreshed credentials and
delivery progress, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.adapters.base import AuthError
from tests.conftest import Account


@pytest.fixture
def channel_id(client: TestClient, account: Account) -> uuid.UUID:
    response = client.post(
        "/api/v1/channels",
        json={
            "platform": "webhook",
            "name": "hook",
            "credentials": {"url": "https://hooks.example/x", "secret": "s" * 24},
        },
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def stored_credentials(channel_id: uuid.UUID) -> dict[str, Any]:
    from herald.channels.models import Channel
    from herald.core.crypto import decrypt_json
    from herald.core.db import session_scope

    with session_scope() as session:
        return decrypt_json(session.get_one(Channel, channel_id).credentials_encrypted)


def test_session_is_kept_encrypted(channel_id: uuid.UUID) -> None:
    from herald.channels.models import Channel
    from herald.channels.store import DatabaseStore
    from herald.core.db import session_scope

    store = DatabaseStore(channel_id)
    assert store.session() is None
    store.save_session({"accessJwt": "jwt-secret-value-123"})
    assert DatabaseStore(channel_id).session() == {"accessJwt": "jwt-secret-value-123"}
    with session_scope() as session:
        raw = session.get_one(Channel, channel_id).session_encrypted
    assert raw is not None
    assert b"jwt-secret-value-123" not in raw
    store.save_session(None)
    assert store.session() is None


def test_new_credentials_drop_the_cached_session(
    client: TestClient, account: Account, channel_id: uuid.UUID
) -> None:
    from herald.channels.store import DatabaseStore

    DatabaseStore(channel_id).save_session({"token": "old"})
    response = client.patch(
        f"/api/v1/channels/{channel_id}",
        json={"credentials": {"url": "https://hooks.example/y", "secret": "t" * 24}},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    assert DatabaseStore(channel_id).session() is None


def test_concurrent_refreshes_spend_the_refresh_token_once(channel_id: uuid.UUID) -> None:
    from herald.channels.store import DatabaseStore

    stale = stored_credentials(channel_id)
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def refresh(current: dict[str, Any]) -> dict[str, Any]:
        calls.append(current)
        time.sleep(0.3)  # the platform's token endpoint, while the other worker waits
        return current | {"secret": "rotated-" + "r" * 20}

    def worker() -> None:
        results.append(DatabaseStore(channel_id).refresh_credentials(stale, refresh))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(calls) == 1
    assert [r["secret"] for r in results] == ["rotated-" + "r" * 20] * 2
    assert stored_credentials(channel_id)["secret"] == "rotated-" + "r" * 20


def test_refused_refresh_changes_nothing(channel_id: uuid.UUID) -> None:
    from herald.channels.store import DatabaseStore

    before = stored_credentials(channel_id)
    store = DatabaseStore(channel_id)
    store.save_session({"token": "kept"})

    def refuse(current: dict[str, Any]) -> dict[str, Any]:
        raise AuthError("invalid_grant: the refresh token was already used")

    with pytest.raises(AuthError):
        store.refresh_credentials(before, refuse)
    assert stored_credentials(channel_id) == before
    assert store.session() == {"token": "kept"}


def test_progress_is_per_delivery(
    client: TestClient, account: Account, channel_id: uuid.UUID, redis_broker: str
) -> None:
    from herald.channels.store import DatabaseStore

    post = client.post("/api/v1/posts", json={"title": "t"}, headers=account.headers).json()
    response = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [str(channel_id)]},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    from herald.core.db import session_scope
    from herald.publishing.models import Publication

    publication_id = uuid.UUID(response.json()["publications"][0]["id"])
    with session_scope() as session:
        key = session.get_one(Publication, publication_id).idempotency_key
    store = DatabaseStore(channel_id)
    assert store.progress(key) is None
    store.save_progress(key, {"posted": ["1", "2"]})
    assert DatabaseStore(channel_id).progress(key) == {"posted": ["1", "2"]}
    # Another channel's store cannot read or write this delivery's progress.
    other = DatabaseStore(uuid.uuid4())
    other.save_progress(key, {"posted": []})
    assert other.progress(key) is None
    assert store.progress(key) == {"posted": ["1", "2"]}
