"""Smoke test: the machinery-cost benchmark runs every variant with a tiny N on
SQLite, checks its deliveries and prints its table. No timing assertions: the machine is
shared."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.machinery_cost import VARIANTS, parse_args

from tests.bench import run_benchmark

N, ROUNDS, WARM = 4, 2, 1
COLUMNS = ["CPU ms", "ratio", "wall ms", "event CPU", "event wall", "full GCs", "their CPU"]


@pytest.mark.integration
@pytest.mark.timeout(240)
# One backend, as every smoke test here (why: tests/bench/__init__.py).
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.machinery_cost",
        ["--n", str(N), "--rounds", str(ROUNDS), "--warm", str(WARM)],
        database=database,
        # Below every other smoke test's databases (statement_cost's are just above).
        results=results,
    )

    # Every delivery published and seen once by the receiver, or exit 1 with PROBLEM lines.
    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    assert f"CPU per delivery (request + delivery), median of {ROUNDS} rounds, N={N}" in out
    lines = out.splitlines()
    heading = next(line for line in lines if line.startswith("variant "))
    for column in COLUMNS:
        assert column in heading, heading
    for name in VARIANTS:
        row = next((line for line in lines if line.startswith(f"{name}  ")), None)
        assert row is not None, f"no row for {name}:\n{out}"
        values = row[len(name) :].split()
        assert len(values) == len(COLUMNS), row
        assert float(values[0]) > 0 and float(values[1]) > 0, row
        if name == "baseline":
            assert values[1] == "1.000", row  # its own ratio
        rounds = next(line for line in lines if line.startswith(f"  {name}: rounds ["))
        assert rounds.count(",") == ROUNDS - 1, rounds
    for parent in ("not frozen", "frozen"):
        assert f"a forked child's full collection, parent {parent}: " in out
    assert f"{database}; " in out


def test_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    # It runs the task bodies itself, serially: a pool option would be silently ignored.

    assert parse_args(["--variants", "baseline, public SQL"]).variants == [
        "baseline",
        "public SQL",
    ]
    for argv in (["--variants", "public SQL"], ["--variants", "baseline,nope"]):
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)
        assert exited.value.code == 2
        assert "--variants: need baseline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--concurrency", "4"])
    assert "unrecognized arguments: --concurrency 4" in capsys.readouterr().err
