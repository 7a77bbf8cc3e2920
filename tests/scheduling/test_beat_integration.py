"""The scheduler as it runs: real `herald beat` and `herald worker` processes, real Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from herald.core.clock import utcnow
from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver
from tests.workers import BeatProcess, WorkerProcess, wait_for

pytestmark = pytest.mark.integration


def schedule_many(client, account: Account, receiver: Receiver, count: int, over: float):  # type: ignore[no-untyped-def]
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    start = utcnow() + timedelta(seconds=3)
    due = {}
    for i in range(count):
        post = client.post("/api/v1/posts", json={"title": f"p{i}"}, headers=account.headers).json()
        when = start + timedelta(seconds=over * i / count)
        response = client.post(
            f"/api/v1/posts/{post['id']}/schedule",
            json={"scheduled_at": when.isoformat(), "channel_ids": [channel["id"]]},
            headers=account.headers,
        )
        key = f"herald-{response.json()['publications'][0]['id'].replace('-', '')}"
        due[key] = when
    return due


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_stop_and_restart_every_delivery_goes_out_once(
    client, account: Account, receiver: Receiver, redis_broker: str
) -> None:  # type: ignore[no-untyped-def]
    due = schedule_many(client, account, receiver, count=100, over=60)
    worker, beat = WorkerProcess().start(), BeatProcess().start()
    try:
        time.sleep(15)
    finally:
        beat.stop()
        worker.stop()
    sent_before = len(receiver.delivered)
    assert 0 < sent_before < 100
    time.sleep(30)  # Herald is down while about half of them fall due
    restarted = time.time()
    worker, beat = WorkerProcess().start(), BeatProcess().start()
    try:
        wait_for(lambda: len(receiver.delivered) == 100, timeout=90, interval=0.5)
    finally:
        beat.stop()
        worker.stop()
    assert len(receiver.posts()) == 100  # exactly once: not one resend
    assert set(receiver.delivered) == set(due)
    # The ones that fell due during the stop went out right after the start.
    during_stop = [
        key
        for key, when in due.items()
        if when.timestamp() < restarted and key not in list(receiver.delivered)[:sent_before]
    ]
    assert during_stop
    worst = max(receiver.delivered[key].at - restarted for key in during_stop)
    assert worst < 20, f"a delivery missed during the stop went out {worst:.1f} s after restart"
