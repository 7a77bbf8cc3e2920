"""Fault: a receiver slower than the lease, with a real worker, scheduler and Redis.

Before: a webhook with read_timeout 90, lease 20 s and a receiver answering after 45 s
was POSTed the same key 7 times, attempt 7 of max 4, and stayed `publishing`. Here in
small: lease 2 s, the reconciler every second, a receiver answering after 7 s.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from herald.scheduling.heartbeat import last_beat
from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver
from tests.faults.tally import tally
from tests.workers import BeatProcess, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

FAST_LEASE = {"HERALD_PUBLISH_LEASE_SECONDS": "2", "HERALD_RECONCILE_INTERVAL_SECONDS": "1"}


def scheduler_started(db: SessionFactory) -> bool:
    with db() as s:
        return last_beat(s) is not None


@pytest.mark.timeout(120)
def test_a_receiver_slower_than_the_lease_is_sent_each_post_once(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str, db: SessionFactory
) -> None:
    channel = client.post(
        "/api/v1/channels",
        json={
            "platform": "webhook",
            "name": "slow",
            "credentials": receiver.credentials(),
            "settings": {"read_timeout": 20},
        },
        headers=account.headers,
    ).json()
    receiver.hold_seconds = 7  # three and a half leases
    beat, worker = BeatProcess(FAST_LEASE).start(), WorkerProcess(FAST_LEASE)
    try:
        wait_for(lambda: scheduler_started(db), timeout=60)  # the reconciler runs
        worker.start()
        for title in ("one", "two"):
            post = client.post("/api/v1/posts", json={"title": title}, headers=account.headers)
            response = client.post(
                f"/api/v1/posts/{post.json()['id']}/publish",
                json={"channel_ids": [channel["id"]]},
                headers=account.headers,
            )
            assert response.status_code == 202
        try:
            wait_for(lambda: tally(db, receiver).stuck == 0, timeout=30, interval=0.5)
        except TimeoutError:
            pytest.fail(f"still unsettled: {tally(db, receiver)}")
    finally:
        beat.stop()
        worker.kill()  # a resent attempt may still be held by the receiver
    result = tally(db, receiver)
    print(f"slow receiver: {result}")
    assert result.clean, result
    assert result.resends == {}, result  # not even a same-key resend
    assert sorted(result.states.values()) == [("published", 1, 4)] * 2
