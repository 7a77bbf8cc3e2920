"""Agents, the providers they call, their runs and the usage ledger.

Money is kept in integer micro-units of the price table's currency (USD by default):
a price per million tokens times a token count is micro-units exactly, and sums of
integers do not drift.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from herald.core.clock import utcnow
from herald.core.db import Base, IdMixin, TimestampMixin


class ProviderKind(StrEnum):
    OPENAI = "openai"  # any OpenAI-compatible chat-completions endpoint
    DIGEST = "digest"  # offline extractive digest, no model


class ProviderState(StrEnum):
    ACTIVE = "active"
    NEEDS_RECONNECT = "needs_reconnect"  # the endpoint refused the key (401/403)


class ReviewMode(StrEnum):
    REQUIRED = "required"  # drafts wait in_review until approved
    AUTO_PUBLISH = "auto_publish"  # drafts go straight into the channels' next free slots


class RunState(StrEnum):
    RESERVED = "reserved"  # quota reserved, job sent, not started
    RUNNING = "running"  # the job is calling the provider
    SUCCEEDED = "succeeded"  # a draft was made
    FAILED = "failed"  # the provider or the job failed; the reservation is released
    REFUSED = "refused"  # over quota: refused before any provider call


# The runs whose reservation still counts against a quota.
HOLDING_STATES = frozenset({RunState.RESERVED, RunState.RUNNING})


class RunTrigger(StrEnum):
    MANUAL = "manual"  # POST /tasks/generate-post, herald agent run
    SCHEDULE = "schedule"  # a cron occurrence
    SOURCE = "source"  # a source's auto-generate


class Provider(IdMixin, TimestampMixin, Base):
    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    # Indexed by the unique (workspace_id, name) it leads.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[ProviderKind] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    # MultiFernet token of {"api_key": ...}; never returned.
    api_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Per million tokens; None: the price table's entry for the model (agents.prices).
    input_price_per_million: Mapped[float | None]
    output_price_per_million: Mapped[float | None]
    timeout_seconds: Mapped[float] = mapped_column(default=60.0)
    state: Mapped[ProviderState] = mapped_column(String(20), default=ProviderState.ACTIVE)
    state_reason: Mapped[str | None] = mapped_column(Text)


class AgentSettings(Base):
    """A workspace's defaults for its agents, and its own monthly quota."""

    __tablename__ = "agent_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    # None: the built-in digest.
    default_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("providers.id", ondelete="SET NULL")
    )
    instructions: Mapped[str | None] = mapped_column(Text)  # the brand voice
    # Quota months are calendar months in this zone.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quota_drafts_per_month: Mapped[int | None]
    quota_tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    quota_cost_micros_per_month: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Agent(IdMixin, TimestampMixin, Base):
    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        # The scheduler's one query: enabled agents whose next occurrence has come.
        Index("ix_agents_due", "enabled", "next_run_at"),
    )

    # Indexed by the unique (workspace_id, name) it leads.
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # Who made it: auto-publish deliveries are requested in their name.
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    tone: Mapped[str | None] = mapped_column(String(100))
    target_words: Mapped[int] = mapped_column(default=600)
    language: Mapped[str] = mapped_column(String(16), default="en")
    instructions: Mapped[str | None] = mapped_column(Text)
    # Ids (as strings) of the workspace's sources and channels; ones since deleted are
    # skipped when the agent runs.
    source_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    channel_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    schedule_cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # The next cron occurrence (UTC); None without a schedule or when disabled.
    next_run_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    # None: the workspace's default provider.
    provider_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("providers.id", ondelete="SET NULL")
    )
    review: Mapped[ReviewMode] = mapped_column(String(20), default=ReviewMode.REQUIRED)
    quota_drafts_per_month: Mapped[int | None]
    quota_tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    quota_cost_micros_per_month: Mapped[int | None] = mapped_column(BigInteger)
    last_run_at: Mapped[datetime | None]


class AgentRun(IdMixin, Base):
    """One generation: reserved, run, settled. A cron occurrence has at most one run
    (unique agent and ``scheduled_for``), however many schedulers see it."""

    __tablename__ = "agent_runs"
    __table_args__ = (
        UniqueConstraint("agent_id", "scheduled_for"),
        Index("ix_agent_runs_agent_created", "agent_id", "created_at", "id"),
        # Quota sums: a workspace's runs in a month, and those still holding a reservation.
        Index("ix_agent_runs_workspace_created", "workspace_id", "created_at"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    trigger: Mapped[RunTrigger] = mapped_column(String(20))
    # The cron occurrence this run is for (UTC); None for other triggers.
    scheduled_for: Mapped[datetime | None]
    state: Mapped[RunState] = mapped_column(String(20), default=RunState.RESERVED)
    topic: Mapped[str | None] = mapped_column(Text)
    keyword: Mapped[str | None] = mapped_column(String(200))
    # Items asked for (ids as strings); empty: the agent's sources' newest unused ones.
    item_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What the run reserved against the quotas before calling (released when settled).
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    # Settled from the ledger rows of its provider calls.
    provider_id: Mapped[uuid.UUID | None]
    provider_kind: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    post_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class RunItem(Base):
    """An item an agent's run draws on, claimed before the provider call: an item is used
    once per agent. A failed run's claims are deleted, so its items can be used again."""

    __tablename__ = "agent_run_items"
    __table_args__ = (UniqueConstraint("agent_id", "item_id"),)

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agent_runs.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("source_items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)


class LedgerEntry(IdMixin, Base):
    """One provider call: appended once, never updated. Names are copied in, so the
    history reads the same after an agent or a provider is deleted."""

    __tablename__ = "usage_ledger"
    __table_args__ = (Index("ix_usage_ledger_workspace_at", "workspace_id", "at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    agent_id: Mapped[uuid.UUID | None]
    agent_name: Mapped[str | None] = mapped_column(String(100))
    run_id: Mapped[uuid.UUID | None]
    # "generate" for a run's call, "test" for a provider test.
    purpose: Mapped[str] = mapped_column(String(20), default="generate")
    provider_id: Mapped[uuid.UUID | None]
    provider_name: Mapped[str] = mapped_column(String(100))
    provider_kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # True when the answer carried no usage and the tokens were counted by estimate.
    estimated: Mapped[bool] = mapped_column(default=False)
    input_price_per_million: Mapped[float] = mapped_column(default=0.0)
    output_price_per_million: Mapped[float] = mapped_column(default=0.0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(default=0)
    # "ok", or the failure's class: "retryable", "auth", "permanent".
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
