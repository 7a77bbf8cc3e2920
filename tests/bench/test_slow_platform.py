"""Smoke test: the slow-platform benchmark runs end to end with a tiny N and one latency
(a real worker on Herald's default pools, the suite's Redis), in both of its modes, prints
its table and writes its plot and numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench import chart_text, run_benchmark

N = 20


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.slow_platform",
        ["--n", str(N), "--latencies", "0.2"],
        database=database,
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "Slow platform" in out
    assert "CPU-bound" in out
    assert "cores usable" in out

    chart = chart_text(results / "slow_platform.svg")
    assert "Slow platform: deliveries/s against the ideal" in chart
    assert (results / f"slow_platform-{database}.svg").exists()
    data = json.loads((results / "slow_platform.json").read_text())
    assert data["problems"] == []
    assert data["worker"]["pool"] == "thread" and data["worker"]["concurrency"] == 32
    levels = {level["latency_s"]: level for level in data["levels"]}
    assert set(levels) == {0.0, 0.2}
    assert all(level["n"] == N for level in levels.values())
    # Both transactions of every attempt were timed, in the worker.
    assert levels[0.2]["transactions"]["claim"]["n"] == N
    assert levels[0.2]["transactions"]["settle"]["n"] == N


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_the_priority_mode_runs_and_reports(tmp_path: Path) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.slow_platform",
        ["--priority", "--backlog", "30", "--priority-latency", "0.05"],
        database="sqlite",
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "priority (on): one 'now' delivery published after 30 scheduled ones" in out
    data = json.loads((results / "slow_platform_priority.json").read_text())
    assert data["priority"]["backlog"] == 30
    assert data["priority"]["priorities"] is True
    assert "Priority: a 'now' delivery behind 30 scheduled ones" in chart_text(
        results / "slow_platform_priority.svg"
    )
