"""Fault: an adapter raising an exception it does not classify, after sending, with a
real worker, scheduler and Redis.

Before: a folder channel at ../../tmp/x wrote the file, then raised ValueError (in
find_existing too); the task died with the row in `publishing`, and the reconciler
requeued it every lease: attempt 14 of 4.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver
from tests.faults import raising_adapter
from tests.faults.tally import tally
from tests.faults.test_slow_receiver import FAST_LEASE, scheduler_started
from tests.workers import BeatProcess, WorkerProcess, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_an_adapter_raising_after_sending_ends_unconfirmed_after_one_attempt(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str, db: SessionFactory
) -> None:
    channel = client.post(
        "/api/v1/channels",
        json={
            "platform": raising_adapter.RaisesAfterSending.platform,
            "name": "breaks",
            "credentials": receiver.credentials(),
        },
        headers=account.headers,
    )
    assert channel.status_code == 201, channel.text
    beat = BeatProcess(FAST_LEASE).start()
    worker = WorkerProcess(FAST_LEASE, preload=(raising_adapter.__name__,))
    try:
        wait_for(lambda: scheduler_started(db), timeout=60)  # the reconciler runs
        worker.start()
        post = client.post("/api/v1/posts", json={"title": "breaks"}, headers=account.headers)
        (publication,) = client.post(
            f"/api/v1/posts/{post.json()['id']}/publish",
            json={"channel_ids": [channel.json()["id"]]},
            headers=account.headers,
        ).json()["publications"]
        try:
            wait_for(lambda: tally(db, receiver).stuck == 0, timeout=30, interval=0.5)
        except TimeoutError:
            pytest.fail(f"still unsettled: {tally(db, receiver)}")
    finally:
        beat.stop()
        worker.stop()
    result = tally(db, receiver)
    print(f"unexpected error: {result}")
    assert result.clean and result.resends == {}, result
    assert list(result.states.values()) == [("unconfirmed", 1, 4)]
    (row,) = client.get(
        f"/api/v1/posts/{post.json()['id']}/publications", headers=account.headers
    ).json()
    assert row["id"] == publication["id"]
    assert row["last_error"] == (
        "unexpected ValueError in the test-raises-after-sending adapter's publish: "
        f"{raising_adapter.MESSAGE}; it may have been posted"
    )
