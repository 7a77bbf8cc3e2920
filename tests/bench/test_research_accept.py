"""Smoke test: the research-accept benchmark runs a few requests, prints its table (each
request, the median and p90) and writes its plot and JSON. On one backend (see
tests/bench/__init__.py). No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.research_accept import parse_args, percentile

from tests.bench import run_benchmark

REQUESTS = 4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.research_accept",
        ["--requests", str(REQUESTS), "--warmup", "1"],
        database=database,
        # Below the other benchmarks' databases (statement_cost's is 15 - 3 * workers).
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    rows = [line.split() for line in out.splitlines() if line.split()[:1]]
    measured = [row for row in rows if row[0].isdigit()]
    assert [int(row[0]) for row in measured] == list(range(1, REQUESTS + 1))
    assert all(float(row[1]) > 0 for row in measured)
    median = next(row for row in rows if row[0] == "median")
    p90 = next(row for row in rows if row[0] == "p90")
    assert 0 < float(median[1]) <= float(p90[1])
    assert "the 100 ms target" in out and f"{database}; " in out

    plot = results / f"research_accept-{database}.png"
    assert f"wrote {plot}" in out
    assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 10_000
    document = json.loads((results / f"research_accept-{database}.json").read_text())
    assert len(document["timings_ms"]) == REQUESTS
    assert document["summary"]["median_ms"] == pytest.approx(float(median[1]), abs=0.05)


def test_its_options_and_percentile(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--requests", "5"]).requests == 5
    with pytest.raises(SystemExit) as exited:
        parse_args(["--requests", "1"])
    assert exited.value.code == 2
    assert "--requests must be at least 2" in capsys.readouterr().err
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.9) == 5.0
    assert percentile(list(map(float, range(1, 21))), 0.9) == 18.0
