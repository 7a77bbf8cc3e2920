"""Running a benchmark script from a smoke test.

A smoke test proves that its benchmark runs and reports, on one backend: what the numbers
depend on (Herald's statements and transactions) is tested on both in the rest of the
suite. The benchmarks share one set-up (``bench.publish_throughput``'s), whose PostgreSQL
branch the publish-throughput and statement-cost smoke tests take; the others take
SQLite's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.services import (
    PG_ADMIN_URL,
    REDIS_URL,
    postgres_available,
    redis_available,
    service_missing,
)

REPO = Path(__file__).resolve().parents[2]


def broker_url(top: int) -> str:
    """A Redis database of a benchmark's own: ``top`` minus this xdist worker's index. The
    suite's databases (1, 2, ... per xdist worker) are shared by every pytest run on the
    machine, and a worker another run starts there would take the benchmark's messages;
    each smoke test counts down from its own ``top``, so none of one run share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"{REDIS_URL}/{top - index}"


def xdist_workers() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def run_benchmark(
    module: str, options: list[str], *, database: str, broker: str, results: Path
) -> tuple[int, str, str]:
    """``python -m <module> <options>`` on ``database`` and ``broker``, writing to
    ``results``, with the suite's services (missing ones skip locally, fail in CI).
    Returns the exit code, stdout and stderr; fails the test if it does not finish."""
    if reason := redis_available(broker):
        service_missing("Redis", reason)
    if database == "postgresql" and (reason := postgres_available()):
        service_missing("PostgreSQL", reason)
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
