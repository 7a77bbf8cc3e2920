"""The usage report: the ledger summed per agent, provider, model or day.

Sums (calls, runs, tokens, money) are computed by the database; the latency percentiles
in Python from the calls' latencies, by nearest rank (the smallest latency with at least
p% of the calls at or below it), which a report of this size reads in a moment. Days are
the workspace's (its zone, ``AgentSettings.timezone``), as are the quota months that
``quota_left`` counts: what is left *now*, whatever range the report covers.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import QueryableAttribute, Session

from herald.agents import quota
from herald.agents.cron import to_instant
from herald.agents.models import Agent, AgentSettings, LedgerEntry
from herald.agents.schemas import QuotaLeftRead, UsageGroup, UsageReport, UsageRow, from_micros
from herald.core.clock import utcnow
from herald.core.errors import InvalidInput
from herald.scheduling.slots import range_bound
from herald.users.principal import Principal

CURRENCY = "USD"
MAX_RANGE = timedelta(days=732)
GROUPS: tuple[UsageGroup, ...] = ("agent", "provider", "model", "day")
# The key of the built-in digest's rows when grouping by provider (it has no row).
BUILTIN = "digest"


def percentile(values: list[int], p: float) -> int | None:
    """Nearest-rank percentile: the value at rank ceil(p/100 * n) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _bad(field: str, message: str) -> InvalidInput:
    text = f"{field}: {message}"
    return InvalidInput(
        text, errors=[{"loc": ["query", field], "msg": text, "type": "value_error"}]
    )


def report_range(
    start: str | None, end: str | None, zone: ZoneInfo, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to) in UTC; each bound left out is the current quota month's."""
    month_start, month_end = quota.month_bounds(zone, now)
    begin = range_bound(start, zone, field="from", end=False) or month_start
    finish = range_bound(end, zone, field="to", end=True) or month_end
    if finish <= begin:
        raise _bad("to", "must be after 'from'")
    if finish - begin > MAX_RANGE:
        raise _bad("to", f"the range is longer than {MAX_RANGE.days} days; ask for a shorter one")
    return begin, finish


@dataclass(frozen=True)
class _Totals:
    runs: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_micros: int


def _day_starts(begin: datetime, finish: datetime, zone: ZoneInfo) -> list[tuple[str, datetime]]:
    """Each local day the range touches, with the instant it starts (the first clipped to
    ``begin``)."""
    day = begin.astimezone(zone).date()
    days: list[tuple[str, datetime]] = []
    while True:
        at = max(begin, to_instant(datetime.combine(day, time(0)), zone))
        if at >= finish:
            return days
        days.append((day.isoformat(), at))
        day += timedelta(days=1)


def _key_column(
    group_by: UsageGroup, days: list[tuple[str, datetime]]
) -> ColumnElement[Any] | QueryableAttribute[Any]:
    if group_by == "agent":
        return LedgerEntry.agent_id
    if group_by == "provider":
        return LedgerEntry.provider_id
    if group_by == "model":
        return LedgerEntry.model
    # The local day a row's time falls in: the last day that starts at or before it.
    if len(days) == 1:
        return literal(days[0][0])
    return case(
        *((LedgerEntry.at < at, label) for (label, _), (_, at) in pairwise(days)),
        else_=days[-1][0],
    )


def _key(value: Any, group_by: UsageGroup) -> str | None:
    """A group's key as the report shows it: the built-in digest (no provider row) is
    "digest"; provider tests (no agent) are null."""
    if value is None:
        return BUILTIN if group_by == "provider" else None
    return str(value)


def usage_report(
    session: Session,
    principal: Principal,
    *,
    start: str | None = None,
    end: str | None = None,
    group_by: UsageGroup = "agent",
    now: datetime | None = None,
) -> UsageReport:
    now = now or utcnow()
    workspace_id = principal.workspace_id
    zone_name = quota.workspace_zone(session, workspace_id)
    zone = ZoneInfo(zone_name)
    begin, finish = report_range(start, end, zone, now)
    days = _day_starts(begin, finish, zone) if group_by == "day" else []
    key = _key_column(group_by, days).label("key")
    where = (
        LedgerEntry.workspace_id == workspace_id,
        LedgerEntry.at >= begin,
        LedgerEntry.at < finish,
    )
    generate_run = case((LedgerEntry.purpose == "generate", LedgerEntry.run_id))
    sums = (
        func.count(func.distinct(generate_run)),
        func.count(),
        func.coalesce(func.sum(LedgerEntry.input_tokens), 0),
        func.coalesce(func.sum(LedgerEntry.output_tokens), 0),
        func.coalesce(func.sum(LedgerEntry.cost_micros), 0),
    )
    grouped = {
        _key(row[0], group_by): _Totals(*(int(v) for v in row[1:]))
        for row in session.execute(select(key, *sums).where(*where).group_by(key))
    }
    overall = _Totals(*(int(v) for v in session.execute(select(*sums).where(*where)).one()))
    latencies: dict[str | None, list[int]] = {}
    for row_key, latency in session.execute(select(key, LedgerEntry.latency_ms).where(*where)):
        latencies.setdefault(_key(row_key, group_by), []).append(latency)
    labels = _labels(session, group_by, workspace_id, where)
    lefts = {}
    if group_by == "agent":
        lefts = _agent_quota_left(session, workspace_id, list(grouped), now)

    rows = [
        _row(k, labels.get(k, k or ""), totals, latencies.get(k, []), lefts.get(k))
        for k, totals in grouped.items()
    ]
    if group_by == "day":
        rows.sort(key=lambda r: r.key or "")
    else:
        rows.sort(key=lambda r: (-r.cost, -r.tokens, r.label, r.key or ""))
    settings_row = session.get(AgentSettings, workspace_id)
    workspace_limits = quota.limits_of(settings_row)
    workspace_left = None
    if workspace_limits.any:
        usage = quota.month_usage(session, workspace_id, None, now)
        workspace_left = _left_read(quota.left(workspace_limits, usage))
    all_latencies = [v for values in latencies.values() for v in values]
    totals = _row("total", "All", overall, all_latencies, workspace_left)
    return UsageReport(
        from_=begin,
        to=finish,
        group_by=group_by,
        timezone=zone_name,
        currency=CURRENCY,
        rows=rows,
        totals=totals,
    )


def _row(
    key: str | None,
    label: str,
    totals: _Totals,
    latencies: list[int],
    quota_left: QuotaLeftRead | None,
) -> UsageRow:
    return UsageRow(
        key=key,
        label=label,
        runs=totals.runs,
        calls=totals.calls,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        tokens=totals.input_tokens + totals.output_tokens,
        cost=from_micros(totals.cost_micros),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        quota_left=quota_left,
    )


def _labels(
    session: Session,
    group_by: UsageGroup,
    workspace_id: uuid.UUID,
    where: tuple[ColumnElement[bool], ...],
) -> dict[str | None, str]:
    """A name for each key: an agent's or provider's name now, else the one the ledger
    copied when it last called (the agent or provider may be gone)."""
    if group_by == "agent":
        labels: dict[str | None, str] = {None: "provider tests"}
        copied = select(LedgerEntry.agent_id, func.max(LedgerEntry.agent_name)).where(*where)
        for agent_id, name in session.execute(copied.group_by(LedgerEntry.agent_id)):
            if agent_id is not None:
                labels[str(agent_id)] = name or str(agent_id)
        current = select(Agent.id, Agent.name).where(Agent.workspace_id == workspace_id)
        for agent_id, name in session.execute(current):
            if str(agent_id) in labels:
                labels[str(agent_id)] = name
        return labels
    if group_by == "provider":
        copied = select(LedgerEntry.provider_id, func.max(LedgerEntry.provider_name)).where(*where)
        return {
            _key(provider_id, group_by): name
            for provider_id, name in session.execute(copied.group_by(LedgerEntry.provider_id))
        }
    return {}


def _agent_quota_left(
    session: Session, workspace_id: uuid.UUID, keys: list[str | None], now: datetime
) -> dict[str | None, QuotaLeftRead]:
    lefts: dict[str | None, QuotaLeftRead] = {}
    ids = [uuid.UUID(k) for k in keys if k is not None]
    if not ids:
        return lefts
    agents = session.scalars(
        select(Agent).where(Agent.workspace_id == workspace_id, Agent.id.in_(ids))
    )
    for agent in agents:
        limits = quota.limits_of(agent)
        if limits.any:
            usage = quota.month_usage(session, workspace_id, agent.id, now)
            lefts[str(agent.id)] = _left_read(quota.left(limits, usage))
    return lefts


def _left_read(left: quota.QuotaLeft) -> QuotaLeftRead:
    cost = left.cost_micros
    return QuotaLeftRead(
        drafts=left.drafts,
        tokens=left.tokens,
        cost=None if cost is None else from_micros(cost),
    )
