"""Smoke test: the publish-throughput benchmark runs end to end with a tiny N (a real
worker, the suite's Redis, PostgreSQL), prints its table and writes its plot
and numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench import chart_text, run_benchmark

N = 20


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["postgresql"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.publish_throughput",
        ["--n", str(N), "--rounds", "1"],
        database=database,
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "Publish throughput" in out
    assert "raw Celery (no-op task)" in out
    assert "Herald webhook delivery" in out
    assert "Herald / raw = " in out
    assert "worker side only / raw = " in out
    assert "cores usable" in out
    assert "CPU ms per task, by process" in out

    chart = chart_text(results / "publish_throughput.svg")
    assert "Publish throughput: Herald" in chart and f"N={N}, {database}" in chart
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
    # CPU per task by process: this script, the worker's parent and its pool, the receiver.
    for run in modes.values():
        roles = set(run["cpu_ms_per_task"])
        assert {"bench", "worker", "worker pool"} <= roles, roles
        assert run["mode"] == "raw" or "receiver" in roles
