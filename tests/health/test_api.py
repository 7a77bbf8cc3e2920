from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event

from herald.core.clock import set_clock, utcnow
from herald.core.db import READ_ONLY, get_engine
from herald.core.settings import get_settings
from herald.health import service
from herald.health.service import Component, Status
from herald.scheduling.heartbeat import beat
from herald.worker import create_celery
from tests.conftest import Account
from tests.workers import running_worker


def test_health_reports_each_component(client: TestClient, redis_broker: str, db: Any) -> None:
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


def test_stale_heartbeat_is_down(client: TestClient, redis_broker: str, db: Any) -> None:
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
    dead = create_celery()
    dead.conf.broker_url = "redis://127.0.0.1:1/0"
    monkeypatch.setattr("herald.worker.app", dead)
    broker = service.check_broker()
    assert broker.status == "down"
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["components"]["workers"]["detail"] == "broker unreachable"


def test_tasks_health_is_503_when_a_component_is_down(
    client: TestClient, account: Account, redis_broker: str
) -> None:
    # No worker runs and the scheduler never beat.
    response = client.get("/api/v1/tasks/health", headers=account.headers)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert set(body["components"]) == {"database", "broker", "workers", "scheduler"}
    assert body["components"]["database"]["status"] == "up"
    assert body["components"]["scheduler"]["status"] == "down"
    assert client.get("/api/v1/tasks/health").status_code == 401


def test_both_health_endpoints_are_503_with_the_broker_down(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = create_celery()
    dead.conf.broker_url = "redis://127.0.0.1:1/0"  # refused
    monkeypatch.setattr("herald.worker.app", dead)
    client.get("/api/v1/health")  # a process's first call also connects and imports
    for path in ("/api/v1/health", "/api/v1/tasks/health"):
        start = time.perf_counter()
        response = client.get(path, headers=account.headers)
        assert time.perf_counter() - start < 2.0
        assert response.status_code == 503, path
        components = response.json()["components"]
        assert components["broker"]["status"] == "down"
        assert components["workers"]["detail"] == "broker unreachable"


@pytest.fixture
def hung_checks(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The database and scheduler checks hang until the test ends."""

    client.get("/api/v1/health")  # a process's first call also connects and imports
    release = threading.Event()

    def hung(budget: float = 0) -> Component:
        release.wait(60)
        return Component(status=Status.UP)

    monkeypatch.setitem(service.CHECKS, "database", hung)
    monkeypatch.setitem(service.CHECKS, "scheduler", hung)
    try:
        yield release
    finally:
        release.set()


def test_hung_checks_are_down_and_the_answer_comes_within_2_s(
    client: TestClient, account: Account, redis_broker: str, hung_checks: threading.Event
) -> None:
    for path in ("/api/v1/health", "/api/v1/tasks/health", "/api/v1/health"):
        start = time.perf_counter()
        response = client.get(path, headers=account.headers)
        assert time.perf_counter() - start < 2.0
        assert response.status_code == 503
        components = response.json()["components"]
        for name in ("database", "scheduler"):
            assert components[name] == {
                "status": "down",
                "detail": "did not answer within 1 s",
                "latency_ms": None,
                "info": {},
            }
        assert components["broker"]["status"] == "up"  # checked beside them
    # A hung check is not started again while it runs: three calls, one thread each.
    names = [thread.name for thread in threading.enumerate()]
    assert names.count("herald-health-database") == 1
    assert names.count("herald-health-scheduler") == 1


def test_health_only_reads(client: TestClient, account: Account, redis_broker: str) -> None:
    """No write transaction (on SQLite, the writer lock): every transaction is read-only."""

    transactions: list[bool] = []

    def begun(conn: Connection) -> None:
        transactions.append(bool(conn.get_execution_options().get(READ_ONLY)))

    # A token's first use is recorded once (a write that never waits for the lock): get
    # it out of the way, the health checks themselves are what is under test.
    client.get("/api/v1/posts", headers=account.headers)
    engine = get_engine()
    event.listen(engine, "begin", begun)
    try:
        client.get("/api/v1/health")
        client.get("/api/v1/tasks/health", headers=account.headers)
    finally:
        event.remove(engine, "begin", begun)
    assert transactions
    assert all(transactions), transactions


@pytest.mark.integration
# One backend: what is timed is the workers' ping over Redis; the database check is
# tested on both above.
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_health_answers_at_the_first_worker_reply(
    client: TestClient, redis_broker: str, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long ping timeout: waiting it out would show.
    monkeypatch.setattr(get_settings(), "worker_ping_timeout", 5.0)
    with running_worker():
        with db() as s:
            beat(s)
        client.get("/api/v1/health")  # the first call also connects and imports
        start = time.perf_counter()
        response = client.get("/api/v1/health")
        elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.json()
    assert elapsed < 1.0, f"health took {elapsed:.2f} s"
    workers = response.json()["components"]["workers"]
    assert workers["status"] == "up"
    assert workers["info"]["first_to_answer"].startswith("celery@")
