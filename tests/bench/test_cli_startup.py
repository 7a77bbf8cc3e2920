"""Smoke test: the CLI start-up benchmark times each command once, starts `herald up`,
reads its idle memory by process, prints both tables and writes both charts and their
JSON. On one backend (see tests/bench/__init__.py). No timing or memory assertions: the
machine is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.cli_startup import COMMANDS, parse_args

from tests.bench import chart_text, run_benchmark


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", ["sqlite"])
def test_the_benchmark_runs_and_reports(tmp_path: Path, database: str) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.cli_startup",
        ["--runs", "1", "--idle", "1"],
        database=database,
        # Unused (`herald up` runs its embedded Redis), but kept apart from the others'.
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    lines = out.splitlines()
    for command in COMMANDS:
        row = next(line for line in lines if line.startswith(command + " "))
        wall, cpu, ratio = (float(value) for value in row[len(command) :].split()[:3])
        assert wall > 0 and cpu > 0 and ratio > 0, row
    roles = {line.split("  ")[0].strip() for line in lines if line.startswith("herald ")}
    assert {"herald up", "herald api", "herald worker --compact"} <= roles, out  # compact
    assert {"herald worker", "herald beat"} <= roles, out  # split
    totals = [line for line in lines if line.startswith("total (")]
    assert len(totals) == 2, out  # one per layout, compact first
    document = json.loads((results / f"up_memory-{database}.json").read_text())
    assert list(document["layouts"]) == ["compact", "split"]
    for total, layout in zip(totals, document["layouts"].values(), strict=True):
        rss, pss = (float(value) for value in total.split()[-2:])
        assert rss >= pss > 0, total
        assert layout["total_rss_mb"] == pytest.approx(rss, abs=0.1)
    # Side by side: each layout's totals again, with the target's verdict.
    side = {
        line.split()[0]: line.split() for line in lines if line.startswith(("compact ", "split "))
    }
    assert set(side) == {"compact", "split"} and side["compact"][-1] in ("ok", "OVER"), out
    compact_roles = {p["role"] for p in document["layouts"]["compact"]["processes"]}
    assert compact_roles >= {"herald up", "herald api", "herald worker --compact"}
    startup = json.loads((results / f"cli_startup-{database}.json").read_text())
    assert [entry["command"] for entry in startup["startup"]] == list(COMMANDS)
    text = chart_text(results / f"cli_startup-{database}.svg")
    assert "herald --help" in text and "herald post list" in text
    memory_chart = chart_text(results / f"up_memory-{database}.svg")
    assert (
        "compact: herald worker --compact" in memory_chart and "split: herald beat" in memory_chart
    )


def test_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--runs", "3", "--skip-up"]).skip_up
    for argv, message in [
        (["--runs", "0"], "--runs must be at least 1"),
        (["--idle", "-1"], "--idle must not be negative"),
        (["--pool", "threads"], "unrecognized arguments: --pool threads"),
    ]:
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
