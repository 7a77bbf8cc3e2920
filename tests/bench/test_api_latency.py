"""Smoke test: the API-latency benchmark runs two tiny phases on SQLite (the real API, a
worker, the receiver and the open-loop generator), prints its table (one row per endpoint
and rate), checks every accepted publish was delivered and writes its plot and numbers.
No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.api_latency import BACKGROUND, parse_args, percentile, phase_requests

from tests.bench import chart_text, run_benchmark

RATE, SECONDS = 5, 1
OPTIONS = ["--rates", str(RATE), "--seconds", str(SECONDS), "--posts", "5"]
OPTIONS += ["--background-rate", "2", "--connections", "4"]


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.api_latency",
        OPTIONS,
        database=database,
        # Below the other benchmarks' databases (metrics_scrape's is 15 - 6 * workers).
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    assert f"API latency, open loop ({database}, {SECONDS} s per phase" in out
    rows = [line.split() for line in out.splitlines()]
    measured = {row[0]: row[1:] for row in rows if row[:1] and row[0] in ("publish", "list", "get")}
    assert set(measured) == {"publish", "list", "get"}, out
    for rate, sent, errors, p50, p99, worst, _delivered in measured.values():
        assert (int(rate), int(sent), int(errors)) == (RATE, RATE * SECONDS, 0)
        assert 0 < float(p50) <= float(p99) <= float(worst)
    assert "load" in out and "deliveries:" in out

    chart = chart_text(results / "api_latency.svg")
    assert "API latency: worst p99" not in chart  # no phase at the target rate
    assert "publish" in chart and "p99" in chart
    document = json.loads((results / f"api_latency-{database}.json").read_text())
    assert document["problems"] == []
    assert document["deliveries"]["delivered"] == document["deliveries"]["accepted"] > 0
    assert "loadavg_at_end" in document["machine"]


def test_its_plan_is_open_loop() -> None:
    fresh = [f"fresh-{i}" for i in range(30)]
    requests = phase_requests(0, "get", 10, 2, 2.5, fresh, ["a", "b"], "channel")
    gets = [r for r in requests if r.endpoint == "get"]
    # Due at fixed intervals whatever the answers; background publishes interleaved.
    assert [r.due for r in gets] == [i / 10 for i in range(20)]
    assert [r.path for r in gets[:3]] == ["/api/v1/posts/a", "/api/v1/posts/b", "/api/v1/posts/a"]
    background = [r for r in requests if r.endpoint == BACKGROUND]
    assert len(background) == 5 and len(fresh) == 25
    assert background[0].path == "/api/v1/posts/fresh-29/publish"
    assert [r.due for r in requests] == sorted(r.due for r in requests)


def test_percentile_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50,
        99,
        100,
    )
    assert percentile([7.0], 99) == 7.0
    assert parse_args(["--rates", "200", "50", "200"]).rates == [50, 200]
    with pytest.raises(SystemExit) as exited:
        parse_args(["--rates", "0"])
    assert exited.value.code == 2
    assert "every --rates must be at least 1" in capsys.readouterr().err
