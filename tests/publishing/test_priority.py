"""Priorities on the broker: a delivery asked for now overtakes a backlog that the
scheduler sent before it (due scheduled deliveries), with a real worker and Redis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.publishing.models import Publication
from herald.scheduling.dispatcher import dispatch_once
from herald.worker import queue_keys
from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver
from tests.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

BACKLOG = 12


def test_a_delivery_asked_for_now_overtakes_a_due_backlog(
    client: TestClient,
    account: Account,
    receiver: Receiver,
    redis_broker: str,
    tmp_path: Path,
) -> None:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    later = (utcnow() + timedelta(hours=1)).isoformat()
    for i in range(BACKLOG):
        post = client.post(
            "/api/v1/posts", json={"title": f"scheduled {i}"}, headers=account.headers
        )
        response = client.post(
            f"/api/v1/posts/{post.json()['id']}/schedule",
            json={"scheduled_at": later, "channel_ids": [channel["id"]]},
            headers=account.headers,
        )
        assert response.status_code == 202, response.text
    with session_scope() as session:  # the backlog falls due
        session.execute(update(Publication).values(due_at=utcnow()))
    assert dispatch_once() == BACKLOG  # the scheduler sends it, first
    now = client.post("/api/v1/posts", json={"title": "now"}, headers=account.headers).json()
    response = client.post(
        f"/api/v1/posts/{now['id']}/publish",
        json={"channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert response.status_code == 202
    lengths = [redis.Redis.from_url(redis_broker).llen(key) for key in queue_keys("publishing")]
    assert lengths == [0, 1, BACKLOG]  # no rate-budget turn; now; the backlog

    # One delivery at a time, so the order the worker takes them in is the order they
    # reach the receiver.
    worker = WorkerProcess(
        args=("worker", "--queues", "publishing", "--pool", "solo", "--concurrency", "1"),
        log=tmp_path / "worker.log",
    ).start(timeout=60)
    try:
        wait_for(lambda: len(receiver.posts()) == BACKLOG + 1, timeout=60, what="every delivery")
    finally:
        worker.stop()
    titles = [item.body["post"]["title"] for item in receiver.posts()]
    assert titles[0] == "now", titles
    assert sorted(titles[1:]) == sorted(f"scheduled {i}" for i in range(BACKLOG))
