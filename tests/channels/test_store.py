"""Adapter state kept in the channel's row: cached logins, refreshed credentials and
delivery progress, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from herald.adapters.base import AuthError, RetryableError
from herald.channels import store as store_module
from herald.channels.models import Channel
from herald.channels.service import build_adapter
from herald.channels.store import DatabaseStore, NoDeliveryProgress, TransactionOpen
from herald.core.crypto import decrypt_json
from herald.core.db import get_engine, session_scope, transaction_open
from herald.publishing.models import Publication
from herald.publishing.progress import PROGRESS_ROWS
from tests.adapters.contract import sample_post
from tests.channels.conftest import PlatformCalls
from tests.conftest import Account
from tests.fakes.bluesky import FakeBluesky

# Three parts of a Bluesky thread (300 graphemes each, " i/n" numbering included).
THREE_PART_BODY = " ".join(["A sentence of a thread that goes on."] * 20)


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


def delivery_store(channel_id: uuid.UUID) -> DatabaseStore:
    """A store as a delivery attempt builds it: with publishing's progress rows."""
    return DatabaseStore(channel_id, progress_rows=PROGRESS_ROWS)


def stored_credentials(channel_id: uuid.UUID) -> dict[str, Any]:

    with session_scope() as session:
        return decrypt_json(session.get_one(Channel, channel_id).credentials_encrypted)


def test_session_is_kept_encrypted(channel_id: uuid.UUID) -> None:
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
    DatabaseStore(channel_id).save_session({"token": "old"})
    response = client.patch(
        f"/api/v1/channels/{channel_id}",
        json={"credentials": {"url": "https://hooks.example/y", "secret": "t" * 24}},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    assert DatabaseStore(channel_id).session() is None


def test_concurrent_refreshes_spend_the_refresh_token_once(channel_id: uuid.UUID) -> None:
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
    post = client.post("/api/v1/posts", json={"title": "t"}, headers=account.headers).json()
    response = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [str(channel_id)]},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text

    publication_id = uuid.UUID(response.json()["publications"][0]["id"])
    with session_scope() as session:
        key = session.get_one(Publication, publication_id).idempotency_key
    store = delivery_store(channel_id)
    assert store.progress(key) is None
    store.save_progress(key, {"posted": ["1", "2"]})
    assert delivery_store(channel_id).progress(key) == {"posted": ["1", "2"]}
    # Another channel's store cannot read or write this delivery's progress.
    other = uuid.uuid4()
    delivery_store(other).save_progress(key, {"posted": []})
    assert delivery_store(other).progress(key) is None
    assert delivery_store(channel_id).progress(key) == {"posted": ["1", "2"]}


def test_a_store_for_no_delivery_refuses_progress_before_touching_the_database(
    channel_id: uuid.UUID,
) -> None:
    """The channel test and a preview build their store without progress rows (no
    delivery is attempted): an adapter asking it for a delivery's progress is a bug,
    told at once rather than read from or written to nowhere."""
    store = DatabaseStore(channel_id)
    began: list[object] = []
    count = began.append
    event.listen(get_engine(), "begin", count)
    try:
        with pytest.raises(NoDeliveryProgress, match="built for no delivery"):
            store.progress("any-key")
        with pytest.raises(NoDeliveryProgress):
            store.save_progress("any-key", {"posted": ["1"]})
        with pytest.raises(NoDeliveryProgress):
            store.receipt("any-key")
    finally:
        event.remove(get_engine(), "begin", count)
    assert began == []
    assert not store.pending


def test_a_batch_stores_progress_when_it_fails_and_a_login_whenever_it_changed(
    client: TestClient, account: Account, channel_id: uuid.UUID, redis_broker: str
) -> None:
    """A batch that returns leaves its progress to the caller (the engine records the
    receipt with the outcome); one that fails stores it, for the retry; a changed login
    is always stored; a checkpoint stores at once."""
    post = client.post("/api/v1/posts", json={"title": "t"}, headers=account.headers).json()
    response = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [str(channel_id)]},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    with session_scope() as session:
        key = session.get_one(
            Publication, uuid.UUID(response.json()["publications"][0]["id"])
        ).idempotency_key

    store = delivery_store(channel_id)
    with store.batch():
        store.save_progress(key, {"posted": ["1"]})
    assert delivery_store(channel_id).progress(key) is None
    with store.batch():
        store.save_session({"token": "renewed"})
    assert delivery_store(channel_id).session() == {"token": "renewed"}
    assert delivery_store(channel_id).progress(key) == {"posted": ["1"]}  # beside the login

    failing = delivery_store(channel_id)

    def send_the_second_part() -> None:
        with failing.batch(), failing.batch():
            failing.save_progress(key, {"posted": ["1", "2"]})
            raise RetryableError("503: try again later")

    with pytest.raises(RetryableError):
        send_the_second_part()
    assert delivery_store(channel_id).progress(key) == {"posted": ["1", "2"]}

    checked = delivery_store(channel_id)
    with checked.batch():
        checked.save_progress(key, {"posted": ["1", "2", "3"]})
        checked.checkpoint()
        assert delivery_store(channel_id).progress(key) == {"posted": ["1", "2", "3"]}


def test_the_store_never_opens_a_transaction_inside_another(channel_id: uuid.UUID) -> None:
    store = DatabaseStore(channel_id)
    with session_scope() as open_:
        open_.execute(text("SELECT 1"))
        with pytest.raises(TransactionOpen):
            store.session()  # a read would have waited for the open transaction (SQLite)
        with pytest.raises(TransactionOpen):
            store.save_session({"token": "x"})
    # Read in the caller's transaction and written back in it, nothing of its own.
    with session_scope() as session:
        row = session.get_one(Channel, channel_id)
        seeded = DatabaseStore(
            channel_id,
            credentials_encrypted=row.credentials_encrypted,
            session_encrypted=row.session_encrypted,
            defer_writes=True,
        )
        assert seeded.session() is None
        seeded.save_session({"token": "kept"})
        seeded.write_back(session)
    assert DatabaseStore(channel_id).session() == {"token": "kept"}


def test_a_login_is_not_kept_for_credentials_replaced_meanwhile(
    client: TestClient, account: Account, channel_id: uuid.UUID
) -> None:
    with session_scope() as session:
        built_with = session.get_one(Channel, channel_id).credentials_encrypted
    store = DatabaseStore(channel_id, credentials_encrypted=built_with)
    response = client.patch(
        f"/api/v1/channels/{channel_id}",
        json={"credentials": {"url": "https://hooks.example/y", "secret": "t" * 24}},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    store.save_session({"token": "made with the old credentials"})
    assert DatabaseStore(channel_id).session() is None


def test_refresh_calls_the_platform_with_no_transaction_open(channel_id: uuid.UUID) -> None:
    stale = stored_credentials(channel_id)
    seen: list[bool] = []

    def refresh(current: dict[str, Any]) -> dict[str, Any]:
        seen.append(transaction_open())
        return current | {"secret": "rotated-" + "r" * 20}

    fresh = DatabaseStore(channel_id).refresh_credentials(stale, refresh)
    assert seen == [False]
    assert fresh["secret"] == stored_credentials(channel_id)["secret"] == "rotated-" + "r" * 20


def test_a_login_saved_during_a_refresh_keeps_the_refresh_exclusive(
    channel_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = stored_credentials(channel_id)
    rotated = stale | {"secret": "rotated-" + "r" * 20}
    refreshes: list[str] = []
    waiting = threading.Event()
    pause = time.sleep

    def waited(seconds: float) -> None:
        waiting.set()  # the other delivery found the lease taken and waits for it
        pause(seconds)

    monkeypatch.setattr(store_module, "_pause", waited)
    results: list[dict[str, Any]] = []

    def other_delivery_refreshes() -> None:
        def spend(current: dict[str, Any]) -> dict[str, Any]:
            refreshes.append("second")
            return current

        results.append(DatabaseStore(channel_id).refresh_credentials(stale, spend))

    other = threading.Thread(target=other_delivery_refreshes)

    def refresh(current: dict[str, Any]) -> dict[str, Any]:
        refreshes.append("first")
        # Meanwhile another delivery stores a login, then needs a refresh too.
        DatabaseStore(channel_id).save_session({"token": "other delivery"})
        other.start()
        assert waiting.wait(20), "the second refresh did not wait for the first"
        return rotated

    assert DatabaseStore(channel_id).refresh_credentials(stale, refresh) == rotated
    other.join(30)
    assert refreshes == ["first"]
    assert results == [rotated]


@pytest.mark.parametrize("parts", [1, 3])
def test_a_bluesky_post_costs_one_read_and_one_write_per_part(
    client: TestClient,
    account: Account,
    redis_broker: str,
    platform_calls: PlatformCalls,
    parts: int,
) -> None:
    """One read (the cached login and this delivery's progress together), then one write
    before each create: the record key a retry must reuse, and the login, are stored
    before the part goes out. Nothing else writes: the receipt goes back to the engine,
    which records it with the outcome. It cost a write per save (7 for one part), then 3
    for one part and 5 for three (a last write for the receipt). No transaction is open
    while Bluesky answers."""
    with FakeBluesky() as fake:
        created = client.post(
            "/api/v1/channels",
            json={"platform": "bluesky", "name": "sky", "credentials": fake.credentials()},
            headers=account.headers,
        )
        assert created.status_code == 201, created.text
        post = client.post("/api/v1/posts", json={"title": "t"}, headers=account.headers).json()
        published = client.post(
            f"/api/v1/posts/{post['id']}/publish",
            json={"channel_ids": [created.json()["id"]]},
            headers=account.headers,
        )
        assert published.status_code == 202, published.text
        with session_scope() as session:
            publication = session.get_one(
                Publication, uuid.UUID(published.json()["publications"][0]["id"])
            )
            key = publication.idempotency_key
            channel = session.get_one(Channel, publication.channel_id)
            columns = (channel.credentials_encrypted, dict(channel.settings), channel.id)

        adapter = build_adapter("bluesky", *columns, progress_rows=PROGRESS_ROWS)
        body = "One short part." if parts == 1 else THREE_PART_BODY
        rendition = adapter.render(sample_post(body=body, canonical_url=None))
        assert len(rendition.parts) == parts
        began: list[object] = []
        count = began.append
        event.listen(get_engine(), "begin", count)
        try:
            receipt = adapter.publish(rendition, key)
        finally:
            event.remove(get_engine(), "begin", count)

        assert len(began) == 1 + parts
        assert platform_calls.inside_transaction() == []
        assert len(fake.posts()) == parts and fake.logins == 1
        # What a retry needs is stored: every record key, and the login.
        stored = delivery_store(channel.id).progress(key)
        assert stored is not None and stored["pending"] == parts - 1
        assert receipt.data["parts"][-1].endswith("/" + stored["rkeys"][-1])
        assert (DatabaseStore(channel.id).session() or {}).get("did") == fake.did

        # A retry of that delivery (its answer lost, say) finds the post; it sends nothing.
        again = build_adapter("bluesky", *columns, progress_rows=PROGRESS_ROWS)
        assert again.find_existing(rendition, key) == receipt
        assert again.publish(rendition, key) == receipt
        assert len(fake.posts()) == parts
