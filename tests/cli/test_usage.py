"""`herald usage` as a user runs it: a table and a bar chart within 80 columns, from
ledger rows written in-process (the report itself is tested in tests/agents/)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from herald.agents.models import Agent
from herald.cli.usage import bar_chart
from herald.core.db import session_scope
from herald.users.principal import default_principal
from tests.agents.rows import add_ledger
from tests.cli.runner import ON_SQLITE, given_user, herald

pytestmark = pytest.mark.integration  # `herald` processes on the real database

RANGE = ("--from", "2026-11-01", "--to", "2026-11-30")


def test_bars_are_proportional_and_fit_the_width() -> None:
    lines = bar_chart(
        [("Writer", 4.0), ("A name far longer than the label column", 1.0), ("idle", 0.0)],
        ["4", "1", "0"],
    )
    assert all(len(line) <= 80 for line in lines)
    full = lines[0].count("█")
    assert full == 80 - 20 - 1 - 3  # the whole bar width for the largest value
    assert lines[1].startswith("A name far longer t… ")
    assert lines[1].count("█") == full // 4  # a quarter, to the eighth
    assert "█" not in lines[2] and lines[2].endswith(" 0")
    # 6 columns of bar: an eighth of the largest is 6 eighths of one column.
    thin = bar_chart([("a", 8.0), ("b", 1.0)], ["8", "1"], width=30)
    assert thin[0].split() == ["a", "██████", "8"] and thin[1].split() == ["b", "▊", "1"]
    assert bar_chart([], []) == []


@ON_SQLITE
def test_usage_as_a_table_and_a_chart(db_backend: str) -> None:
    given_user("ann@example.com", admin=True)
    with session_scope() as session:
        workspace_id = default_principal(session).workspace_id
        writer = Agent(workspace_id=workspace_id, name="Writer", topic="t",
                       quota_drafts_per_month=10)  # fmt: skip
        session.add(writer)
        session.flush()
        writer_id = writer.id
    at = datetime(2026, 11, 10, tzinfo=UTC)
    add_ledger(workspace_id, agent_id=writer_id, agent_name="Writer", run_id=uuid.uuid4(),
               at=at, input_tokens=1_000, output_tokens=500, cost_micros=3_000_000,
               latency_ms=120)  # fmt: skip
    add_ledger(workspace_id, agent_id=None, purpose="test", at=at, input_tokens=10,
               cost_micros=1_000_000, latency_ms=80)  # fmt: skip
    add_ledger(workspace_id, agent_id=uuid.uuid4(), agent_name="Digest bot",
               at=datetime(2026, 11, 12, tzinfo=UTC),
               provider_name="digest", provider_kind="digest", model="digest",
               input_tokens=300, latency_ms=5)  # fmt: skip

    shown = herald("usage", *RANGE)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), shown.stdout
    assert "Writer" in shown.stdout and "provider tests" in shown.stdout
    assert "All" in shown.stdout and "10 drafts" in shown.stdout  # quota left
    chart = lines[lines.index("cost") + 1 :]
    assert chart[0].startswith("Writer") and chart[0].endswith(" 3")
    assert chart[1].startswith("provider tests") and chart[1].endswith(" 1")
    # A third of the 56-column bar: 18 columns and 5 eighths.
    assert chart[0].count("█") == 56 and chart[1].split()[2] == "█" * 18 + "▋"

    models = json.loads(herald("usage", "--by", "model", "--json", *RANGE).stdout)
    assert {r["key"]: r["tokens"] for r in models["rows"]} == {"llama3": 1_510, "digest": 300}
    assert models["from"] == "2026-11-01T00:00:00Z" and models["currency"] == "USD"

    # Only the digest's calls, which cost nothing: the chart shows tokens.
    free = herald("usage", "--by", "provider", "--from", "2026-11-12", "--to", "2026-11-12")
    assert free.returncode == 0, free.stderr
    assert "tokens (no cost recorded)" in free.stdout
    assert free.stdout.splitlines()[-1].startswith("digest") and free.stdout.endswith(" 300\n")

    empty = herald("usage", "--from", "2026-06-01", "--to", "2026-06-30")
    assert "No provider calls in this range." in empty.stdout
    bad = herald("usage", "--by", "week")
    assert bad.returncode == 1 and bad.stderr.startswith("herald: error: --by must be one of")
    wrong = herald("usage", "--from", "soon")
    assert wrong.returncode == 1 and wrong.stderr.startswith("herald: error: from: give a date")
