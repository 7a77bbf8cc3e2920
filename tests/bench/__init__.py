"""Running a benchmark script from a smoke test.

A smoke test proves that its benchmark runs and reports, on one backend: what the numbers
depend on (Herald's statements and transactions) is tested on both in the rest of the
suite. The benchmarks share one set-up (``bench.publish_throughput``'s), whose PostgreSQL
branch the publish-throughput and statement-cost smoke tests take; the others take
SQLite's."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import (
    PG_ADMIN_URL,
    postgres_available,
    redis_available,
    service_missing,
)

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A Redis server of one benchmark run's own: a free port on loopback, nothing kept on
    disk. Every smoke test starts a real worker, scheduler or both on its broker; on the
    suite's shared Redis, numbered databases ran out (two xdist workers, a dozen smoke
    tests) and two runs that met in one database took each other's messages."""
    server = shutil.which("redis-server")
    if server is None:
        service_missing("Redis", "redis-server is not on PATH")
    assert server is not None
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="herald-bench-redis-") as directory:
        argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", directory]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 15
            while (reason := redis_available(url)) is not None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    service_missing("Redis", f"a private redis-server did not start: {reason}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def run_benchmark(
    module: str, options: list[str], *, database: str, results: Path
) -> tuple[int, str, str]:
    """``python -m <module> <options>`` on ``database`` and a private Redis
    (:func:`private_redis`), writing to ``results``, with the suite's services (missing
    ones skip locally, fail in CI). Returns the exit code, stdout and stderr; fails the
    test if it does not finish."""
    if database == "postgresql" and (reason := postgres_available()):
        service_missing("PostgreSQL", reason)
    with private_redis() as broker:
        argv = [sys.executable, "-m", module, *options]
        argv += ["--database", database, "--broker-url", broker, "--pg-admin-url", PG_ADMIN_URL]
        argv += ["--results-dir", str(results), "--timeout", "180"]
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            out, err = proc.communicate(timeout=210)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the benchmark stops what it started
            out, err = proc.communicate(timeout=30)
            pytest.fail(f"the benchmark did not finish:\n{out}\n{err}")
    return proc.returncode, out, err


def chart_text(path: Path) -> str:
    """The text drawn on a benchmark's SVG chart (titles, labels, values), one string;
    fails unless the file is a whole SVG document."""
    root = ET.parse(path).getroot()  # noqa: S314 (the benchmark just wrote it)
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    return " ".join(text.strip() for text in root.itertext() if text.strip())
