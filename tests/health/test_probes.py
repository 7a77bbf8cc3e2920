"""Liveness and readiness: what probes ask of one API process.

Readiness answers for the database and the broker only (a stopped worker or scheduler
must not take the API out of its load balancer); liveness answers for nothing but the
process. Both databases: the database check is the backend's own connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from herald.worker import create_celery
from tests.outage import database_unreachable

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def database_down(client: TestClient, db_backend: str, tmp_path: Path) -> Iterator[None]:
    with database_unreachable(db_backend, tmp_path):
        yield


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = create_celery()
    dead.conf.broker_url = "redis://127.0.0.1:1/0"  # refused
    monkeypatch.setattr("herald.worker.app", dead)


def test_ready_with_no_worker_and_no_scheduler(client: TestClient, redis_broker: str) -> None:
    # No worker runs and the scheduler never beat: the full report is down, the API ready.
    assert client.get("/api/v1/health").status_code == 503
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "up"
    assert set(body["components"]) == {"database", "broker"}
    assert client.get("/api/v1/health/live").json() == {"status": "up"}


def test_database_down_makes_readiness_503_and_leaves_liveness_200(
    client: TestClient, redis_broker: str, database_down: None
) -> None:
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "1"
    problem = response.json()
    assert problem["type"].endswith("/not-ready")
    assert problem["status"] == 503
    assert problem["detail"].startswith("Not ready to serve requests: database: ")
    assert "HERALD_DATABASE_URL" in problem["detail"]
    assert "broker:" not in problem["detail"]  # it answered

    live = client.get("/api/v1/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "up"})
    report = client.get("/api/v1/health")
    assert report.status_code == 503
    assert report.json()["components"]["database"]["status"] == "down"


def test_broker_down_makes_readiness_503(client: TestClient, broker_down: None) -> None:
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    detail = response.json()["detail"]
    assert "broker: " in detail and "database:" not in detail
    assert client.get("/api/v1/health/live").status_code == 200


def test_liveness_asks_nothing(client: TestClient, broker_down: None, database_down: None) -> None:
    assert client.get("/api/v1/health/live").status_code == 200
    detail = client.get("/api/v1/health/ready").json()["detail"]
    assert "database: " in detail and "broker: " in detail
