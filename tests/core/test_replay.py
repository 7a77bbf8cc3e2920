"""A request whose database connection was lost before it committed runs once more."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from herald.core import db
from tests.conftest import Account
from tests.services import PG_ADMIN_URL


def _terminate_other_backends() -> int:
    """End every server process of the test database, as a restart or failover would."""
    url = db.get_engine().url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_a_write_that_lost_its_connection_before_commit_is_replayed_once(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no ping finds the dead one
    assert client.get("/api/v1/posts", headers=account.headers).status_code == 200
    assert _terminate_other_backends() >= 1

    answer = client.post(
        "/api/v1/posts", headers=account.headers, json={"title": "Once", "body": "Saved once."}
    )

    assert answer.status_code == 201, answer.text
    assert "x-herald-replayable" not in answer.headers
    listed = client.get("/api/v1/posts", headers=account.headers).json()
    assert [p["title"] for p in listed["items"]] == ["Once"]


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_a_read_that_lost_its_connection_is_replayed_too(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    assert client.get("/api/v1/posts", headers=account.headers).status_code == 200
    _terminate_other_backends()
    answer = client.get("/api/v1/posts", headers=account.headers)
    assert answer.status_code == 200, answer.text
