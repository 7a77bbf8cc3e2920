"""A burst delivered by a real prefork worker (two pool children, each with its own
database connections): /metrics, read from the database and Redis at scrape time, shows
per-state values equal to the database's counts and the worker counted live by the
heartbeat its main process wrote to Redis. No process's own counter is involved, so
which child delivered what cannot matter."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from herald.publishing.models import Publication
from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver
from tests.metrics import publish_burst, scrape
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.integration
BURST = 12


def test_a_prefork_burst_is_counted_once_from_the_database(
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
    with running_worker():
        publish_burst(client, account, channel["id"], BURST, "B")

        def published() -> bool:
            with db() as s:
                return (
                    s.scalar(
                        select(func.count())
                        .select_from(Publication)
                        .where(Publication.state == "published")
                    )
                    == BURST
                )

        wait_for(published, timeout=60, what="the burst published")

        # The worker's main process beats every 2 s (Celery's event heartbeat).
        def worker_counted() -> dict[str, Any] | None:
            samples = scrape(client)
            return samples if samples.get("herald_workers", {}).get(()) == 1 else None

        found = wait_for(worker_counted, timeout=30, what="the worker's heartbeat in Redis")
    assert found is not None
    samples = found
    with db() as s:
        counts = dict(
            s.execute(select(Publication.state, func.count()).group_by(Publication.state)).all()
        )
    assert counts == {"published": BURST}
    assert samples["herald_deliveries"][(("platform", "webhook"), ("state", "published"))] == BURST
    assert sum(samples["herald_deliveries"].values()) == BURST
    attempts = samples["herald_delivery_attempts_total"]
    assert attempts[(("outcome", "published"), ("platform", "webhook"))] == BURST
    assert samples["herald_delivery_duration_seconds_count"][(("platform", "webhook"),)] == BURST
    assert samples["herald_queue_depth"][(("queue", "publishing"),)] == 0
    assert len(receiver.delivered) == BURST
