"""Quota reservations: a run reserves what it may spend before any provider call.

The reservation is the most a run can use: its prompt's budget plus the answer's cap
(sent as ``max_tokens``), priced by the provider's prices. Checking the quotas and
recording the reservation happen in one transaction that holds the workspace's lock
(``FOR UPDATE`` on its ``agent_settings`` row on PostgreSQL; on SQLite every write
transaction is already the only writer), so two runs can never both pass a nearly spent
quota. Settling the run (herald.agents.generate) replaces the reservation with the
ledger's real usage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.agents.models import (
    Agent,
    AgentRun,
    AgentSettings,
    Provider,
    ProviderState,
    RunState,
    RunTrigger,
)
from herald.agents.prices import cost_micros
from herald.agents.prompt import PROMPT_TOKENS
from herald.agents.provider_service import BUILTIN_DIGEST, prices_of, provider_prices
from herald.agents.providers.base import Usage
from herald.agents.quota import MonthUsage, month_usage
from herald.agents.service import effective_provider
from herald.core.errors import Conflict, TooManyRequests
from herald.scheduling.slots import load_zone

# The most a prompt holds (its items are cut to fit), by the same estimate.
INPUT_BUDGET_TOKENS = PROMPT_TOKENS


class QuotaExceeded(TooManyRequests):
    slug = "quota-exceeded"


def output_budget(target_words: int) -> int:
    """The answer's cap in tokens: about 1.3 tokens a word in English, more in most other
    languages, plus the Markdown around the words."""
    return int(target_words * 1.6) + 300


@dataclass(frozen=True)
class Estimate:
    tokens: int
    cost_micros: int
    max_output_tokens: int


def estimate(session: Session, provider: Provider | None, agent: Agent) -> Estimate:
    out = output_budget(agent.target_words)
    usage = Usage(input_tokens=INPUT_BUDGET_TOKENS, output_tokens=out)
    prices = provider_prices(provider) if provider else prices_of(session, BUILTIN_DIGEST)
    return Estimate(usage.total, cost_micros(usage, prices), out)


def lock_workspace(session: Session, workspace_id: uuid.UUID) -> AgentSettings:
    """The workspace's agent settings, made if missing, locked for this transaction."""
    query = select(AgentSettings).where(AgentSettings.workspace_id == workspace_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        try:
            with session.begin_nested():
                session.execute(insert(AgentSettings).values(workspace_id=workspace_id))
        except IntegrityError:
            pass  # made by a concurrent transaction: lock that one
        row = session.scalars(query.execution_options(populate_existing=True)).one()
    return row


def _money(micros: int) -> str:
    return f"{micros / 1_000_000:.2f}"


def _over(
    who: str,
    used: MonthUsage,
    want: Estimate,
    drafts: int | None,
    tokens: int | None,
    cost: int | None,
) -> str | None:
    """Which limit this run would pass, in words; None when it fits."""
    if drafts is not None and used.drafts + 1 > drafts:
        return f"{who} has made {used.drafts} of its {drafts} drafts this month"
    if tokens is not None and used.tokens + want.tokens > tokens:
        return (
            f"{who} has used {used.tokens:,} of its {tokens:,} tokens this month and a run "
            f"may use up to {want.tokens:,}"
        )
    if cost is not None and used.cost_micros + want.cost_micros > cost:
        return (
            f"{who} has spent {_money(used.cost_micros)} of its {_money(cost)} this month and "
            f"a run may cost up to {_money(want.cost_micros)}"
        )
    return None


def check(
    session: Session, agent: Agent, settings: AgentSettings, want: Estimate, now: datetime
) -> None:
    """Raise QuotaExceeded when this run would pass the agent's or the workspace's limit
    (what has been spent this month plus what running runs hold)."""
    zone = settings.timezone
    agent_used = month_usage(session, agent.workspace_id, agent.id, now, zone)
    reason = _over(
        f"Agent {agent.name!r}",
        agent_used,
        want,
        agent.quota_drafts_per_month,
        agent.quota_tokens_per_month,
        agent.quota_cost_micros_per_month,
    )
    if reason is None:
        used = month_usage(session, agent.workspace_id, None, now, zone)
        reason = _over(
            "The workspace",
            used,
            want,
            settings.quota_drafts_per_month,
            settings.quota_tokens_per_month,
            settings.quota_cost_micros_per_month,
        )
    else:
        used = agent_used
    if reason is not None:
        resets = used.month_end.astimezone(load_zone(zone))
        raise QuotaExceeded(
            f"{reason}; the quota resets on {resets:%Y-%m-%d %H:%M} {zone}. Raise the "
            "quota (PATCH the agent, or /api/v1/agent-settings) or wait until then.",
            retry_after=int((used.month_end - now).total_seconds()),
        )


def reserve(
    session: Session,
    agent: Agent,
    *,
    trigger: RunTrigger,
    now: datetime,
    topic: str | None = None,
    keyword: str | None = None,
    item_ids: list[uuid.UUID] | None = None,
    scheduled_for: datetime | None = None,
) -> AgentRun:
    """Check the quotas and record a run holding its reservation. Raises QuotaExceeded,
    or Conflict for a provider that needs reconnecting; the caller decides whether a
    refusal is recorded (:func:`refused`)."""
    settings = lock_workspace(session, agent.workspace_id)
    provider, _origin = effective_provider(session, agent)
    if provider is not None and provider.state == ProviderState.NEEDS_RECONNECT:
        raise Conflict(
            f"Provider {provider.name!r} needs reconnecting ({provider.state_reason}); "
            "update its key (PATCH /api/v1/providers/{id}) and run the agent again."
        )
    want = estimate(session, provider, agent)
    check(session, agent, settings, want, now)
    run = AgentRun(
        workspace_id=agent.workspace_id,
        agent_id=agent.id,
        trigger=trigger,
        scheduled_for=scheduled_for,
        state=RunState.RESERVED,
        topic=topic,
        keyword=keyword,
        item_ids=[str(i) for i in item_ids or []],
        reserved_tokens=want.tokens,
        reserved_cost_micros=want.cost_micros,
        created_at=now,
    )
    session.add(run)
    session.flush()
    return run


def refused(
    session: Session,
    agent: Agent,
    *,
    trigger: RunTrigger,
    now: datetime,
    error: str,
    scheduled_for: datetime | None = None,
) -> AgentRun:
    """Record a run refused before it started (over quota, its provider refusing its
    key), for a run nobody asked for in person: its reason is read in the agent's runs."""
    run = AgentRun(
        workspace_id=agent.workspace_id,
        agent_id=agent.id,
        trigger=trigger,
        scheduled_for=scheduled_for,
        state=RunState.REFUSED,
        error=error,
        created_at=now,
        finished_at=now,
    )
    session.add(run)
    session.flush()
    return run
