"""HERALD_METRICS_PORT: a real `herald api` serves /metrics on that port only (the public
port answers 404), with the token still required there when set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from herald.core.settings import get_settings

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(proc: subprocess.Popen[bytes], client: httpx.Client, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "herald api exited"
        try:
            client.get(path)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "herald api did not start"
            time.sleep(0.1)  # polling until the server listens


# Which port answers does not depend on the database: one backend is enough.
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_metrics_are_served_on_their_own_port_only(db_backend: str, redis_broker: str) -> None:
    settings = get_settings()
    port, metrics_port = free_port(), free_port()
    env = os.environ | {
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.effective_database_url,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_METRICS_PORT": str(metrics_port),
        "HERALD_METRICS_TOKEN": "scrape-me",
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "herald", "api", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as public,
                httpx.Client(base_url=f"http://127.0.0.1:{metrics_port}", timeout=10) as private,
            ):
                wait_until_up(proc, public, "/openapi.json")
                wait_until_up(proc, private, "/metrics")
                assert public.get("/metrics").status_code == 404
                assert private.get("/metrics").status_code == 401
                answer = private.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
                assert answer.status_code == 200
                assert "herald_deliveries" in answer.text and "herald_queue_depth" in answer.text
        finally:
            proc.terminate()
            proc.wait(timeout=10)
