"""A Redis that stops answering (SIGSTOP: not dead, not answering) does not hang Herald
(issue 16, item 6): health answers 503 within 2 s, publishing still answers 202 (the
delivery is committed, queued) within about one Redis timeout, and once Redis answers
again the reconciler sends it.

A real ``herald api`` process against a real redis-server, on a TCP port (an external
Redis) and on a unix socket (the embedded one), so every Redis client Herald makes in a
request is the one under test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from herald.core.settings import get_settings
from herald.events.service import redis_url
from herald.runtime.embedded_redis import EmbeddedRedis, redis_executable
from herald.worker import queue_keys
from tests.conftest import Account
from tests.workers import _env, wait_for

# The database plays no part: SQLite only.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]

RECONCILE = """
from herald.core.db import session_scope
from herald.publishing.reconcile import reconcile
with session_scope() as session:
    print(reconcile(session))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class StoppableRedis:
    url: str  # the broker URL, as Herald spells it
    pid: int

    def client(self) -> redis.Redis:
        url = redis_url(self.url)
        assert url is not None
        return redis.Redis.from_url(url, socket_timeout=5)


@pytest.fixture(params=["external", "embedded"])
def stoppable_redis(request: pytest.FixtureRequest) -> Iterator[StoppableRedis]:
    data_dir = Path(tempfile.mkdtemp(prefix="hr-"))  # short: a unix socket path
    server = EmbeddedRedis(data_dir)
    external: subprocess.Popen[bytes] | None = None
    if request.param == "embedded":
        server.start()
        assert server.pid is not None
        stoppable = StoppableRedis(server.url, server.pid)
    else:
        port = free_port()
        argv = [redis_executable(), "--port", str(port), "--save", "", "--appendonly", "no"]
        external = subprocess.Popen([*argv, "--dir", str(data_dir)], stdout=subprocess.DEVNULL)
        stoppable = StoppableRedis(f"redis://127.0.0.1:{port}/0", external.pid)
        wait_for(lambda: _answers(stoppable), timeout=10)
    try:
        yield stoppable
    finally:
        os.kill(stoppable.pid, signal.SIGCONT)
        if external is not None:
            external.terminate()
            external.wait(10)
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _answers(server: StoppableRedis) -> bool:
    try:
        with server.client() as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _python(args: list[str], broker_url: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=_env({"HERALD_BROKER_URL": broker_url, **env}),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def api(stoppable_redis: StoppableRedis, db_backend: str) -> Iterator[httpx.Client]:
    """`herald api` on the stoppable Redis, and a client for it."""
    port = free_port()
    proc = _python(["-m", "herald", "api", "--port", str(port)], stoppable_redis.url)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            def serving() -> bool:
                assert proc.poll() is None, "herald api exited"
                try:
                    client.get("/api/v1/health", timeout=5)
                except httpx.TransportError:
                    return False
                return True

            wait_for(serving, timeout=60)
            yield client
    finally:
        _stop(proc)


def timed(call: object, *args: object, **kwargs: object) -> tuple[httpx.Response, float]:
    assert callable(call)
    start = time.perf_counter()
    response = call(*args, **kwargs)
    return response, time.perf_counter() - start


def test_a_stopped_redis_does_not_hang_health_or_publishing(
    api: httpx.Client, account: Account, stoppable_redis: StoppableRedis
) -> None:
    sites = get_settings().data_dir / "sites" / "hung-redis"
    sites.mkdir(parents=True, exist_ok=True)
    headers = account.headers
    channel = api.post(
        "/api/v1/channels",
        json={"platform": "folder", "name": "site", "credentials": {"path": str(sites)}},
        headers=headers,
    )
    assert channel.status_code == 201, channel.text
    posts = [
        api.post("/api/v1/posts", json={"title": title}, headers=headers).json()["id"]
        for title in ("Before", "During")
    ]

    def publish(post_id: str) -> httpx.Response:
        return api.post(
            f"/api/v1/posts/{post_id}/publish",
            json={"channel_ids": [channel.json()["id"]]},
            headers=headers,
        )

    # While Redis answers: the API's broker connection is made and in its pool.
    assert publish(posts[0]).status_code == 202
    api.get("/api/v1/health")

    os.kill(stoppable_redis.pid, signal.SIGSTOP)
    response, elapsed = timed(api.get, "/api/v1/health")
    assert response.status_code == 503
    assert elapsed < 2.0, f"health took {elapsed:.1f} s"
    components = response.json()["components"]
    assert components["broker"]["status"] == "down"
    assert components["database"]["status"] == "up"

    response, elapsed = timed(publish, posts[1])
    assert response.status_code == 202, response.text
    redis_timeout = get_settings().redis_timeout_seconds
    assert elapsed < redis_timeout + 1.5, f"publish took {elapsed:.1f} s"
    (during,) = response.json()["publications"]
    assert during["state"] == "queued"  # committed: the reconciler sends it if need be

    response, elapsed = timed(api.get, "/api/v1/tasks/health", headers=headers)
    assert response.status_code == 503
    assert elapsed < 2.0, f"tasks/health took {elapsed:.1f} s"

    # Redis answers again: the reconciler sends what is still queued (a worker then takes
    # it, as tests/publishing show).
    os.kill(stoppable_redis.pid, signal.SIGCONT)
    reconcile = _python(["-c", RECONCILE], stoppable_redis.url, HERALD_QUEUED_GRACE_SECONDS="0")
    assert reconcile.wait(timeout=60) == 0
    with stoppable_redis.client() as client:
        # Every priority step's list (herald.worker.queue_keys).
        queued = [m for key in queue_keys("publishing") for m in client.lrange(key, 0, -1)]
    assert any(during["task_id"].encode() in message for message in queued)
