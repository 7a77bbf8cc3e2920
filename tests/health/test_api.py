from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from herald.core.clock import utcnow


def test_health_reports_each_component(client: TestClient, redis_broker: str, db) -> None:
    from herald.scheduling.heartbeat import beat

    # No worker runs in this test and the scheduler never beat: 503 with reasons.
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    components = response.json()["components"]
    assert components["database"]["status"] == "up"
    assert components["broker"]["status"] == "up"
    assert components["workers"]["status"] == "down"
    assert components["workers"]["detail"].startswith("no worker answered the ping")
    assert components["scheduler"]["status"] == "down"

    with db() as s:
        beat(s)
    scheduler = client.get("/api/v1/health").json()["components"]["scheduler"]
    assert scheduler["status"] == "up"
    assert scheduler["info"]["heartbeat_age_seconds"] < 5


def test_stale_heartbeat_is_down(client: TestClient, redis_broker: str, db) -> None:
    from herald.core.clock import set_clock
    from herald.scheduling.heartbeat import beat

    with db() as s:
        beat(s)
    later = utcnow() + timedelta(minutes=5)
    set_clock(lambda: later)
    try:
        scheduler = client.get("/api/v1/health").json()["components"]["scheduler"]
    finally:
        set_clock(None)
    assert scheduler["status"] == "down"
    assert "no heartbeat for" in scheduler["detail"]


def test_broker_down_is_reported_not_raised(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from herald.health import service
    from herald.worker import create_celery

    dead = create_celery()
    dead.conf.broker_url = "redis://127.0.0.1:1/0"
    monkeypatch.setattr("herald.worker.app", dead)
    broker = service.check_broker()
    assert broker.status == "down"
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["components"]["workers"]["detail"] == "broker unreachable"
