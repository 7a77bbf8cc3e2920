"""End to end with a real `herald worker` process and real Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.events.service import stream_key
from herald.publishing.reconcile import reconcile as reconcile_pass
from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver
from tests.workers import WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration


def publication_state(client: TestClient, account: Account, post_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        f"/api/v1/posts/{post_id}/publications", headers=account.headers
    ).json()
    return found


def test_webhook_and_folder_published_by_a_real_worker(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str, tmp_path: Path
) -> None:
    hook = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    site = client.post(
        "/api/v1/channels",
        json={"platform": "folder", "name": "site", "credentials": {"path": str(tmp_path)}},
        headers=account.headers,
    ).json()
    post = client.post(
        "/api/v1/posts",
        json={"title": "Zażółć gęślą jaźń", "body": "Hello **world**", "tags": ["news"]},
        headers=account.headers,
    ).json()
    with running_worker():
        response = client.post(
            f"/api/v1/posts/{post['id']}/publish",
            json={"channel_ids": [hook["id"], site["id"]]},
            headers=account.headers,
        )
        assert response.status_code == 202
        wait_for(
            lambda: (
                {p["state"] for p in publication_state(client, account, post["id"])}
                == {"published"}
            )
        )
    assert len(receiver.delivered) == 1
    # Every transition of both deliveries went out as a live event, in order.

    entries = redis.Redis.from_url(redis_broker).xrange(stream_key(account.workspace_id))
    seen: dict[str, list[str]] = {}
    for _, fields in entries or ():
        if fields and fields.get(b"kind") == b"publication.state":
            data = json.loads(fields[b"data"])
            seen.setdefault(data["publication_id"], []).append(data["state"])
    assert sorted(seen.values()) == [["queued", "publishing", "published"]] * 2
    files = list(tmp_path.glob("*.md"))
    assert len(files) == 1
    assert "Zażółć gęślą jaźń" in files[0].read_text("utf-8")
    assert client.get(f"/api/v1/posts/{post['id']}", headers=account.headers).json()["state"] == (
        "published"
    )


def test_worker_killed_mid_delivery_ends_published_once(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str
) -> None:
    def reconcile() -> dict[str, int]:  # the periodic job's body, without its period guard
        with session_scope() as session:
            return reconcile_pass(session)

    lease = {"HERALD_PUBLISH_LEASE_SECONDS": "2"}
    hook = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    post = client.post("/api/v1/posts", json={"title": "Crash"}, headers=account.headers).json()
    receiver.hold_seconds = 5  # the receiver holds the request while the worker dies

    worker = WorkerProcess(lease).start()
    try:
        client.post(
            f"/api/v1/posts/{post['id']}/publish",
            json={"channel_ids": [hook["id"]]},
            headers=account.headers,
        )
        wait_for(lambda: len(receiver.posts()) == 1)
        (in_flight,) = publication_state(client, account, post["id"])
        assert in_flight["state"] == "publishing"
        worker.kill()
    finally:
        worker.stop()
    receiver.hold_seconds = 0

    # After restart: the reconciler finds the expired lease and the delivery goes again;
    # the receiver deduplicates by Idempotency-Key, so one effective delivery.
    settings = get_settings()
    settings.queued_grace_seconds = 120
    with running_worker(lease):
        wait_for(lambda: reconcile()["requeued"] == 1, timeout=15, interval=0.5)
        wait_for(lambda: publication_state(client, account, post["id"])[0]["state"] == "published")
    (final,) = publication_state(client, account, post["id"])
    assert final["attempt"] == 2
    assert len(receiver.delivered) == 1
    assert len({r.headers["idempotency-key"] for r in receiver.posts()}) == 1
    assert uuid.UUID(final["id"])
