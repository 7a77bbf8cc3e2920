"""Channel health: the pass that checks every active channel once a period (spread over
it, channels with deliveries due soon first), claims each check once however many passes
race, refreshes OAuth tokens ahead of expiry and marks refused channels
``needs_reconnect`` in the platform's words, through the same job as a person's test;
on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from herald.channels import health
from herald.channels.models import Channel
from herald.channels.tasks import verify_channel
from herald.core.clock import utcnow
from herald.core.crypto import decrypt_json
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.jobs.models import Job
from herald.scheduling.channel_checks import claim_due, health_pass
from herald.worker import PRIORITY_NOW, queue_key, queue_keys
from tests.channels.test_verify import channel, create_channel, job
from tests.conftest import Account, SessionFactory
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.matrix import FakeMatrix
from tests.fakes.x import FakeX

DAY = timedelta(hours=24)


def folder_channel(client: TestClient, account: Account, path: Path, name: str) -> str:
    body = {"platform": "folder", "name": name, "credentials": {"path": str(path)}}
    response = client.post("/api/v1/channels", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_due(db: SessionFactory, channel_id: str, ago: timedelta = timedelta(minutes=1)) -> None:
    with db() as s:
        s.execute(
            update(Channel)
            .where(Channel.id == uuid.UUID(channel_id))
            .values(next_check_at=utcnow() - ago)
        )


def health_jobs(db: SessionFactory) -> list[Job]:
    with db() as s:
        jobs = list(s.scalars(select(Job).where(Job.params["trigger"].as_string() == "health")))
        s.expunge_all()
        return jobs


def run_pass(now: datetime | None = None) -> dict[str, Any]:
    with session_scope() as session:
        return health_pass(session, now)


# -- when ---------------------------------------------------------------------------------


def test_first_checks_are_spread_over_the_period_by_the_channel_id() -> None:
    now = datetime(2026, 12, 6, 19, 0, tzinfo=utcnow().tzinfo)
    rng = random.Random(2026)
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(240)]

    firsts = [health.first_check_at(i, now, DAY) for i in ids]

    assert all(now <= at < now + DAY for at in firsts)
    # The same id always gets the same place; 240 channels over 24 hours: 10 an hour on
    # average, and no hour of the day holds more than a few times that.
    assert firsts == [health.first_check_at(i, now, DAY) for i in ids]
    by_hour = Counter(int((at - now).total_seconds() // 3600) for at in firsts)
    assert len(by_hour) == 24 and max(by_hour.values()) <= 25, by_hour
    # A place is kept from one period to the next: a day later, one day later.
    assert [health.first_check_at(i, now + DAY, DAY) for i in ids] == [at + DAY for at in firsts]


def test_a_new_channel_gets_its_place_and_the_read_shows_its_checks(
    client: TestClient, account: Account, tmp_path: Path, redis_broker: str
) -> None:
    before = utcnow()
    channel_id = folder_channel(client, account, tmp_path, "site")

    read = channel(client, account, channel_id)
    assert read["checked_at"] is None and read["last_check_ok"] is None
    next_at = datetime.fromisoformat(read["next_check_at"])
    assert before - timedelta(seconds=1) <= next_at < before + DAY
    assert next_at == health.first_check_at(uuid.UUID(channel_id), next_at, DAY)

    # A person's test is a check like the pass's: recorded, the next a period later.
    started = client.post(f"/api/v1/channels/{channel_id}/test", headers=account.headers)
    verify_channel(started.json()["job_id"])
    read = channel(client, account, channel_id)
    checked_at = datetime.fromisoformat(read["checked_at"])
    assert read["last_check_ok"] is True and read["last_check_error"] is None
    assert datetime.fromisoformat(read["next_check_at"]) == checked_at + DAY


# -- which, in which order, once ------------------------------------------------------------


def test_channels_with_deliveries_due_within_a_day_are_claimed_first(
    client: TestClient, account: Account, db: SessionFactory, tmp_path: Path, redis_broker: str
) -> None:
    oldest = folder_channel(client, account, tmp_path, "oldest-due")
    soon = folder_channel(client, account, tmp_path, "post-in-2-hours")
    later = folder_channel(client, account, tmp_path, "post-in-3-days")
    make_due(db, oldest, ago=timedelta(hours=5))
    make_due(db, soon, ago=timedelta(minutes=1))
    make_due(db, later, ago=timedelta(hours=6))
    for channel_id, when in ((soon, timedelta(hours=2)), (later, timedelta(days=3))):
        post = client.post("/api/v1/posts", json={"title": "t"}, headers=account.headers)
        scheduled = client.post(
            f"/api/v1/posts/{post.json()['id']}/schedule",
            json={"scheduled_at": (utcnow() + when).isoformat(), "channel_ids": [channel_id]},
            headers=account.headers,
        )
        assert scheduled.status_code in (200, 201, 202), scheduled.text

    order = []
    for _ in range(3):
        with db() as s:
            (claimed,) = claim_due(s, utcnow(), limit=1)
        order.append(str(claimed[0]))

    # The post due in 2 hours first; then by due time (a post 3 days out gives no priority).
    assert order == [soon, later, oldest]
    with db() as s:
        assert claim_due(s, utcnow()) == []  # each claimed: none due again for the lease


def test_two_passes_racing_start_one_check_per_channel(
    client: TestClient, account: Account, db: SessionFactory, tmp_path: Path, redis_broker: str
) -> None:
    ids = [folder_channel(client, account, tmp_path, f"site-{n}") for n in range(12)]
    for channel_id in ids:
        make_due(db, channel_id)
    start = threading.Barrier(2)
    results: list[dict[str, Any]] = []

    def one_pass() -> None:
        start.wait(10)
        results.append(run_pass())

    passes = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join(60)

    assert len(results) == 2 and sum(r["claimed"] for r in results) == len(ids), results
    jobs = health_jobs(db)
    assert sorted(j.params["channel_id"] for j in jobs) == sorted(ids)  # one each
    assert {j.kind for j in jobs} == {"channel.verify"} and {j.owner_id for j in jobs} == {None}
    # Sent to the maintenance queue after commit, never to publishing.
    broker = redis.Redis.from_url(redis_broker)
    assert broker.llen(queue_key("maintenance", PRIORITY_NOW)) == len(ids)
    assert sum(broker.llen(key) for key in queue_keys("publishing")) == 0
    # Due again only once the check is recorded a period later (or the lease runs out).
    assert run_pass()["claimed"] == 0
    assert run_pass(utcnow() + timedelta(minutes=59))["claimed"] == 0


# -- what a check does ------------------------------------------------------------------------


@pytest.fixture
def matrix() -> Iterator[FakeMatrix]:
    with FakeMatrix() as fake:
        yield fake


def test_a_refused_token_marks_needs_reconnect_in_the_platforms_words_until_reconnected(
    client: TestClient, account: Account, db: SessionFactory, matrix: FakeMatrix, redis_broker: str
) -> None:
    good = {
        "homeserver": matrix.base_url,
        "access_token": matrix.access_token,
        "room": matrix.alias,
    }
    channel_id = create_channel(client, account, "matrix", good | {"access_token": "syt_revoked"})
    make_due(db, channel_id)

    (job_id,) = run_pass()["jobs"]
    verify_channel(job_id)

    done = job(client, account, job_id)
    assert done["state"] == "FAILURE" and done["params"]["trigger"] == "health"
    read = channel(client, account, channel_id)
    assert read["state"] == "needs_reconnect"
    assert "M_UNKNOWN_TOKEN" in read["state_reason"]  # the homeserver's own words
    assert read["last_check_ok"] is False and "M_UNKNOWN_TOKEN" in read["last_check_error"]

    # Not checked again while it needs reconnecting, even once due.
    make_due(db, channel_id)
    assert run_pass()["claimed"] == 0

    # A person reconnects: the new credentials are checked at the next pass.
    patched = client.patch(
        f"/api/v1/channels/{channel_id}", json={"credentials": good}, headers=account.headers
    )
    assert patched.json()["state"] == "active"
    (again,) = run_pass()["jobs"]
    verify_channel(again)
    read = channel(client, account, channel_id)
    assert read["state"] == "active" and read["last_check_ok"] is True


def test_paused_channels_are_skipped(
    client: TestClient, account: Account, db: SessionFactory, tmp_path: Path, redis_broker: str
) -> None:
    paused = folder_channel(client, account, tmp_path, "paused")
    active = folder_channel(client, account, tmp_path, "active")
    client.patch(f"/api/v1/channels/{paused}", json={"state": "paused"}, headers=account.headers)
    make_due(db, paused)
    make_due(db, active)

    run_pass()

    assert [j.params["channel_id"] for j in health_jobs(db)] == [active]


def test_an_x_token_expiring_before_the_next_check_is_refreshed_and_stored(
    client: TestClient, account: Account, db: SessionFactory, redis_broker: str
) -> None:
    with FakeX(token_lifetime=10 * 3600) as x:  # expires before the next check (+1 h)
        channel_id = create_channel(client, account, "x", x.credentials())
        make_due(db, channel_id)
        first_refresh_token = x.refresh_token

        (job_id,) = run_pass()["jobs"]
        verify_channel(job_id)

        assert job(client, account, job_id)["result"]["refreshed"] is True
        assert x.refreshes == 1 and first_refresh_token in x.spent_refresh_tokens
        with db() as s:
            stored = decrypt_json(s.get_one(Channel, uuid.UUID(channel_id)).credentials_encrypted)
        # The new single-use pair is stored, with its new expiry.
        assert stored["refresh_token"] == x.refresh_token
        assert stored["access_token"] == x.access_token
        assert datetime.fromisoformat(stored["expires_at"]) > utcnow() + timedelta(hours=9)


def test_a_token_that_outlives_the_next_check_is_left_alone(
    client: TestClient, account: Account, db: SessionFactory, redis_broker: str
) -> None:
    with FakeX(token_lifetime=3 * 86400) as x:
        channel_id = create_channel(client, account, "x", x.credentials())
        make_due(db, channel_id)

        (job_id,) = run_pass()["jobs"]
        verify_channel(job_id)

        assert job(client, account, job_id)["state"] == "SUCCESS"
        assert x.refreshes == 0


def test_a_linkedin_token_expiring_soon_is_refreshed_with_its_new_expiry(
    client: TestClient, account: Account, db: SessionFactory, redis_broker: str
) -> None:
    with FakeLinkedIn() as linkedin:
        credentials = linkedin.credentials(
            refresh_token=linkedin.refresh_token,
            client_id=linkedin.client_id,
            client_secret=linkedin.client_secret,
            expires_at=(utcnow() + timedelta(hours=2)).isoformat(),
        )
        channel_id = create_channel(client, account, "linkedin", credentials)
        make_due(db, channel_id)

        (job_id,) = run_pass()["jobs"]
        verify_channel(job_id)

        assert job(client, account, job_id)["state"] == "SUCCESS"
        assert linkedin.refreshes == 1
        with db() as s:
            stored = decrypt_json(s.get_one(Channel, uuid.UUID(channel_id)).credentials_encrypted)
        assert stored["access_token"] != credentials["access_token"]
        # LinkedIn's answer: expires_in 60 days.
        assert datetime.fromisoformat(stored["expires_at"]) > utcnow() + timedelta(days=59)


# -- off ----------------------------------------------------------------------------------------


def test_zero_hours_turns_the_checks_off_and_back_on_places_every_channel(
    client: TestClient,
    account: Account,
    db: SessionFactory,
    tmp_path: Path,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    due = folder_channel(client, account, tmp_path, "due")
    make_due(db, due)
    monkeypatch.setattr(get_settings(), "channel_check_hours", 0.0)
    added = folder_channel(client, account, tmp_path, "added-while-off")

    assert run_pass() == {"off": True}
    assert health_jobs(db) == []
    assert channel(client, account, added)["next_check_at"] is None

    monkeypatch.setattr(get_settings(), "channel_check_hours", 24.0)
    result = run_pass()
    assert result["placed"] == 1 and result["claimed"] == 1  # the due one; the new one placed
    next_at = datetime.fromisoformat(channel(client, account, added)["next_check_at"])
    assert utcnow() - timedelta(minutes=1) <= next_at < utcnow() + DAY
