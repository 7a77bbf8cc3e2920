"""Issue 20's done-when: "An event webhook receiver that is down for 10 minutes gets every
event afterwards, each exactly once by event id, signatures valid."

Ten simulated minutes (Herald's clock moved, no sleeping): five refusing connections, five
answering 503, while posts are published through the real delivery path (whose events
are written by the hot path's Core transaction), posts are scheduled, jobs finish and a
test ping is sent. Every 30 s of it the scheduler's pass runs and workers take every due
delivery. Then the receiver comes back; once the retries fall due, it has every event the
workspace recorded, once each, every signature valid. And one run with a real worker
process: a post published by it reaches the receiver as a signed ``delivery.published``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.core.db import session_scope
from herald.jobs import service as jobs
from herald.jobs.models import JobState
from herald.publishing.tasks import deliver as deliver_publication
from herald.webhooks import delivery
from herald.webhooks.models import DeliveryState, WebhookEvent
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.fakes.webhook_receiver import Receiver
from tests.webhooks import add_webhook, deliveries, movable_clock, run_due, signed_by
from tests.workers import running_worker, wait_for


def _publish(client: TestClient, account: Account, channel_id: str, title: str) -> None:
    post = client.post("/api/v1/posts", json={"title": title}, headers=account.headers).json()
    answer = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [channel_id]},
        headers=account.headers,
    )
    assert answer.status_code == 202, answer.text
    (publication,) = answer.json()["publications"]
    assert deliver_publication(publication["id"]) == "published"


def _schedule(client: TestClient, account: Account, channel_id: str, at: str) -> None:
    post = client.post("/api/v1/posts", json={"title": "Later"}, headers=account.headers).json()
    answer = client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": at, "channel_ids": [channel_id]},
        headers=account.headers,
    )
    assert answer.status_code == 202, answer.text


def _finish_a_job(account: Account, n: int) -> None:
    with session_scope() as session:
        job = jobs.create_job(
            session, workspace_id=account.workspace_id, kind="test", params={"n": n}
        )
        job_id = job.id
    with session_scope() as session:
        jobs.finish(session, job_id, JobState.SUCCESS, result={"n": n})


def _pass_and_workers() -> None:
    with session_scope() as session:
        delivery.dispatch_due(session)
    run_due()


def test_a_receiver_down_for_ten_minutes_gets_every_event_once_afterwards(
    client: TestClient,
    account: Account,
    event_receiver: EventReceiver,
    receiver: Receiver,
) -> None:
    hook = add_webhook(client, account, event_receiver, ["*"])
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "blog", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    with movable_clock() as clock:
        event_receiver.stop()  # down: connections refused
        start = clock.now
        step = 0
        while clock.now - start < timedelta(minutes=10):
            if clock.now - start >= timedelta(minutes=5) and event_receiver.answer_status is None:
                event_receiver.start()  # up again, but answering 503
                event_receiver.answer_status = 503
            match step % 4:
                case 0:
                    _publish(client, account, channel["id"], f"Post {step}")
                case 1:
                    _finish_a_job(account, step)
                case 2:
                    later = (clock.now + timedelta(days=1)).isoformat()
                    _schedule(client, account, channel["id"], later)
                case 3:
                    client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=account.headers)
            _pass_and_workers()
            clock.advance(seconds=30)
            step += 1
        assert event_receiver.events == {}  # nothing got through while it was down
        assert {d.state for d in deliveries()} == {DeliveryState.PENDING}
        event_receiver.answer_status = None
        # Back: within the hour every retry has fallen due (the back-off is capped there).
        for _ in range(120):
            _pass_and_workers()
            if {d.state for d in deliveries()} == {DeliveryState.DELIVERED}:
                break
            clock.advance(seconds=30)
        assert clock.now - start < timedelta(minutes=10 + 60)
    with session_scope() as session:
        recorded = {
            str(event_id): kind
            for event_id, kind in session.execute(
                select(WebhookEvent.id, WebhookEvent.type).where(
                    WebhookEvent.workspace_id == account.workspace_id
                )
            )
        }
    kinds = set(recorded.values())
    assert {"delivery.published", "job.finished", "post.scheduled", "webhook.test"} <= kinds
    assert len(recorded) >= 20
    assert {d.state for d in deliveries()} == {DeliveryState.DELIVERED}
    # Every event, exactly once by event id, each signature valid.
    assert set(event_receiver.events) == set(recorded)
    assert event_receiver.duplicates == 0
    assert event_receiver.bad_signatures == 0
    # Those answered 503 too: every request Herald sent was signed with the secret.
    assert all(signed_by(event_receiver.secret, r) for r in event_receiver.requests)
    for event_id, event in event_receiver.events.items():
        assert event["type"] == recorded[event_id]
        assert event["workspace_id"] == str(account.workspace_id)
    # The delivery events carry what the publication did.
    published = [e for e in event_receiver.events.values() if e["type"] == "delivery.published"]
    assert all(e["data"]["platform"] == "webhook" and e["data"]["url"] for e in published)
    assert all(e["data"]["channel_id"] == channel["id"] for e in published)


@pytest.mark.integration
def test_a_real_worker_delivers_the_event_of_a_post_it_published(
    client: TestClient,
    account: Account,
    event_receiver: EventReceiver,
    tmp_path: Path,
) -> None:
    add_webhook(client, account, event_receiver, ["delivery.published"])
    site = client.post(
        "/api/v1/channels",
        json={"platform": "folder", "name": "site", "credentials": {"path": str(tmp_path)}},
        headers=account.headers,
    ).json()
    post = client.post("/api/v1/posts", json={"title": "Live"}, headers=account.headers).json()
    with running_worker():
        answer = client.post(
            f"/api/v1/posts/{post['id']}/publish",
            json={"channel_ids": [site["id"]]},
            headers=account.headers,
        )
        assert answer.status_code == 202
        wait_for(lambda: event_receiver.events, timeout=60, what="the event")
    ((event_id, event),) = event_receiver.events.items()
    assert event["type"] == "delivery.published"
    assert event["data"]["post_id"] == post["id"]
    assert event["data"]["platform"] == "folder"
    (request,) = event_receiver.requests
    assert request["headers"]["herald-event-id"] == event_id
    assert signed_by(event_receiver.secret, request)
    assert {d.state for d in deliveries()} == {DeliveryState.DELIVERED}
