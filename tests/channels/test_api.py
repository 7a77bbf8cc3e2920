from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.channels.models import Channel
from herald.channels.tasks import verify_channel
from herald.worker import PRIORITY_NOW, queue_key
from tests.conftest import Account

SECRET = "super-secret-signing-key-0123456789"


def webhook_channel(name: str = "hook") -> dict[str, object]:
    return {
        "platform": "webhook",
        "name": name,
        "credentials": {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
    }


def test_create_list_get_update_delete(client: TestClient, account: Account) -> None:
    created = client.post("/api/v1/channels", json=webhook_channel(), headers=account.headers)
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["platform"] == "webhook"
    assert channel["state"] == "active"
    assert "credentials" not in channel

    listed = client.get("/api/v1/channels", headers=account.headers).json()
    assert [c["id"] for c in listed] == [channel["id"]]

    url = f"/api/v1/channels/{channel['id']}"
    assert client.get(url, headers=account.headers).json()["name"] == "hook"
    paused = client.patch(url, json={"state": "paused", "name": "hook 2"}, headers=account.headers)
    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert paused.json()["name"] == "hook 2"

    assert client.delete(url, headers=account.headers).status_code == 204
    assert client.get(url, headers=account.headers).status_code == 404


def test_credentials_never_appear_in_responses_or_logs(
    client: TestClient, account: Account, caplog: pytest.LogCaptureFixture, db: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    created = client.post("/api/v1/channels", json=webhook_channel(), headers=account.headers)
    bodies.append(created.text)
    channel_id = created.json()["id"]
    bodies.append(client.get("/api/v1/channels", headers=account.headers).text)
    bodies.append(client.get(f"/api/v1/channels/{channel_id}", headers=account.headers).text)
    patched = client.patch(
        f"/api/v1/channels/{channel_id}",
        json={"credentials": {"url": "http://127.0.0.1:9/x", "secret": SECRET + "-v2"}},
        headers=account.headers,
    )
    bodies.append(patched.text)
    # A rejected credential must not be echoed back either.
    invalid = client.post(
        "/api/v1/channels",
        json={
            "platform": "webhook",
            "name": "bad",
            "credentials": {"url": "ftp://x", "secret": SECRET},
        },
        headers=account.headers,
    )
    assert invalid.status_code == 422
    bodies.append(invalid.text)
    bodies.append(client.get("/openapi.json").text)

    for body in bodies:
        assert SECRET not in body
    assert SECRET not in caplog.text
    with db() as s:
        stored = s.scalars(select(Channel.credentials_encrypted)).one()
    assert SECRET.encode() not in stored  # encrypted at rest


def test_unknown_platform_and_bad_credentials_are_422(client: TestClient, account: Account) -> None:
    unknown = client.post(
        "/api/v1/channels",
        json={"platform": "myspace", "name": "x", "credentials": {}},
        headers=account.headers,
    )
    assert unknown.status_code == 422
    assert "unknown platform 'myspace'" in unknown.json()["detail"]

    missing = client.post(
        "/api/v1/channels",
        json={"platform": "webhook", "name": "x", "credentials": {"url": "http://a.example"}},
        headers=account.headers,
    )
    assert missing.status_code == 422
    problem = missing.json()
    assert problem["detail"].startswith("credentials.secret")
    assert problem["errors"][0]["loc"] == ["body", "credentials", "secret"]


def test_duplicate_name_is_409(client: TestClient, account: Account) -> None:
    assert (
        client.post("/api/v1/channels", json=webhook_channel(), headers=account.headers).status_code
        == 201
    )
    again = client.post("/api/v1/channels", json=webhook_channel(), headers=account.headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_other_workspace_gets_404(client: TestClient, make_account: Any) -> None:
    mine = make_account("me@example.com", workspace="one")
    theirs = make_account("them@example.com", workspace="two")
    channel_id = client.post(
        "/api/v1/channels", json=webhook_channel(), headers=mine.headers
    ).json()["id"]
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "stolen"}} if method == "patch" else {}
        response = getattr(client, method)(
            f"/api/v1/channels/{channel_id}", headers=theirs.headers, **kwargs
        )
        assert response.status_code == 404, method
    assert (
        client.post(f"/api/v1/channels/{channel_id}/test", headers=theirs.headers).status_code
        == 404
    )
    assert client.get("/api/v1/channels", headers=theirs.headers).json() == []


def test_verify_runs_as_a_job(
    client: TestClient, account: Account, tmp_path: Path, redis_broker: str
) -> None:
    folder = {"platform": "folder", "name": "site", "credentials": {"path": str(tmp_path)}}
    channel_id = client.post("/api/v1/channels", json=folder, headers=account.headers).json()["id"]
    started = client.post(f"/api/v1/channels/{channel_id}/test", headers=account.headers)
    assert started.status_code == 202
    job_id = started.json()["job_id"]

    # The message went to the publishing queue after the commit, carrying only the id.
    queued = redis.Redis.from_url(redis_broker).lrange(queue_key("publishing", PRIORITY_NOW), 0, -1)
    assert (
        len(queued) == 1
        and job_id.encode() in queued[0]
        and str(tmp_path).encode() not in queued[0]
    )

    job = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers).json()
    assert job["state"] == "PENDING" and job["ready"] is False
    assert job["params"] == {"channel_id": channel_id, "trigger": "person"}

    verify_channel(job_id)  # the task body, as the worker would run it
    job = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers).json()
    assert job["state"] == "SUCCESS" and job["ready"] is True
    assert job["result"]["ok"] is True


def test_failed_verify_marks_channel_needs_reconnect(
    client: TestClient, account: Account, tmp_path: Path, redis_broker: str
) -> None:
    gone = tmp_path / "missing"
    folder = {"platform": "folder", "name": "site", "credentials": {"path": str(gone)}}
    channel_id = client.post("/api/v1/channels", json=folder, headers=account.headers).json()["id"]
    job_id = client.post(f"/api/v1/channels/{channel_id}/test", headers=account.headers).json()[
        "job_id"
    ]
    verify_channel(job_id)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers).json()
    assert job["state"] == "FAILURE"
    assert "is not a directory" in job["error"]
    channel = client.get(f"/api/v1/channels/{channel_id}", headers=account.headers).json()
    assert channel["state"] == "needs_reconnect"

    # Fixing the credentials makes it active again.
    gone.mkdir()
    fixed = client.patch(
        f"/api/v1/channels/{channel_id}",
        json={"credentials": {"path": str(gone)}},
        headers=account.headers,
    )
    assert fixed.json()["state"] == "active"


def test_platforms_lists_the_registry(client: TestClient) -> None:
    platforms = {p["platform"]: p for p in client.get("/api/v1/platforms").json()}
    assert {"webhook", "folder"} <= set(platforms)
    assert "secret" in platforms["webhook"]["credentials_schema"]["properties"]


def test_matrix_channel_takes_a_room_version_12_room_id(
    client: TestClient, account: Account
) -> None:
    def matrix(room: str) -> dict[str, object]:
        credentials = {"homeserver": "https://matrix.example.org", "access_token": "syt_x"}
        return {
            "platform": "matrix",
            "name": room[:20],
            "credentials": credentials | {"room": room},
        }

    # Synapse 1.163 creates rooms of version 12, whose IDs have no server part.
    created = client.post(
        "/api/v1/channels",
        json=matrix("!AczZ8M2NqGdbm8_HJvJZbkLmQhb5u52S9UdTO6uClFg"),
        headers=account.headers,
    )
    assert created.status_code == 201, created.text

    refused = client.post("/api/v1/channels", json=matrix("!abc"), headers=account.headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["errors"][0]["loc"] == ["body", "credentials", "room"]
    assert "has no server part" in problem["detail"]
