from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from herald.channels.models import Channel, ChannelState
from herald.channels.tasks import verify_channel
from herald.core.clock import set_clock, utcnow
from herald.core.errors import InvalidInput
from herald.jobs.models import Job
from herald.publishing.tasks import deliver
from herald.scheduling.dispatcher import MAX_SLEEP, dispatch_once, seconds_until_next
from herald.scheduling.service import claim_period, clean_old_records, parse_when
from herald.scheduling.tasks import reconcile
from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver

# The channel and the post the setup fixture made (as the API returned them).
Setup = tuple[dict[str, Any], dict[str, Any]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-03T10:00:00+01:00", datetime(2026, 12, 3, 9, 0, tzinfo=UTC)),
        ("2026-12-03T09:00Z", datetime(2026, 12, 3, 9, 0, tzinfo=UTC)),
        ("2026-12-03 10:00 Europe/Warsaw", datetime(2026, 12, 3, 9, 0, tzinfo=UTC)),
        ("2026-07-03 10:00 Europe/Warsaw", datetime(2026, 7, 3, 8, 0, tzinfo=UTC)),
        ("2026-12-03T10:00[Europe/Warsaw]", datetime(2026, 12, 3, 9, 0, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-03 10:00", "needs an offset"),
        ("2026-12-03 10:00 Mars/Olympus", "unknown time zone"),
        ("tomorrow", "not an ISO 8601"),
    ],
)
def test_parse_when_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_when(text)


@pytest.fixture
def setup(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    post = client.post("/api/v1/posts", json={"title": "Later"}, headers=account.headers).json()
    return channel, post


def at(moment: datetime) -> int:

    set_clock(lambda: moment)
    try:
        return dispatch_once()
    finally:
        set_clock(None)


def deliver_all(client: TestClient, account: Account, post_id: str) -> list[str]:
    rows = client.get(f"/api/v1/posts/{post_id}/publications", headers=account.headers).json()
    return [deliver(p["id"]) for p in rows if p["state"] == "queued"]


def test_schedule_goes_out_at_its_time_only(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    when = utcnow() + timedelta(hours=1)
    response = client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": when.isoformat(), "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["publications"][0]["state"] == "scheduled"
    assert body["scheduled_at"].endswith("Z")  # every API time carries its offset (Z = UTC)
    assert (
        client.get(f"/api/v1/posts/{post['id']}", headers=account.headers).json()["state"]
        == "scheduled"
    )

    assert at(when - timedelta(seconds=1)) == 0
    assert at(when) == 1
    assert deliver_all(client, account, post["id"]) == ["published"]
    assert len(receiver.posts()) == 1


def test_unschedule_one_second_before_sends_nothing(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    when = utcnow() + timedelta(minutes=10)
    client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": when.isoformat(), "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    set_clock(lambda: when - timedelta(seconds=1))
    try:
        cancelled = client.delete(f"/api/v1/posts/{post['id']}/schedule", headers=account.headers)
    finally:
        set_clock(None)
    assert cancelled.json()["cancelled"] == 1
    assert at(when + timedelta(seconds=5)) == 0
    assert deliver_all(client, account, post["id"]) == []
    assert receiver.posts() == []


def test_reschedule_goes_out_at_the_new_time_only(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    first = utcnow() + timedelta(minutes=10)
    second = first + timedelta(minutes=30)
    client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": first.isoformat(), "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    moved = client.patch(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": second.isoformat()},
        headers=account.headers,
    )
    assert moved.status_code == 200, moved.text
    assert at(first + timedelta(seconds=1)) == 0
    assert at(second) == 1
    assert deliver_all(client, account, post["id"]) == ["published"]
    again = client.patch(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": (second + timedelta(hours=1)).isoformat()},
        headers=account.headers,
    )
    assert again.status_code == 409


def test_past_time_is_refused(client: TestClient, account: Account, setup: Setup) -> None:
    channel, post = setup
    response = client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": "2020-01-01T00:00:00Z", "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert response.status_code == 422
    assert "in the past" in response.json()["detail"]


def test_missed_beyond_the_limit_fails_instead_of_posting_late(
    client: TestClient, account: Account, setup: Setup, receiver: Receiver
) -> None:
    channel, post = setup
    soon = utcnow() + timedelta(minutes=5)
    other = client.post("/api/v1/posts", json={"title": "Recent"}, headers=account.headers).json()
    for p in (post, other):
        client.post(
            f"/api/v1/posts/{p['id']}/schedule",
            json={"scheduled_at": soon.isoformat(), "channel_ids": [channel["id"]]},
            headers=account.headers,
        )
    # Herald was down; the first came due 7 h ago (beyond the 6 h limit)...
    client.patch(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": (soon + timedelta(minutes=1)).isoformat()},
        headers=account.headers,
    )
    restart = soon + timedelta(hours=7)
    # ...the second only 5 minutes ago (within the limit): reschedule it to fall there.
    client.patch(
        f"/api/v1/posts/{other['id']}/schedule",
        json={"scheduled_at": (restart - timedelta(minutes=5)).isoformat()},
        headers=account.headers,
    )
    assert at(restart) == 1
    (missed,) = client.get(
        f"/api/v1/posts/{post['id']}/publications", headers=account.headers
    ).json()
    assert missed["state"] == "failed"
    assert missed["error_kind"] == "missed"
    assert missed["last_error"].startswith("missed: it was due at")
    assert deliver_all(client, account, other["id"]) == ["published"]
    assert len(receiver.posts()) == 1


def test_two_dispatchers_at_once_queue_each_delivery_once(
    client: TestClient, account: Account, setup: Setup, db: Any
) -> None:
    channel, _ = setup
    when = utcnow() + timedelta(minutes=1)
    for i in range(40):
        post = client.post("/api/v1/posts", json={"title": f"p{i}"}, headers=account.headers).json()
        client.post(
            f"/api/v1/posts/{post['id']}/schedule",
            json={"scheduled_at": when.isoformat(), "channel_ids": [channel["id"]]},
            headers=account.headers,
        )
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        counts.append(at(when))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(counts) == 40


def test_a_held_delivery_does_not_keep_the_scheduler_awake(
    client: TestClient, account: Account, setup: Setup, db: Any
) -> None:
    """A delivery held by a broken channel (due long ago) used to make the scheduler
    tick every 10 ms, a write transaction each, until the channel was fixed."""

    channel, post = setup
    when = utcnow() + timedelta(minutes=5)
    client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduled_at": when.isoformat(), "channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    later = when + timedelta(hours=1)
    assert seconds_until_next(later) < MAX_SLEEP  # due: dispatch at once
    with db() as s:
        s.execute(update(Channel).values(state=ChannelState.NEEDS_RECONNECT))
    assert seconds_until_next(later) == MAX_SLEEP  # held: nothing to hurry for
    assert at(later) == 0


def test_periodic_job_runs_once_per_period(db: Any) -> None:
    with db() as s:
        assert claim_period(s, "job", 100) is True
    with db() as s:
        assert claim_period(s, "job", 100) is False  # a second scheduler, same period
    with db() as s:
        assert claim_period(s, "job", 101) is True


def test_periodic_endpoint_lists_last_and_next_runs(
    client: TestClient, account: Account, db: Any
) -> None:
    reconcile()
    jobs = {
        j["name"]: j
        for j in client.get("/api/v1/schedule/periodic", headers=account.headers).json()
    }
    assert {"dispatch-due-deliveries", "reconcile-stuck-deliveries", "clean-old-records"} <= set(
        jobs
    )
    assert jobs["reconcile-stuck-deliveries"]["last_status"] == "ok"
    assert jobs["reconcile-stuck-deliveries"]["next_run_at"] is not None
    assert jobs["clean-old-records"]["schedule"].startswith("cron 0 3")
    assert reconcile() == {"skipped": True}  # same minute: the period is taken


def test_clean_old_records_keeps_delivery_history(
    client: TestClient, account: Account, setup: Setup, db: Any
) -> None:
    channel, post = setup
    (pub,) = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [channel["id"]]},
        headers=account.headers,
    ).json()["publications"]
    deliver(pub["id"])
    started = client.post(f"/api/v1/channels/{channel['id']}/test", headers=account.headers).json()

    verify_channel(started["job_id"])
    later = utcnow() + timedelta(days=31)
    set_clock(lambda: later)
    try:
        with db() as s:
            result = clean_old_records(s)
    finally:
        set_clock(None)
    assert result["jobs_deleted"] == 1
    with db() as s:
        assert s.scalars(select(Job.id)).all() == [pub["task_id"]]
