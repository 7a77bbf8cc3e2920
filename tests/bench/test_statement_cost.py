"""Smoke test: the statement-cost benchmark runs with a few calls on PostgreSQL, prints
its table (every statement, the three ways, one delivery's sum) and writes its plot. No
timing assertions: the machine is shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.statement_cost import PER_DELIVERY, WAYS, parse_args

from tests.bench import run_benchmark

CALLS, BLOCK = 10, 5
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["postgresql"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.statement_cost",
        ["--calls", str(CALLS), "--block", str(BLOCK)],
        database=database,
        # Below publish_throughput's, schedule_lateness's and delivery_cost's databases.
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    lines = out.splitlines()
    heading = next(line for line in lines if line.startswith("statement "))
    for column in [*(f"{way} µs" for way in WAYS), "public/direct"]:
        assert column in heading, heading
    # One row per statement, then one delivery's sum: three positive µs and a ratio each.
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1]}
    for name in PER_DELIVERY:
        assert name in rows, f"no row for {name}:\n{out}"
        assert len(rows[name]) == len(WAYS) + 1, rows[name]
        assert all(float(value) > 0 for value in rows[name]), rows[name]
    total = next(line for line in lines if line.startswith("one delivery ("))
    assert f"one delivery ({sum(PER_DELIVERY.values())})" in total
    assert all(float(value) > 0 for value in total.split()[-len(WAYS) - 1 :]), total
    assert "the public API costs " in out
    assert f"{database}; " in out

    plot = results / f"statement_cost-{database}.png"
    assert f"wrote {plot}" in out
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    assert plot.stat().st_size > 10_000  # bars, labels and a legend, not an empty figure


def test_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    # It runs the statements itself: a pool option would be silently ignored.

    assert parse_args(["--calls", "10", "--block", "5"]).calls == 10
    for argv, message in [
        (["--concurrency", "4"], "unrecognized arguments: --concurrency 4"),
        (["--calls", "5", "--block", "10"], "--block must be at least 1 and at most --calls"),
    ]:
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
