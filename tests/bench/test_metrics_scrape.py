"""Smoke test: the metrics-scrape benchmark runs with two small sizes on SQLite, prints
its table (one row per size), checks every scrape's delivery count and writes its plot and
numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.metrics_scrape import parse_args

from tests.bench import chart_text, run_benchmark

SIZES, SCRAPES = (50, 120), 2


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.metrics_scrape",
        ["--publications", *map(str, SIZES), "--scrapes", str(SCRAPES)],
        database=database,
        # Below the other benchmarks' databases (research_accept's is 15 - 5 * workers).
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    assert f"Metrics scrape cost ({database}, {SCRAPES} scrapes per size)" in out
    rows = [line.split() for line in out.splitlines()]
    measured = {row[0]: row[1:] for row in rows if row[:1] and row[0].isdigit()}
    assert set(measured) == {str(n) for n in SIZES}, out
    for values in measured.values():
        families, samples, median, worst = int(values[0]), int(values[1]), *map(float, values[2:])
        assert families > 0 and samples >= families
        assert 0 < median <= worst

    chart = chart_text(results / "metrics_scrape.svg")
    assert "One /metrics scrape:" in chart and f"{SIZES[-1]} deliveries, median" in chart
    assert (results / f"metrics_scrape-{database}.svg").exists()
    document = json.loads((results / f"metrics_scrape-{database}.json").read_text())
    assert document["problems"] == []
    assert [size["publications"] for size in document["sizes"]] == list(SIZES)
    assert all(len(size["scrapes_ms"]) == SCRAPES for size in document["sizes"])


def test_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--publications", "300", "20", "300"]).publications == [20, 300]
    with pytest.raises(SystemExit) as exited:
        parse_args(["--publications", "0"])
    assert exited.value.code == 2
    assert "every --publications must be at least 1" in capsys.readouterr().err
