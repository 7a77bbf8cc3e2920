"""Smoke test: the delivery-cost benchmark runs with a tiny N on SQLite, prints its part
table and writes its plot and numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.delivery_cost import parse_args

from tests.bench import chart_text, run_benchmark

N = 15


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.delivery_cost",
        ["--n", str(N), "--warm", "3"],
        database=database,
        # Below publish_throughput's and schedule_lateness's databases.
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "CPU per webhook delivery, part by part" in out
    assert "claim (queued → publishing)" in out
    assert "CPU ms per delivery" in out

    chart = chart_text(results / "delivery_cost.svg")
    assert "Herald's CPU per webhook delivery" in chart and f"N={N}, {database}" in chart
    assert (results / f"delivery_cost-{database}.json").exists()
    data = json.loads((results / "delivery_cost.json").read_text())
    assert data["database"] == database and data["n"] == N
    assert data["problems"] == []
    parts = {(row["side"], row["part"]): row for row in data["parts"]}
    # Every part that runs once per delivery was seen once per delivery.
    for key in [
        ("request", "create_publications"),
        ("request", "broker send (Celery apply_async)"),
        ("delivery", "claim (queued → publishing)"),
        ("delivery", "read the post and channel"),
        ("delivery", "build the adapter (after the claim)"),
        ("delivery", "render + HTTP POST to the receiver"),
        ("delivery", "record the outcome"),
    ]:
        assert parts[key]["calls_per_delivery"] == 1, key
    # The request's event and the claim's and the outcome's.
    assert parts["request", "live event to Redis (after commit)"]["calls_per_delivery"] == 1
    assert parts["delivery", "live event to Redis (after commit)"]["calls_per_delivery"] == 2
    # The request's transaction, then the claim's and the outcome's.
    assert parts["request", "COMMIT"]["calls_per_delivery"] == 1
    assert parts["delivery", "COMMIT"]["calls_per_delivery"] == 2
    totals = data["cpu_ms_per_delivery"]
    assert totals["total"] == pytest.approx(totals["request"] + totals["delivery"], rel=1e-3)
    assert 0 < totals["herald_own"] < totals["total"]


def test_it_offers_no_worker_options(capsys: pytest.CaptureFixture[str]) -> None:
    # It runs the task bodies itself, serially: a pool option would be silently ignored.

    assert parse_args(["--n", "5"]).n == 5
    with pytest.raises(SystemExit) as exited:
        parse_args(["--concurrency", "4"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --concurrency 4" in capsys.readouterr().err
