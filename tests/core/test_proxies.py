"""X-Forwarded-For is believed only from HERALD_TRUSTED_PROXIES, checked through a real
`herald api` (uvicorn and its proxy-headers middleware, as Herald runs them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from herald.core.proxies import uvicorn_proxy_options
from herald.core.settings import ConfigurationError, Settings, get_settings

pytestmark = pytest.mark.integration
PER_ADDRESS = 4
# Which address a request comes from does not depend on the database: one backend is enough.
one_backend = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)


@contextmanager
def herald_api(extra_env: dict[str, str]) -> Iterator[httpx.Client]:
    """`herald api` in its own process, on the suite's database; a client for it."""

    settings = get_settings()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HERALD_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS")
    }
    env |= {
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.effective_database_url,
        "HERALD_LOG_LEVEL": "WARNING",
        # A low per-address limit keeps the test short: every failed sign-in verifies a
        # password hash (Argon2), on purpose slow.
        "HERALD_LOGIN_MAX_FAILURES_PER_IP": str(PER_ADDRESS),
        **extra_env,
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "herald", "api", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 60
                while True:
                    if proc.poll() is not None:
                        log.seek(0)
                        pytest.fail(f"herald api exited: {log.read().decode()}")
                    try:
                        if client.get("/openapi.json").status_code == 200:
                            break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "herald api did not start"
                        time.sleep(0.1)  # polling until the server listens
                yield client
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def failed_logins(client: httpx.Client, forwarded_for: list[str]) -> list[int]:
    """One wrong sign-in per address (each for a different account, so the per-account
    limit never counts); the answers' statuses."""
    return [
        client.post(
            "/api/v1/auth/login",
            json={"email": f"nobody{i}@example.com", "password": "wrong"},
            headers={"X-Forwarded-For": address},
        ).status_code
        for i, address in enumerate(forwarded_for)
    ]


@one_backend
def test_forwarded_for_from_an_untrusted_peer_is_ignored(db_backend: str) -> None:
    # The audit: 25 failed sign-ins, each claiming another address, never hit the
    # per-address limit because uvicorn believed X-Forwarded-For from 127.0.0.1.
    with herald_api({}) as client:
        statuses = failed_logins(client, [f"203.0.113.{i}" for i in range(PER_ADDRESS + 2)])
    # The peer's own address reached the limit.
    assert statuses == [401] * (PER_ADDRESS - 1) + [429] * 3


@one_backend
def test_forwarded_for_from_a_trusted_proxy_names_the_client(db_backend: str) -> None:
    with herald_api({"HERALD_TRUSTED_PROXIES": "10.9.9.9,127.0.0.0/8"}) as client:
        # Each forwarded client is counted on its own: no limit reached.
        addresses = [f"203.0.113.{i}" for i in range(PER_ADDRESS + 2)]
        assert failed_logins(client, addresses) == [401] * (PER_ADDRESS + 2)
        # One forwarded client, behind two trusted hops: its own limit.
        statuses = failed_logins(client, ["198.51.100.7, 10.9.9.9"] * PER_ADDRESS)
    assert statuses == [401] * (PER_ADDRESS - 1) + [429]


def test_proxy_options() -> None:
    assert uvicorn_proxy_options(Settings()) == {"proxy_headers": False}
    trusted = Settings(trusted_proxies="10.0.0.0/8, ::1")
    assert uvicorn_proxy_options(trusted) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8", "::1"],
    }
    for wrong in ("10.0.0.1/8", "proxy.internal", "*"):
        with pytest.raises(ConfigurationError, match="HERALD_TRUSTED_PROXIES"):
            uvicorn_proxy_options(Settings(trusted_proxies=wrong))
