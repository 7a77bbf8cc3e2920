"""What a month of generation has used, against the agents' and the workspace's limits.

A quota month is a calendar month in the workspace's zone (``AgentSettings.timezone``,
UTC when the workspace has no settings): it starts at local midnight on the 1st, which
:func:`month_bounds` finds DST-safe (a midnight that does not exist starts the month at
the instant the clocks jump).

Usage is the ledger (every provider call, purpose "generate" or "test") plus what runs
still hold: a run in a HOLDING state reserved tokens and money before calling, and that
reservation counts until the run settles it. Counting both is what lets the reservation
code refuse a run before its call; the same functions serve the usage report, so the
report and the refusals agree.

- tokens, cost: the ledger rows of the month, plus the reservations of every holding run
  made before the month ends (one made late last month will spend its money now);
- drafts: the runs made this month that succeeded, plus every holding run as above.

A limit of ``None`` is no limit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from herald.agents.cron import to_instant
from herald.agents.models import HOLDING_STATES, AgentRun, AgentSettings, LedgerEntry, RunState
from herald.scheduling.slots import load_zone

DEFAULT_ZONE = "UTC"
MICROS = 1_000_000


@dataclass(frozen=True)
class MonthUsage:
    drafts: int
    tokens: int
    cost_micros: int
    month_start: datetime  # UTC, inclusive
    month_end: datetime  # UTC, exclusive: when the quotas reset


@dataclass(frozen=True)
class QuotaLimits:
    """Monthly limits; None: no limit."""

    drafts: int | None = None
    tokens: int | None = None
    cost_micros: int | None = None

    @property
    def any(self) -> bool:
        return (self.drafts, self.tokens, self.cost_micros) != (None, None, None)


@dataclass(frozen=True)
class QuotaLeft:
    """What is left of each limit this month (never below 0); None where no limit."""

    drafts: int | None
    tokens: int | None
    cost_micros: int | None


class _HasQuota(Protocol):
    quota_drafts_per_month: int | None
    quota_tokens_per_month: int | None
    quota_cost_micros_per_month: int | None


def limits_of(row: _HasQuota | None) -> QuotaLimits:
    """The limits of an Agent or an AgentSettings row (none for no row)."""
    if row is None:
        return QuotaLimits()
    return QuotaLimits(
        drafts=row.quota_drafts_per_month,
        tokens=row.quota_tokens_per_month,
        cost_micros=row.quota_cost_micros_per_month,
    )


def left(limits: QuotaLimits, usage: MonthUsage) -> QuotaLeft:
    def rest(limit: int | None, used: int) -> int | None:
        return None if limit is None else max(0, limit - used)

    return QuotaLeft(
        drafts=rest(limits.drafts, usage.drafts),
        tokens=rest(limits.tokens, usage.tokens),
        cost_micros=rest(limits.cost_micros, usage.cost_micros),
    )


def month_bounds(zone: ZoneInfo | str, now: datetime) -> tuple[datetime, datetime]:
    """The calendar month in ``zone`` that holds ``now`` (aware), as [start, end) in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = load_zone(zone) if isinstance(zone, str) else zone
    local = now.astimezone(zone)
    first = date(local.year, local.month, 1)
    following = date(local.year + local.month // 12, local.month % 12 + 1, 1)
    start = to_instant(datetime.combine(first, time(0)), zone)
    end = to_instant(datetime.combine(following, time(0)), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def workspace_zone(session: Session, workspace_id: uuid.UUID) -> str:
    """The zone the workspace's quota months are counted in."""
    zone = session.scalar(
        select(AgentSettings.timezone).where(AgentSettings.workspace_id == workspace_id)
    )
    return zone or DEFAULT_ZONE


def month_usage(
    session: Session,
    workspace_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    now: datetime,
    zone: ZoneInfo | str | None = None,
) -> MonthUsage:
    """What the workspace (``agent_id`` None) or one of its agents has used in the quota
    month holding ``now``, reservations of holding runs included (see the module doc).
    ``zone``: the workspace's, when the caller has read it already (None: read here)."""
    start, end = month_bounds(zone or workspace_zone(session, workspace_id), now)

    ledger_where: list[ColumnElement[bool]] = [
        LedgerEntry.workspace_id == workspace_id,
        LedgerEntry.at >= start,
        LedgerEntry.at < end,
    ]
    runs_where: list[ColumnElement[bool]] = [AgentRun.workspace_id == workspace_id]
    if agent_id is not None:
        ledger_where.append(LedgerEntry.agent_id == agent_id)
        runs_where.append(AgentRun.agent_id == agent_id)

    spent_tokens, spent_micros = session.execute(
        select(
            func.coalesce(func.sum(LedgerEntry.input_tokens + LedgerEntry.output_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.cost_micros), 0),
        ).where(*ledger_where)
    ).one()
    held_runs, held_tokens, held_micros = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(AgentRun.reserved_tokens), 0),
            func.coalesce(func.sum(AgentRun.reserved_cost_micros), 0),
        )
        .select_from(AgentRun)
        .where(
            *runs_where,
            AgentRun.state.in_([str(s) for s in HOLDING_STATES]),
            AgentRun.created_at < end,
        )
    ).one()
    succeeded = session.scalar(
        select(func.count())
        .select_from(AgentRun)
        .where(
            *runs_where,
            AgentRun.state == RunState.SUCCEEDED,
            AgentRun.created_at >= start,
            AgentRun.created_at < end,
        )
    )
    return MonthUsage(
        drafts=int(succeeded or 0) + int(held_runs),
        tokens=int(spent_tokens) + int(held_tokens),
        cost_micros=int(spent_micros) + int(held_micros),
        month_start=start,
        month_end=end,
    )
