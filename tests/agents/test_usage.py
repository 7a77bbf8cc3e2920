"""The usage report: ledger rows inserted directly, summed per agent, provider, model and
day (in the workspace's zone), with nearest-rank latency percentiles and the quota left."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.agents.models import Agent, AgentSettings, RunState
from herald.agents.usage import percentile
from herald.core.db import session_scope
from tests.agents.rows import add_ledger, add_run
from tests.conftest import Account, MakeAccount
from tests.scheduling import frozen

URL = "/api/v1/usage"
NOW = datetime(2026, 12, 15, 12, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_nearest_rank_percentiles() -> None:
    values = [35, 20, 15, 50, 40]
    assert [percentile(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def _report(client: TestClient, account: Account, **params: str) -> dict[str, Any]:
    with frozen(NOW):
        answer = client.get(URL, params=params, headers=account.headers)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def _by_key(report: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {row["key"]: row for row in report["rows"]}


@pytest.fixture
def ledger(account: Account, make_account: MakeAccount) -> dict[str, uuid.UUID]:
    """December 2026 in Europe/Warsaw for two agents (one since deleted), provider calls
    of a hosted model and of the built-in digest, and a provider test."""
    ws = account.workspace_id
    writer, gone = uuid.uuid4(), uuid.uuid4()
    hosted = uuid.uuid4()
    with session_scope() as s:
        s.add(AgentSettings(workspace_id=ws, timezone="Europe/Warsaw", quota_drafts_per_month=10,
                            quota_tokens_per_month=100_000))  # fmt: skip
        s.add(Agent(id=writer, workspace_id=ws, name="Writer", topic="t",
                    quota_drafts_per_month=5, quota_cost_micros_per_month=2_000_000))  # fmt: skip
    run1, run2, run3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    hosted_call: dict[str, Any] = {
        "provider_id": hosted, "provider_name": "Hosted", "provider_kind": "openai",
        "model": "gpt-x",
    }  # fmt: skip
    # Writer, run 1: a 500 and its retry (two calls, one run); run 2 one call.
    # 23:30 UTC on 30 November is 00:30 on 1 December in Warsaw: in the month.
    add_ledger(ws, agent_id=writer, agent_name="Old name", run_id=run1,
               at=_utc(2026, 11, 30, 23, 30), latency_ms=900, outcome="retryable",
               **hosted_call)  # fmt: skip
    add_ledger(ws, agent_id=writer, agent_name="Writer", run_id=run1, at=_utc(2026, 12, 1, 8),
               input_tokens=1_000, output_tokens=500, cost_micros=1_250_000, latency_ms=100,
               **hosted_call)  # fmt: skip
    add_ledger(ws, agent_id=writer, agent_name="Writer", run_id=run2,
               at=_utc(2026, 12, 1, 23, 30), input_tokens=2_000, output_tokens=1_000,
               cost_micros=2_500_000, latency_ms=300, **hosted_call)  # fmt: skip
    # The deleted agent, with the built-in digest (no provider row, no cost).
    add_ledger(ws, agent_id=gone, agent_name="Gone", run_id=run3, at=_utc(2026, 12, 3, 10),
               provider_id=None, provider_name="digest", provider_kind="digest",
               model="digest", input_tokens=400, output_tokens=200, latency_ms=20)  # fmt: skip
    # A provider test: no agent, no run.
    add_ledger(ws, purpose="test", at=_utc(2026, 12, 3, 11), input_tokens=5, output_tokens=1,
               cost_micros=7, latency_ms=50, **hosted_call)  # fmt: skip
    # Outside December in Warsaw: the last instant of November, the first of January.
    add_ledger(ws, agent_id=writer, at=_utc(2026, 11, 30, 22, 59), input_tokens=10**6)
    add_ledger(ws, agent_id=writer, at=_utc(2026, 12, 31, 23), input_tokens=10**6)
    # Another workspace's calls, in the month.
    other = make_account("other@example.com", workspace="elsewhere")
    add_ledger(other.workspace_id, at=_utc(2026, 12, 2), input_tokens=777, model="theirs")
    # A run still holding a reservation counts against the quotas, not in the report.
    add_run(ws, writer, state=RunState.RESERVED, created_at=_utc(2026, 12, 14),
            reserved_tokens=3_000, reserved_cost_micros=200_000)  # fmt: skip
    add_run(ws, writer, state=RunState.SUCCEEDED, created_at=_utc(2026, 12, 1, 8))
    add_run(ws, writer, state=RunState.SUCCEEDED, created_at=_utc(2026, 12, 1, 23, 30))
    return {"writer": writer, "gone": gone, "hosted": hosted}


def test_by_agent(client: TestClient, account: Account, ledger: dict[str, uuid.UUID]) -> None:
    report = _report(client, account)
    assert (report["from"], report["to"]) == ("2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z")
    assert (report["group_by"], report["currency"], report["timezone"]) == (
        "agent", "USD", "Europe/Warsaw",
    )  # fmt: skip
    rows = _by_key(report)
    assert [r["key"] for r in report["rows"]] == [
        str(ledger["writer"]), None, str(ledger["gone"]),  # by cost, then tokens
    ]  # fmt: skip
    writer = rows[str(ledger["writer"])]
    assert writer == {
        "key": str(ledger["writer"]),
        "label": "Writer",  # the agent's name now
        "runs": 2,
        "calls": 3,
        "input_tokens": 3_000,
        "output_tokens": 1_500,
        "tokens": 4_500,
        "cost": 3.75,
        "latency_p50_ms": 300,
        "latency_p95_ms": 900,
        # 5 drafts: 2 succeeded + 1 reserved; 2.00 of money: 3.75 spent + 0.20 held.
        "quota_left": {"drafts": 2, "tokens": None, "cost": 0.0},
    }
    gone = rows[str(ledger["gone"])]
    assert (gone["label"], gone["runs"], gone["cost"], gone["quota_left"]) == ("Gone", 1, 0.0, None)
    tests = rows[None]
    assert (tests["label"], tests["runs"], tests["calls"], tests["cost"]) == (
        "provider tests", 0, 1, 0.000007,
    )  # fmt: skip
    totals = report["totals"]
    assert (totals["runs"], totals["calls"], totals["tokens"]) == (3, 5, 4_500 + 600 + 6)
    assert totals["cost"] == 3.750007
    assert (totals["latency_p50_ms"], totals["latency_p95_ms"]) == (100, 900)
    # The workspace's quota: 10 drafts, 100 000 tokens (5 106 spent, 3 000 held).
    assert totals["quota_left"] == {"drafts": 7, "tokens": 100_000 - 5_106 - 3_000, "cost": None}
    # The report's sums are the ledger's.
    assert sum(r["tokens"] for r in report["rows"]) == totals["tokens"]
    assert sum(r["calls"] for r in report["rows"]) == totals["calls"]


def test_by_provider_and_model(
    client: TestClient, account: Account, ledger: dict[str, uuid.UUID]
) -> None:
    providers = _by_key(_report(client, account, group_by="provider"))
    assert set(providers) == {str(ledger["hosted"]), "digest"}
    hosted = providers[str(ledger["hosted"])]
    assert (hosted["label"], hosted["runs"], hosted["calls"], hosted["cost"]) == (
        "Hosted", 2, 4, 3.750007,
    )  # fmt: skip
    assert hosted["quota_left"] is None
    assert (providers["digest"]["label"], providers["digest"]["tokens"]) == ("digest", 600)
    models = _by_key(_report(client, account, group_by="model"))
    assert {k: (r["calls"], r["tokens"]) for k, r in models.items()} == {
        "gpt-x": (4, 4_506), "digest": (1, 600),
    }  # fmt: skip


def test_by_day_in_the_workspaces_zone(
    client: TestClient, account: Account, ledger: dict[str, uuid.UUID]
) -> None:
    report = _report(client, account, group_by="day")
    days = [(r["key"], r["calls"], r["tokens"]) for r in report["rows"]]
    assert days == [
        ("2026-12-01", 2, 1_500),  # 00:30 and 09:00 local
        ("2026-12-02", 1, 3_000),  # 23:30 UTC on the 1st is 00:30 on the 2nd
        ("2026-12-03", 2, 606),
    ]
    assert report["totals"]["calls"] == 5


def test_ranges_by_date_and_time(
    client: TestClient, account: Account, ledger: dict[str, uuid.UUID]
) -> None:
    # Dates are local days, the end inclusive.
    one_day = _report(client, account, group_by="day", **{"from": "2026-12-02", "to": "2026-12-02"})
    assert (one_day["from"], one_day["to"]) == ("2026-12-01T23:00:00Z", "2026-12-02T23:00:00Z")
    assert [r["key"] for r in one_day["rows"]] == ["2026-12-02"]
    # Times with an offset; a partial first day is that day.
    timed = _report(
        client, account, group_by="day", **{"from": "2026-12-01T09:00:00+01:00",
                                            "to": "2026-12-03T12:00:00Z"}
    )  # fmt: skip
    assert [(r["key"], r["calls"]) for r in timed["rows"]] == [
        ("2026-12-01", 1), ("2026-12-02", 1), ("2026-12-03", 2),
    ]  # fmt: skip
    # Two years by day (the longest range): only the days with calls are rows.
    years = _report(client, account, group_by="day", **{"from": "2025-01-01", "to": "2026-12-31"})
    assert [r["key"] for r in years["rows"]] == [
        "2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03",
    ]  # fmt: skip
    # 23:59 on 30 November local is in; 00:00 on 1 January 2027 local is not.
    assert years["totals"]["calls"] == 6
    # A month with nothing in it.
    empty = _report(client, account, **{"from": "2026-06-01", "to": "2026-06-30"})
    assert empty["rows"] == [] and empty["totals"]["calls"] == 0
    assert empty["totals"]["latency_p50_ms"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-12-01T00:00:00"}, "from"),  # no offset
        ({"from": "2026-12-10", "to": "2026-12-01"}, "to"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "to"),  # too long
        ({"group_by": "week"}, "group_by"),
    ],
)
def test_bad_ranges_are_422s_naming_the_parameter(
    client: TestClient, account: Account, params: dict[str, str], field: str
) -> None:
    answer = client.get(URL, params=params, headers=account.headers)
    assert answer.status_code == 422, answer.text
    assert any(e["loc"] == ["query", field] for e in answer.json()["errors"]), answer.text


def test_a_workspace_with_no_settings_reports_its_utc_month(
    client: TestClient, account: Account
) -> None:
    report = _report(client, account)
    assert (report["from"], report["to"], report["timezone"]) == (
        "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "UTC",
    )  # fmt: skip
    assert report["rows"] == [] and report["totals"]["quota_left"] is None
