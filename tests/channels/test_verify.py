"""Testing a channel (``POST /channels/{id}/test``): a short read, the platform called with
no database transaction open, a short write of the outcome. The API keeps answering
while the platform is slow, and refused credentials leave the channel needing a
reconnection, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.channels.store import DatabaseStore
from herald.channels.tasks import verify_channel
from tests.channels.conftest import PlatformCalls
from tests.conftest import Account
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.matrix import FakeMatrix
from tests.fakes.x import FakeX

# A write that waits for the channel test's transaction would wait for it to end (30 s
# and "database is locked" before the fix); one that does not takes milliseconds.
QUICK_WRITE_SECONDS = 5.0


@pytest.fixture
def bluesky() -> Iterator[FakeBluesky]:
    with FakeBluesky() as fake:
        yield fake


@pytest.fixture
def matrix() -> Iterator[FakeMatrix]:
    with FakeMatrix() as fake:
        yield fake


def create_channel(
    client: TestClient, account: Account, platform: str, credentials: dict[str, Any]
) -> str:
    response = client.post(
        "/api/v1/channels",
        json={"platform": platform, "name": platform, "credentials": credentials},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def start_test(client: TestClient, account: Account, channel_id: str) -> str:
    response = client.post(f"/api/v1/channels/{channel_id}/test", headers=account.headers)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def job(client: TestClient, account: Account, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def channel(client: TestClient, account: Account, channel_id: str) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/channels/{channel_id}", headers=account.headers).json())


def run_test_with_a_write_meanwhile(
    client: TestClient, account: Account, job_id: str, calls: PlatformCalls
) -> float:
    """Run the channel test's task body in a worker thread; while its first platform
    request is in flight, make an API write. Returns how long that write took."""

    in_flight, written = threading.Event(), threading.Event()

    def hold_the_platform() -> None:
        in_flight.set()
        written.wait(QUICK_WRITE_SECONDS * 2)  # the platform answers once the write is done

    calls.during_first = hold_the_platform
    worker = threading.Thread(target=verify_channel, args=(job_id,))
    worker.start()
    try:
        while not in_flight.wait(0.02):
            assert worker.is_alive(), f"no platform call: {job(client, account, job_id)}"
        started = time.monotonic()
        response = client.post(
            "/api/v1/posts", json={"title": "written meanwhile"}, headers=account.headers
        )
        took = time.monotonic() - started
        assert response.status_code == 201, response.text
    finally:
        written.set()
        worker.join(60)
    assert not worker.is_alive()
    return took


def test_bluesky_test_calls_the_platform_outside_any_transaction(
    client: TestClient,
    account: Account,
    bluesky: FakeBluesky,
    platform_calls: PlatformCalls,
    redis_broker: str,
) -> None:
    channel_id = create_channel(client, account, "bluesky", bluesky.credentials())
    job_id = start_test(client, account, channel_id)

    took = run_test_with_a_write_meanwhile(client, account, job_id, platform_calls)

    done = job(client, account, job_id)
    assert done["state"] == "SUCCESS", done
    assert done["result"]["identity"] == f"@{bluesky.handle}"
    assert platform_calls.paths() == [
        "/xrpc/com.atproto.server.createSession",
        "/xrpc/com.atproto.server.getSession",
    ]
    assert platform_calls.inside_transaction() == []
    assert took < QUICK_WRITE_SECONDS, f"an API write waited {took:.1f} s for the channel test"

    # The login was kept (written with the outcome): the next test logs in no more.
    assert (DatabaseStore(uuid.UUID(channel_id)).session() or {}).get("did") == bluesky.did
    again = start_test(client, account, channel_id)

    verify_channel(again)
    assert job(client, account, again)["state"] == "SUCCESS"
    assert bluesky.logins == 1


def test_matrix_by_alias_test_calls_the_platform_outside_any_transaction(
    client: TestClient,
    account: Account,
    matrix: FakeMatrix,
    platform_calls: PlatformCalls,
    redis_broker: str,
) -> None:
    credentials = {
        "homeserver": matrix.base_url,
        "access_token": matrix.access_token,
        "room": matrix.alias,
    }
    channel_id = create_channel(client, account, "matrix", credentials)
    job_id = start_test(client, account, channel_id)

    took = run_test_with_a_write_meanwhile(client, account, job_id, platform_calls)

    done = job(client, account, job_id)
    assert done["state"] == "SUCCESS", done
    assert done["result"]["identity"] == matrix.user_id
    assert "/_matrix/client/v3/directory/room/#news:fake.example" in platform_calls.paths()
    assert platform_calls.inside_transaction() == []
    assert took < QUICK_WRITE_SECONDS, f"an API write waited {took:.1f} s for the channel test"
    # The alias's room, resolved by the test, is kept for the deliveries.
    assert DatabaseStore(uuid.UUID(channel_id)).session() == {
        "alias": matrix.alias,
        "room_id": matrix.room_id,
    }


def test_wrong_bluesky_password_marks_the_channel_needs_reconnect(
    client: TestClient,
    account: Account,
    bluesky: FakeBluesky,
    platform_calls: PlatformCalls,
    redis_broker: str,
) -> None:
    wrong = bluesky.credentials() | {"app_password": "wxyz-2345-wxyz-2345"}
    channel_id = create_channel(client, account, "bluesky", wrong)
    job_id = start_test(client, account, channel_id)

    verify_channel(job_id)

    done = job(client, account, job_id)
    assert done["state"] == "FAILURE"
    assert "createSession answered 401" in done["error"]
    assert "Invalid identifier or password" in done["error"]
    after = channel(client, account, channel_id)
    assert after["state"] == "needs_reconnect"
    assert "Invalid identifier or password" in after["state_reason"]
    assert platform_calls.inside_transaction() == []


def test_matrix_test_refused_token_marks_the_channel_needs_reconnect(
    client: TestClient,
    account: Account,
    matrix: FakeMatrix,
    platform_calls: PlatformCalls,
    redis_broker: str,
) -> None:
    credentials = {
        "homeserver": matrix.base_url,
        "access_token": "syt_revoked",
        "room": matrix.alias,
    }
    channel_id = create_channel(client, account, "matrix", credentials)
    job_id = start_test(client, account, channel_id)

    verify_channel(job_id)

    done = job(client, account, job_id)
    assert done["state"] == "FAILURE"
    assert "M_UNKNOWN_TOKEN" in done["error"]
    assert channel(client, account, channel_id)["state"] == "needs_reconnect"
    assert platform_calls.inside_transaction() == []


def test_a_test_that_refreshes_expired_credentials_keeps_them(
    client: TestClient, account: Account, platform_calls: PlatformCalls, redis_broker: str
) -> None:
    # Tokens that outlive the next check: no refresh ahead of expiry (test_health's part).
    with FakeX(token_lifetime=3 * 86400) as x:
        channel_id = create_channel(client, account, "x", x.credentials())
        x.expire_access_tokens()  # the test's first call is refused; X's adapter refreshes
        job_id = start_test(client, account, channel_id)

        verify_channel(job_id)

        done = job(client, account, job_id)
        assert done["state"] == "SUCCESS", done
        assert x.refreshes == 1
        assert platform_calls.inside_transaction() == []
        # The refreshed pair was stored: a second test needs no refresh.
        again = start_test(client, account, channel_id)
        verify_channel(again)
        assert job(client, account, again)["state"] == "SUCCESS"
        assert x.refreshes == 1
