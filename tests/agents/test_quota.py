"""Quota months (calendar months in the workspace's zone) and what a month has used: the
ledger plus the reservations runs still hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from herald.agents.models import Agent, AgentSettings, RunState
from herald.agents.quota import (
    MonthUsage,
    QuotaLeft,
    QuotaLimits,
    left,
    limits_of,
    month_bounds,
    month_usage,
    workspace_zone,
)
from herald.core.db import session_scope
from tests.agents.rows import add_ledger, add_run
from tests.conftest import Account, MakeAccount


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "now", "start", "end"),
    [
        ("UTC", _utc(2026, 3, 15), _utc(2026, 3, 1), _utc(2026, 4, 1)),
        # Warsaw: March starts in winter time (+01) and ends in summer time (+02).
        ("Europe/Warsaw", _utc(2026, 3, 15), _utc(2026, 2, 28, 23), _utc(2026, 3, 31, 22)),
        # 23:30 UTC on 31 October is already November in Warsaw (+01 since 25 October).
        (
            "Europe/Warsaw",
            _utc(2026, 10, 31, 23, 30),
            _utc(2026, 10, 31, 23),
            _utc(2026, 11, 30, 23),
        ),
        ("America/New_York", _utc(2026, 12, 31, 12), _utc(2026, 12, 1, 5), _utc(2027, 1, 1, 5)),
        # 1 October 2023 had no midnight in Asuncion (00:00 -04 became 01:00 -03): the
        # month began when the clocks jumped, 04:00 UTC.
        ("America/Asuncion", _utc(2023, 10, 10), _utc(2023, 10, 1, 4), _utc(2023, 11, 1, 3)),
        (
            "Asia/Kolkata",
            _utc(2026, 1, 31, 18, 30),
            _utc(2026, 1, 31, 18, 30),
            _utc(2026, 2, 28, 18, 30),
        ),
    ],
)
def test_month_bounds_are_local_calendar_months(
    zone: str, now: datetime, start: datetime, end: datetime
) -> None:
    assert month_bounds(zone, now) == (start, end)
    # Both edges: the first instant belongs to the month, the last before the end too.
    assert month_bounds(zone, start) == (start, end)
    assert month_bounds(zone, end - timedelta(microseconds=1)) == (start, end)
    assert month_bounds(zone, end)[0] == end


def test_month_bounds_refuse_a_naive_time_or_an_unknown_zone() -> None:
    with pytest.raises(ValueError, match="aware"):
        month_bounds("UTC", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown time zone"):
        month_bounds("Atlantis/Capital", _utc(2026, 1, 1))


def test_limits_and_what_is_left() -> None:
    usage = MonthUsage(drafts=3, tokens=900, cost_micros=1_500_000,
                       month_start=_utc(2026, 1, 1), month_end=_utc(2026, 2, 1))  # fmt: skip
    assert left(QuotaLimits(drafts=5, tokens=None, cost_micros=1_000_000), usage) == QuotaLeft(
        drafts=2, tokens=None, cost_micros=0
    )
    assert not limits_of(None).any
    assert QuotaLimits(tokens=0).any


@pytest.fixture
def agents(account: Account) -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope() as s:
        made = [Agent(workspace_id=account.workspace_id, name=n, topic="t") for n in ("A", "B")]
        s.add_all(made)
        s.flush()
        return made[0].id, made[1].id


def test_month_usage_counts_the_ledger_and_held_reservations(
    account: Account, make_account: MakeAccount, agents: tuple[uuid.UUID, uuid.UUID]
) -> None:
    ws = account.workspace_id
    a, b = agents
    with session_scope() as s:
        s.add(AgentSettings(workspace_id=ws, timezone="Europe/Warsaw"))
    now = _utc(2026, 11, 15)
    # November in Warsaw: [31 Oct 23:00 UTC, 30 Nov 23:00 UTC).
    add_ledger(ws, agent_id=a, at=_utc(2026, 10, 31, 23, 30), input_tokens=100,
               output_tokens=50, cost_micros=1_000)  # fmt: skip
    add_ledger(ws, agent_id=a, at=_utc(2026, 11, 10), input_tokens=10, output_tokens=5,
               cost_micros=20)  # fmt: skip
    add_ledger(ws, agent_id=b, at=_utc(2026, 11, 11), input_tokens=7, cost_micros=3)
    add_ledger(ws, agent_id=None, purpose="test", at=_utc(2026, 11, 12), input_tokens=1,
               output_tokens=1, cost_micros=1)  # fmt: skip
    # Outside the month: October in Warsaw, December in Warsaw.
    add_ledger(ws, agent_id=a, at=_utc(2026, 10, 31, 22, 59), input_tokens=10_000)
    add_ledger(ws, agent_id=a, at=_utc(2026, 11, 30, 23), input_tokens=10_000)
    # Another workspace's calls never count.
    other = make_account("other@example.com", workspace="elsewhere")
    add_ledger(other.workspace_id, at=_utc(2026, 11, 10), input_tokens=99_999)

    november = _utc(2026, 11, 5)
    add_run(ws, a, state=RunState.SUCCEEDED, created_at=november)
    add_run(ws, a, state=RunState.SUCCEEDED, created_at=_utc(2026, 10, 20))  # October
    add_run(ws, a, state=RunState.FAILED, created_at=november, reserved_tokens=500)
    add_run(ws, a, state=RunState.REFUSED, created_at=november)
    add_run(ws, a, state=RunState.RUNNING, created_at=november, reserved_tokens=2_000,
            reserved_cost_micros=30_000)  # fmt: skip
    # Reserved late in October, not settled yet: its spending lands now.
    add_run(ws, a, state=RunState.RESERVED, created_at=_utc(2026, 10, 31, 22),
            reserved_tokens=300, reserved_cost_micros=400)  # fmt: skip
    add_run(ws, b, state=RunState.RESERVED, created_at=november, reserved_tokens=1,
            reserved_cost_micros=1)  # fmt: skip
    add_run(ws, b, state=RunState.RESERVED, created_at=_utc(2026, 12, 2), reserved_tokens=1)

    with session_scope() as s:
        of_a = month_usage(s, ws, a, now)
        of_b = month_usage(s, ws, b, now)
        whole = month_usage(s, ws, None, now)
    assert (of_a.month_start, of_a.month_end) == (_utc(2026, 10, 31, 23), _utc(2026, 11, 30, 23))
    assert (of_a.drafts, of_a.tokens, of_a.cost_micros) == (
        1 + 2,  # one succeeded this month, two holding
        150 + 15 + 2_000 + 300,
        1_000 + 20 + 30_000 + 400,
    )
    assert (of_b.drafts, of_b.tokens, of_b.cost_micros) == (1, 7 + 1, 3 + 1)
    # The workspace: both agents and the provider test.
    assert (whole.drafts, whole.tokens, whole.cost_micros) == (
        of_a.drafts + of_b.drafts,
        of_a.tokens + of_b.tokens + 2,
        of_a.cost_micros + of_b.cost_micros + 1,
    )


def test_a_workspace_without_settings_counts_utc_months(account: Account) -> None:
    ws = account.workspace_id
    add_ledger(ws, at=_utc(2026, 10, 31, 23, 30), input_tokens=5)  # November in Warsaw only
    with session_scope() as s:
        assert workspace_zone(s, ws) == "UTC"
        usage = month_usage(s, ws, None, _utc(2026, 11, 15))
        # A caller holding the zone already (the reservation, under its lock) passes it.
        warsaw = month_usage(s, ws, None, _utc(2026, 11, 15), "Europe/Warsaw")
    assert (usage.tokens, usage.month_start) == (0, _utc(2026, 11, 1))
    assert (warsaw.tokens, warsaw.month_start) == (5, _utc(2026, 10, 31, 23))
