"""Health names the process that holds SQLite's writer lock (issue 16, item 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from herald.app import create_app
from herald.core.clock import set_clock, utcnow
from herald.core.db import get_engine
from herald.core.settings import get_settings
from tests.conftest import Account
from tests.servers import serve
from tests.workers import _env

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)

# A Herald process in the middle of a write transaction: it holds the writer lock until
# it reads a line.
HOLDER = """
import sys
from sqlalchemy import text
from herald.core.db import get_engine
with get_engine().begin() as connection:
    connection.execute(text("SELECT 1"))
    print("holding", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def client(db_backend: str) -> Iterator[httpx.Client]:
    """The app on a real server: a health check that waited on the lock would time out
    here (a failure), where the in-process client would wait with it for good."""

    with serve(create_app()) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
def holder(db_backend: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        env=_env(None),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        proc.stdin.close()  # EOF: it commits and exits
        proc.wait(timeout=10)
        proc.stdout.close()


def test_a_stopped_process_holding_the_writer_lock_is_named_within_2_s(
    client: httpx.Client, account: Account, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGSTOP)
    for path in ("/api/v1/health", "/api/v1/tasks/health"):
        start = time.perf_counter()
        response = client.get(path, headers=account.headers)
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, f"{path} took {elapsed:.1f} s"
        assert response.status_code == 503
        database = response.json()["components"]["database"]
        assert database["status"] == "down"
        assert f"pid {holder.pid}" in database["detail"]
        assert "is stopped" in database["detail"]
        assert "writes are blocked" in database["detail"]
        assert database["info"]["writer_lock"]["pid"] == holder.pid
        assert database["info"]["writer_lock"]["state"] == "stopped"

    # Resumed, it commits and lets go: the database is up again.
    os.kill(holder.pid, signal.SIGCONT)
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=10)
    database = client.get("/api/v1/health").json()["components"]["database"]
    assert database["status"] == "up"
    assert "writer_lock" not in database["info"]


def test_a_lock_held_past_the_write_wait_is_down(
    client: httpx.Client, holder: subprocess.Popen[str]
) -> None:
    # Held by a running process, for less than the write wait: up, with the holder shown.
    database = client.get("/api/v1/health").json()["components"]["database"]
    assert database["status"] == "up"
    assert database["info"]["writer_lock"]["pid"] == holder.pid
    assert database["info"]["writer_lock"]["state"] != "stopped"

    wait = get_settings().database_write_wait_seconds
    later = utcnow() + timedelta(seconds=wait + 3)
    set_clock(lambda: later)
    try:
        response = client.get("/api/v1/health")
    finally:
        set_clock(None)
    assert response.status_code == 503
    database = response.json()["components"]["database"]
    assert database["status"] == "down"
    assert f"pid {holder.pid}" in database["detail"]
    held = database["info"]["writer_lock"]["held_seconds"]
    assert held >= wait + 3
    assert f"held the writer lock for at least {held:.0f} s" in database["detail"]
    assert f"writes give up after {wait:g} s" in database["detail"]


def test_a_lock_that_changed_hands_starts_counting_again(
    client: httpx.Client, db_backend: str
) -> None:
    """A busy database, held at every check by a different transaction, is not stuck."""

    engine = get_engine()
    with engine.begin() as connection:  # this process holds it
        connection.exec_driver_sql("SELECT 1")
        database = client.get("/api/v1/health").json()["components"]["database"]
        assert database["info"]["writer_lock"]["pid"] == os.getpid()
    assert "writer_lock" not in client.get("/api/v1/health").json()["components"]["database"]
    later = utcnow() + timedelta(minutes=5)
    set_clock(lambda: later)
    try:
        with engine.begin() as connection:  # taken again: seen for the first time now
            connection.exec_driver_sql("SELECT 1")
            database = client.get("/api/v1/health").json()["components"]["database"]
    finally:
        set_clock(None)
    assert database["status"] == "up"
    assert database["info"]["writer_lock"]["held_seconds"] == 0
