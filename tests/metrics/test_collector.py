"""/metrics after a publishing burst: the per-state values equal the database's counts and
the lateness histogram holds every scheduled delivery, in the right buckets. The values
are read from the database at scrape time, so every prefork child and host that wrote
those rows is counted: nothing here depends on which process delivered."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from herald.channels.models import Channel
from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.metrics import workers
from herald.publishing.models import Publication, PublicationState
from herald.publishing.tasks import deliver
from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver
from tests.metrics import publish_burst, scrape
from tests.outage import database_unreachable


def test_a_burst_shows_per_state_counts_equal_to_the_database_and_lateness(
    client: TestClient,
    account: Account,
    receiver: Receiver,
    redis_broker: str,
    db: SessionFactory,
) -> None:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "hook", "credentials": receiver.credentials()},
        headers=account.headers,
    ).json()
    publications = publish_burst(client, account, channel["id"], 6, "P")
    # Four go out; two stay queued, as if the workers had not reached them yet.
    for publication in publications[:4]:
        assert deliver(publication["id"]) == "published"
    # Give the published ones a due time: 0.05 s, 0.3 s, 3 s and 20 s before they went out.
    lateness = [0.05, 0.3, 3.0, 20.0]
    with db() as s:
        for publication, late in zip(publications[:4], lateness, strict=True):
            row = s.get(Publication, uuid.UUID(publication["id"]))
            assert row is not None and row.published_at is not None
            s.execute(
                update(Publication)
                .where(Publication.id == row.id)
                .values(due_at=row.published_at - timedelta(seconds=late))
            )

    samples = scrape(client)

    with db() as s:
        counts = dict(
            s.execute(select(Publication.state, func.count()).group_by(Publication.state)).all()
        )
    assert counts == {"published": 4, "queued": 2}
    deliveries = samples["herald_deliveries"]
    for state in PublicationState:
        key = (("platform", "webhook"), ("state", state.value))
        assert deliveries[key] == counts.get(state, 0), state
    webhook = (("platform", "webhook"),)
    assert samples["herald_delivery_lateness_seconds_count"][webhook] == 4
    buckets = {
        dict(k)["le"]: v for k, v in samples["herald_delivery_lateness_seconds_bucket"].items()
    }
    assert buckets["0.1"] == 1 and buckets["0.5"] == 2 and buckets["5.0"] == 3
    assert buckets["10.0"] == 3 and buckets["30.0"] == 4 and buckets["+Inf"] == 4
    assert samples["herald_delivery_lateness_seconds_sum"][webhook] == pytest.approx(
        23.35, abs=0.01
    )
    assert samples["herald_delivery_duration_seconds_count"][webhook] == 4
    attempts = samples["herald_delivery_attempts_total"]
    assert attempts[(("outcome", "published"), ("platform", "webhook"))] == 4
    # The task bodies ran in-process, as a worker would run them, so no worker took the six
    # messages off the publishing queue: all six wait there.
    assert samples["herald_queue_depth"][(("queue", "publishing"),)] == 6
    assert samples["herald_queue_oldest_message_age_seconds"][(("queue", "publishing"),)] >= 0
    assert samples["herald_broker_up"][()] == 1
    assert samples["herald_jobs"][(("kind", "publish"), ("state", "SUCCESS"))] == 4

    # Lateness is the first attempt's: one published by a retry (its due_at the retry's
    # time, the person's lost) leaves the histogram.
    with db() as s:
        s.execute(
            update(Publication)
            .where(Publication.id == uuid.UUID(publications[3]["id"]))
            .values(attempt=2)
        )
    again = scrape(client)
    assert again["herald_delivery_lateness_seconds_count"][webhook] == 3
    assert again["herald_delivery_lateness_seconds_sum"][webhook] == pytest.approx(3.35, abs=0.01)


def test_workers_are_counted_from_their_heartbeats_in_redis(
    client: TestClient, redis_broker: str
) -> None:
    r = redis.Redis.from_url(redis_broker)
    workers.record(r, "celery@a")
    workers.record(r, "celery@b", now=time.time() - 3600)
    samples = scrape(client)
    assert samples["herald_workers"][()] == 1
    assert samples["herald_worker_heartbeat_age_seconds"][(("worker", "celery@b"),)] >= 3600


def test_a_token_is_required_when_set(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "metrics_token", "s3cret")
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        "herald_deliveries"
        in client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).text
    )


def test_a_scrape_with_the_database_down_is_503_problem_json(
    client: TestClient, db_backend: str, redis_broker: str, tmp_path: Path
) -> None:
    assert client.get("/metrics").status_code == 200
    with database_unreachable(db_backend, tmp_path):
        response = client.get("/metrics")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "30"
    problem = response.json()
    assert problem["type"].endswith("/metrics-unavailable")
    assert problem["status"] == 503
    assert problem["detail"].startswith(
        "The metrics could not be read: the database did not answer (OperationalError)."
    )
    assert "HERALD_DATABASE_URL" in problem["detail"]
    assert client.get("/metrics").status_code == 200  # back once the database answers


def test_the_stalest_channel_check_and_failing_checks_are_exported(
    client: TestClient, account: Account, db: SessionFactory, tmp_path: Path
) -> None:
    assert "herald_channel_check_age_seconds" not in scrape(client)  # no active channel
    ids = []
    for name in ("fresh", "stale", "paused"):
        body = {"platform": "folder", "name": name, "credentials": {"path": str(tmp_path)}}
        ids.append(client.post("/api/v1/channels", json=body, headers=account.headers).json()["id"])
    now = utcnow()
    with db() as s:
        for channel_id, (ago, ok) in zip(ids, ((1, True), (30, False), (90, False)), strict=True):
            s.execute(
                update(Channel)
                .where(Channel.id == uuid.UUID(channel_id))
                .values(checked_at=now - timedelta(hours=ago), last_check_ok=ok)
            )
    client.patch(f"/api/v1/channels/{ids[2]}", json={"state": "paused"}, headers=account.headers)

    samples = scrape(client)

    # The paused channel, checked 90 h ago, counts for neither.
    age = samples["herald_channel_check_age_seconds"][()]
    assert 30 * 3600 <= age < 31 * 3600
    assert samples["herald_channel_checks_failing"][()] == 1
