"""Smoke test: the source-monitoring benchmark runs end to end with tiny numbers (a real
worker, the suite's Redis, SQLite only to keep CI time down), prints its table and writes
its plot and numbers, and the numbers agree with each other. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.sources import ITEMS, feed_document

from tests.bench import chart_text, run_benchmark

N = 20
MODES = ["baseline", "half changed", "all unchanged", "all changed"]


def test_a_changed_feed_has_one_new_item_on_top_and_keeps_its_size() -> None:
    before, after = feed_document(3, ITEMS), feed_document(3, ITEMS + 1)
    assert before.count(b"<item>") == after.count(b"<item>") == ITEMS
    assert b"feed3-post21" in after and b"feed3-post21" not in before
    assert b"feed3-post1<" in before and b"feed3-post1<" not in after
    assert after.index(b"feed3-post21") < after.index(b"feed3-post20")
    assert abs(len(after) - len(before)) < 10


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_the_benchmark_runs_and_its_numbers_agree(tmp_path: Path) -> None:
    results = tmp_path / "results"
    returncode, out, err = run_benchmark(
        "bench.sources",
        ["--n", str(N), "--rounds", "1", "--pass-every", "0"],
        database="sqlite",
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert f"Source monitoring, one round: sqlite, N={N}" in out
    assert "worker CPU per source" in out
    assert "next checks (after the last round)" in out
    assert "cores usable" in out
    for mode in MODES:
        assert mode in out

    chart = chart_text(results / "sources.svg")
    assert "Source monitoring" in chart and "Next checks over the next interval" in chart
    assert (results / "sources-sqlite.svg").exists()
    data = json.loads((results / "sources-sqlite.json").read_text())
    assert data == json.loads((results / "sources.json").read_text())
    assert data["problems"] == []
    runs = {run["mode"]: run for run in data["runs"]}
    sizes = [len(feed_document(f, top)) for f in range(N) for top in range(ITEMS, ITEMS + 3)]
    smallest, largest = min(sizes), max(sizes)
    assert list(runs) == MODES
    changed = {"baseline": 0, "half changed": N // 2, "all unchanged": 0, "all changed": N}
    for mode, run in runs.items():
        first = mode == "baseline"
        unchanged = N - changed[mode]
        assert (run["n"], run["changed"], run["unchanged"]) == (N, changed[mode], unchanged)
        assert run["requests"] == N
        assert run["conditional"] == (0 if first else N)
        assert run["not_modified"] == (0 if first else unchanged)
        assert run["items_stored"] == (ITEMS * N if first else changed[mode])
        # Every full answer is a whole feed; a 304 has no body.
        full = N if first else changed[mode]
        assert full * smallest <= run["body_bytes"] <= full * largest
        totals = run["database_totals"]
        assert totals["checks"] == N
        assert totals["not_modified"] == run["not_modified"]
        assert totals["bytes_fetched"] == run["body_bytes"]
        assert totals["failures"] == 0
        assert sum(p["claimed"] for p in run["passes"]) == N
        assert len(run["completions"]) == N
        assert run["seconds"] == max(run["completions"]) > 0
        assert run["worker_cpu_seconds"]["worker pool"] >= 0
    summary = data["summary"]
    assert summary["unchanged_body_bytes_per_source"] == 0
    assert summary["changed_body_bytes_per_source"] > 0
    spread = data["next_checks"]
    assert len(spread["due"]) == N
    assert spread["interval_seconds"] == 30 * 60
    # Each next check is at least half an interval away and at most one and a half.
    assert 15 * 60 - 60 <= spread["first_seconds"] <= spread["last_seconds"] <= 45 * 60 + 60
    assert 1 <= spread["max_per_second"] <= spread["max_per_tick"] <= N
    assert data["worker"]["pool"] and data["worker"]["concurrency"]
