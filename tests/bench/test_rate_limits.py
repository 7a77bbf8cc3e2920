"""Smoke test: the rate-limits benchmark runs end to end with a tiny N on two platforms
(a real worker and scheduler, the suite's Redis, the fakes enforcing their limits),
prints its table and writes its plot and numbers. No timing assertions: the machine is
shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench import chart_text, run_benchmark

N = 30


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.rate_limits",
        ["--n", str(N), "--platforms", "x,discord", "--target-seconds", "3"],
        database=database,
        results=results,
    )

    # Exit 1 is a missed target on a busy machine: the report is what is checked here.
    assert returncode in (0, 1), f"{out}\n{err}"
    assert "Rate limits" in out
    assert "limit allows (s)" in out and "429s" in out
    chart = chart_text(results / "rate_limits.svg")
    assert "Rate limits: x" in chart and "Rate limits: discord" in chart
    data = json.loads((results / "rate_limits.json").read_text())
    assert data["database"] == database
    found = {r["platform"]: r for r in data["results"]}
    assert set(found) == {"x", "discord"}
    for result in found.values():
        assert result["states"] == {"published": N}
        assert len(result["completions"]) == N
        assert result["scale"] >= 1
        # Every post the fake stored was judged within its limits, after the commit.
        went = [at for at, over in result["judged"] if over is None]
        assert len(went) == N and min(went) > 0
        assert result["queued_seconds"] >= 0
    # 30 posts fit X's bucket (90 of 100); Discord's 5 per 2 s binds.
    assert found["x"]["ideal_seconds"] == 0 and found["x"]["ratio"] is None
    assert found["discord"]["ideal_seconds"] > 0 and found["discord"]["binding"] == "route"
