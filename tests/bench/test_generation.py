"""Smoke test: the generation benchmark runs a few digest and openai generations through
the real path, prints its table and writes its chart and numbers, and the numbers agree
with each other. On SQLite only (see tests/bench/__init__.py). No timing assertions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bench.generation import item_text, parse_args, percentile

from tests.bench import chart_text, run_benchmark

N, OPENAI_N, LATENCY_MS = 3, 2, 5


def test_the_items_are_the_same_on_every_run_and_read_as_prose() -> None:
    assert item_text(7) == item_text(7)
    assert item_text(7) != item_text(8)
    for number in range(20):
        title, text = item_text(number)
        sentences = re.findall(r"[^.]+\.", text)
        assert 8 <= len(sentences) <= 12, text
        assert 80 <= len(text.split()) <= 320
        assert f"update {number}" in title


def test_its_options_and_percentile(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args([])
    assert (args.n, args.openai_n, args.latency_ms, args.items, args.words) == (
        200,
        50,
        200.0,
        5,
        600,
    )
    with pytest.raises(SystemExit) as exited:
        parse_args(["--n", "1"])
    assert exited.value.code == 2
    assert "--n must be at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--words", "10"])
    assert "--words must be between 50 and 5000" in capsys.readouterr().err
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert percentile(list(map(float, range(1, 21))), 0.5) == 10.0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_benchmark_runs_and_its_numbers_agree(tmp_path: Path) -> None:
    # Once with the agent drawing its newest unused items (5 a run, as scheduled), once
    # with each run naming its 2: one after the other, in one Redis database.
    for by_ids in (False, True):
        run_and_check(tmp_path / str(by_ids), by_ids)


def run_and_check(results: Path, by_ids: bool) -> None:
    items = 5 if not by_ids else 2
    returncode, out, err = run_benchmark(
        "bench.generation",
        [
            *("--n", str(N), "--openai-n", str(OPENAI_N), "--latency-ms", str(LATENCY_MS)),
            *("--items", str(items), "--words", "300"),
        ],
        database="sqlite",
        results=results,
    )

    assert returncode == 0, f"{out}\n{err}"
    assert "PROBLEM" not in err, err
    assert f"Agent generations: sqlite, {items} items and 300 words a draft" in out
    assert ("item_ids" in out) is by_ids
    assert "first draft (cold, not counted)" in out
    assert f"The openai path against the fake, latency {LATENCY_MS} ms" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1]}
    assert rows["digest"][1] == str(N) and rows["openai"][1] == str(OPENAI_N)

    chart = chart_text(results / "generation.svg")
    assert "Agent generations" in chart and "digest: SEO metrics (textstat)" in chart
    assert "openai: Herald's overhead" in chart and "wall ms per draft" in chart
    data = json.loads((results / "generation-sqlite.json").read_text())
    assert data == json.loads((results / "generation.json").read_text())
    assert data["problems"] == []
    assert data["options"]["item_ids"] is by_ids
    digest, openai = data["digest"], data["openai"]
    assert digest["drafts"] == N and openai["drafts"] == OPENAI_N
    assert len(data["per_draft"]["digest"]) == N
    assert len(data["per_draft"]["openai"]) == OPENAI_N
    for summary in (digest, openai):
        assert summary["drafts_per_second"] > 0
        assert 0 < summary["wall_ms"]["median"] <= summary["wall_ms"]["p95"]
        assert 0 < summary["cpu_ms"]["median"] <= summary["cpu_ms"]["p95"]
        assert set(summary["phases_wall_ms"]) == {
            "request",
            "prepare",
            "call",
            "record",
            "seo",
            "runner",
        }
        assert summary["words_median"] > 0
    # The fake waits its latency inside its own time, and the draft's wall holds it.
    for draft in data["per_draft"]["openai"]:
        assert draft["fake_ms"] >= LATENCY_MS
        assert draft["wall_ms"] > draft["fake_ms"]
        assert draft["provider_ms"] >= LATENCY_MS
    assert openai["fake"]["ratio_to_own_time"] > 1
    assert openai["fake"]["overhead_ms_median"] > 0
    # The cold draft loads textstat's dictionaries; it is reported, not counted.
    assert digest["cold"]["seo_wall_ms"] > 0
