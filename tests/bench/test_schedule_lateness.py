"""Smoke test: the schedule-lateness benchmark runs end to end with tiny numbers (a real
worker and a real `herald beat`, the suite's Redis, SQLite), prints its
table and writes its plot and numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench import chart_text, run_benchmark

SPREAD, SPREAD_SECONDS, BURST, THROUGHPUT = 20, 3, 30, 20


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    options = ["--spread-n", str(SPREAD), "--spread-seconds", str(SPREAD_SECONDS)]
    options += ["--burst", str(BURST), "--throughput-n", str(THROUGHPUT)]
    returncode, out, err = run_benchmark(
        "bench.schedule_lateness", options, database=database, results=results
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "Schedule lateness" in out
    assert "Herald webhook delivery" in out
    assert "deliveries/s" in out
    assert f"{SPREAD} in {SPREAD_SECONDS} s" in out
    assert "first ≤ 1 s, drain ≤ " in out
    assert "Where the lateness goes" in out
    assert "cores usable" in out

    chart = chart_text(results / "schedule_lateness.svg")
    assert "Spread:" in chart and "Bursts:" in chart
    assert (results / f"schedule_lateness-{database}.svg").exists()
    assert (results / f"schedule_lateness-{database}.json").exists()
    data = json.loads((results / "schedule_lateness.json").read_text())
    assert data["database"] == database
    assert data["problems"] == []
    assert data["throughput"]["n"] == THROUGHPUT
    assert data["throughput_per_second"] > 0
    modes = {run["mode"]: run for run in data["modes"]}
    assert set(modes) == {"spread", "burst"}
    spread, burst = modes["spread"], modes["burst"]
    assert (spread["n"], burst["n"]) == (SPREAD, BURST)
    assert {"p50", "p99", "max"} <= set(spread["lateness"])
    assert set(spread["passed"]) == {"p99"}
    assert {"first_lateness_seconds", "drain_seconds", "completions"} <= set(burst)
    assert set(burst["targets"]) == {"first_seconds", "drain_seconds"}
    assert set(burst["passed"]) == {"first", "drain"}
    assert len(burst["completions"]) == BURST
    for run in (spread, burst):
        n = run["n"]
        assert len(run["deliveries"]) == n
        assert all(None not in row for row in run["deliveries"])
        checks = run["checks"]
        assert checks["receiver_distinct_keys"] == checks["receiver_requests"] == n
        assert checks["states"] == {"published": n}
        assert run["resent_by_reconciler"] == 0
        assert set(run["phases"]) == {
            "due_to_picked",
            "picked_to_claimed",
            "claimed_to_received",
        }
