"""Smoke test: the many-machines benchmark runs end to end with a tiny N (two worker hosts
in network namespaces, PostgreSQL, its own Redis), prints its table and writes its plot
and numbers. No timing assertions: the machine is shared."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bench.many_machines import parse_args

from tests.bench import REPO, chart_text
from tests.deploy.machines import namespaces_unavailable
from tests.services import PG_ADMIN_URL, postgres_available, service_missing

N = 20


def test_n_must_be_a_multiple_of_the_channels(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--n", "12"])
    assert "multiple of 5" in capsys.readouterr().err
    assert parse_args(["--n", "10"]).n == 10


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("faults")  # as the many-machines test (tests/deploy)
def test_the_benchmark_runs_and_reports(tmp_path: Path) -> None:
    if reason := namespaces_unavailable():
        service_missing("Network namespaces", reason)
    if reason := postgres_available():
        service_missing("PostgreSQL", reason)
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.many_machines", "--n", str(N), "--hold", "0.05"]
    argv += ["--pg-admin-url", PG_ADMIN_URL, "--results-dir", str(results), "--timeout", "240"]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the benchmark removes what it made
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"the benchmark did not finish:\n{out}\n{err}")

    assert proc.returncode == 0, f"{out}\n{err}"
    assert "Many machines: 20 deliveries" in out
    assert "2 hosts / 1 host = " in out
    assert "ceiling per host" in out
    chart = chart_text(results / "many_machines.svg")
    assert "Many machines: 2 worker hosts" in chart and f"N={N} per run" in chart
    assert (results / "many_machines-postgresql.svg").exists()
    data = json.loads((results / "many_machines.json").read_text())
    assert data["problems"] == []
    runs = {run["hosts"]: run for run in data["runs"]}
    assert set(runs) == {1, 2}
    assert all(run["n"] == N and len(run["completions"]) == N for run in runs.values())
    # One sender with one host; two senders (the hosts' own addresses) with two.
    assert len(runs[1]["by_host"]) == 1 and len(runs[2]["by_host"]) == 2
