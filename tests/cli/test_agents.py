"""`herald agent` as a user runs it: real processes on SQLite (the agents service is
tested on both databases in tests/agents/)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from herald.agents.models import RunState
from herald.agents.tasks import generate_post
from herald.core.db import session_scope
from herald.sources.entries import Entry
from herald.sources.items import store_entries
from herald.users.principal import default_principal
from tests.agents.rows import add_run, add_source
from tests.cli.runner import ON_SQLITE, follow, given_folder_channel, given_user, herald

pytestmark = pytest.mark.integration  # `herald` processes on the real database


def _workspace_id() -> uuid.UUID:
    with session_scope() as session:
        return default_principal(session).workspace_id


@ON_SQLITE
def test_add_list_read_runs_and_remove_an_agent(db_backend: str, tmp_path: Path) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("Blog", tmp_path)
    source_id = add_source(_workspace_id(), "News")

    added = herald(
        "agent", "add", "Weekly", "--topic", "Python news", "--keyword", "python",
        "--keyword", "packaging", "--source", "News", "--channel", "Blog",
        "--cron", "0 9 * * MON", "--tz", "Europe/Warsaw", "--auto-publish", "--words", "800",
        "--tone", "friendly", "--quota-drafts", "4", "--quota-cost", "2.5", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    agent = json.loads(added.stdout)
    assert (agent["name"], agent["review"], agent["target_words"]) == (
        "Weekly",
        "auto_publish",
        800,
    )
    assert agent["source_ids"] == [source_id] and len(agent["channel_ids"]) == 1
    assert agent["keywords"] == ["python", "packaging"]
    assert agent["quota"] == {
        "drafts_per_month": 4,
        "tokens_per_month": None,
        "cost_per_month": 2.5,
    }
    assert [r[11:16] for r in agent["next_runs"]] == ["09:00"] * 3

    # One of each kind of error (the fields' own rules are the API's tests').
    for args, words in (
        (("--cron", "0 0 9 * * MON"), "herald: error: schedule_cron: '0 0 9 * * MON' has 6 fields"),
        (("--source", "Nope"), "herald: error: No source named 'Nope'."),
    ):
        bad = herald("agent", "add", "Other", "--topic", "t", *args)
        assert bad.returncode == 1 and bad.stderr.startswith(words), bad.stderr
        assert bad.stderr.count("\n") == 1
    twice = herald("agent", "add", "Weekly", "--topic", "t")
    assert twice.returncode == 1 and "already exists" in twice.stderr

    listed = herald("agent", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Weekly" in listed.stdout and "0 9 * * MON" in listed.stdout
    assert "09:00" in listed.stdout and "digest" in listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines())

    assert "has not run yet" in herald("agent", "runs", "Weekly").stdout
    add_run(_workspace_id(), agent["id"], state=RunState.SUCCEEDED, input_tokens=1_000,
            output_tokens=234, cost_micros=1_250_000, latency_ms=812)  # fmt: skip
    add_run(_workspace_id(), agent["id"], state=RunState.FAILED,
            error="the provider answered 500")  # fmt: skip
    runs = herald("agent", "runs", agent["id"][:8])  # an id prefix works too
    assert runs.returncode == 0, runs.stderr
    assert "succeeded" in runs.stdout and "1234" in runs.stdout and "1.25" in runs.stdout
    assert "812" in runs.stdout and "answered" in runs.stdout  # the error (wrapped)
    as_json = json.loads(herald("agent", "runs", "Weekly", "--json").stdout)
    assert sorted(r["state"] for r in as_json) == ["failed", "succeeded"]

    removed = herald("agent", "remove", "Weekly")
    assert removed.returncode == 0 and "Removed 'Weekly'." in removed.stdout
    assert "No agents yet" in herald("agent", "list").stdout
    missing = herald("agent", "remove", "Weekly")
    assert missing.returncode == 1 and "No agent named" in missing.stderr


@ON_SQLITE
def test_run_an_agent_now_and_read_its_draft(db_backend: str, redis_broker: str) -> None:
    given_user("ann@example.com", admin=True)
    workspace_id = _workspace_id()
    source_id = add_source(workspace_id, "News")
    with session_scope() as session:
        store_entries(
            session,
            workspace_id=workspace_id,
            source_id=uuid.UUID(source_id),
            entries=[
                Entry(
                    site="feed",
                    title=f"Release {n} is out",
                    link=f"https://news.example/{n}",
                    summary_text=f"Release {n} is out today. It fixes {n} bugs. Upgrade soon.",
                )
                for n in (1, 2)
            ],
        )
    assert (
        herald("agent", "add", "Daily", "--topic", "Releases", "--source", "News").returncode == 0
    )

    ran = follow("agent.generate", generate_post, "agent", "run", "Daily")

    assert ran.returncode == 0, ran.stderr
    assert "Daily: drafted 'Releases: Release" in ran.stdout and "in_review" in ran.stdout
    assert "cost 0" in ran.stdout
    runs = herald("agent", "runs", "Daily", "--json")
    assert [r["state"] for r in json.loads(runs.stdout)] == ["succeeded"]

    # Every item has served the agent: the next run fails, with the reason, on one line.
    again = follow("agent.generate", generate_post, "agent", "run", "Daily")
    assert again.returncode == 1
    assert again.stderr.startswith("herald: error: Daily's run failed: no items to draw from")
