"""Smoke test: the publish-throughput benchmark runs end to end with a tiny N (a real
worker, the suite's Redis, SQLite and PostgreSQL), prints its table and writes its plot
and numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
N = 20


def _broker_url() -> str:
    """A Redis database of the benchmark's own, counted down from 15: the suite's databases
    (1, 2, ... per xdist worker) are shared by every pytest run on the machine, and a worker
    another run starts there would take this benchmark's messages."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"{REDIS_URL}/{15 - index}"


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    broker = _broker_url()
    if reason := redis_available(broker):
        service_missing("Redis", reason)
    if database == "postgresql" and (reason := postgres_available()):
        service_missing("PostgreSQL", reason)
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.publish_throughput", "--n", str(N), "--rounds", "1"]
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

    assert proc.returncode == 0, f"{out}\n{err}"
    assert "Publish throughput" in out
    assert "raw Celery (no-op task)" in out
    assert "Herald webhook delivery" in out
    assert "Herald / raw = " in out
    assert "worker side only / raw = " in out
    assert "cores usable" in out

    svg = (results / "publish_throughput.svg").read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert (results / f"publish_throughput-{database}.svg").exists()
    data = json.loads((results / "publish_throughput.json").read_text())
    assert data["database"] == database
    assert data["problems"] == []
    modes = {run["mode"]: run for run in data["runs"]}
    assert set(modes) == {"raw", "herald", "herald_deliveries"}
    assert all(run["n"] == N and len(run["completions"]) == N for run in modes.values())
    for mode in ("herald", "herald_deliveries"):
        checks = modes[mode]["checks"]
        assert checks["receiver_distinct_keys"] == checks["receiver_requests"] == N
        assert checks["states"] == {"published": N}
