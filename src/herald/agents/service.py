"""Agents: create, read, update, delete; their runs; the workspace's agent settings.

Ids an agent refers to (sources, channels, a provider) must be the workspace's own: one
that is not is a 422 naming the field, the same answer as for an id that does not exist.
Managing agents and the settings is for admins and members (a reviewer gets 403).

``next_run_at`` is the agent's next cron occurrence after now, set when the schedule,
its zone or ``enabled`` changes; the scheduler claims due agents by it and moves it on
with :func:`next_occurrence`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from herald.agents import cron
from herald.agents.models import (
    Agent,
    AgentRun,
    AgentSettings,
    Provider,
    ProviderKind,
    ReviewMode,
)
from herald.agents.quota import DEFAULT_ZONE
from herald.agents.schemas import (
    AgentCreate,
    AgentRead,
    AgentSettingsRead,
    AgentSettingsUpdate,
    AgentUpdate,
    ProviderRef,
    QuotaIn,
    QuotaRead,
    RunRead,
    from_micros,
    to_micros,
)
from herald.channels.models import Channel
from herald.core.clock import utcnow
from herald.core.db import flush_unique, own_row, own_rows, resolve_ref
from herald.core.errors import InvalidInput
from herald.core.pagination import decode_cursor, encode_cursor
from herald.scheduling.slots import zone_or_422
from herald.sources.models import Source
from herald.users.principal import Principal

NEXT_RUNS = 3
DIGEST = ProviderRef(id=None, name="digest", kind=ProviderKind.DIGEST, origin="builtin")
AUTO_PUBLISH_NEEDS_CHANNELS = (
    "auto_publish needs channel_ids: the channels its drafts are published to."
)


# -- checks -------------------------------------------------------------------------------


def _own_ids(
    session: Session,
    model: type[Source] | type[Channel],
    principal: Principal,
    ids: list[uuid.UUID],
    field: str,
    noun: str,
) -> list[str]:
    """``ids`` without duplicates, as stored (strings), once each is the workspace's."""
    unique = list(dict.fromkeys(ids))
    found = set(
        session.scalars(
            select(model.id).where(
                model.workspace_id == principal.workspace_id, model.id.in_(unique)
            )
        )
        if unique
        else ()
    )
    for wanted in unique:
        if wanted not in found:
            raise InvalidInput(f"{field}: no {noun} {wanted} in this workspace.", field=field)
    return [str(i) for i in unique]


def own_provider(
    session: Session, principal: Principal, provider_id: uuid.UUID, field: str
) -> Provider:
    provider = session.get(Provider, provider_id)
    if provider is None or provider.workspace_id != principal.workspace_id:
        raise InvalidInput(f"{field}: no provider {provider_id} in this workspace.", field=field)
    return provider


def _schedule(expr: str | None, zone: str) -> str | None:
    """The cron expression normalised and the zone checked (422s naming the field)."""
    zone_or_422(zone, field="timezone", where="body")
    if expr is None:
        return None
    try:
        return cron.parse(expr)
    except ValueError as exc:
        raise InvalidInput(f"schedule_cron: {exc}", field="schedule_cron") from None


def next_occurrence(agent: Agent, after: datetime) -> datetime | None:
    """The agent's next cron occurrence after ``after`` (UTC); None without a schedule or
    when disabled."""
    if not agent.enabled or not agent.schedule_cron:
        return None
    return cron.next_run(agent.schedule_cron, agent.timezone, after)


def _set_quota(row: Agent | AgentSettings, quota: QuotaIn) -> None:
    """Only the limits given change (null: no limit)."""
    given = quota.model_fields_set
    if "drafts_per_month" in given:
        row.quota_drafts_per_month = quota.drafts_per_month
    if "tokens_per_month" in given:
        row.quota_tokens_per_month = quota.tokens_per_month
    if "cost_per_month" in given:
        row.quota_cost_micros_per_month = to_micros(quota.cost_per_month)


# -- agents -------------------------------------------------------------------------------


def create_agent(session: Session, principal: Principal, body: AgentCreate) -> Agent:
    principal.require_manager()
    schedule = _schedule(body.schedule_cron, body.timezone)
    source_ids = _own_ids(session, Source, principal, body.source_ids, "source_ids", "source")
    channel_ids = _own_ids(session, Channel, principal, body.channel_ids, "channel_ids", "channel")
    if body.provider_id is not None:
        own_provider(session, principal, body.provider_id, "provider_id")
    if body.review == ReviewMode.AUTO_PUBLISH and not channel_ids:
        raise InvalidInput(AUTO_PUBLISH_NEEDS_CHANNELS, field="review")
    agent = Agent(
        workspace_id=principal.workspace_id,
        created_by=principal.user_id,
        name=body.name,
        topic=body.topic,
        keywords=body.keywords,
        tone=body.tone,
        target_words=body.target_words,
        language=body.language,
        instructions=body.instructions,
        source_ids=source_ids,
        channel_ids=channel_ids,
        schedule_cron=schedule,
        timezone=body.timezone,
        enabled=body.enabled,
        provider_id=body.provider_id,
        review=body.review,
    )
    _set_quota(agent, body.quota)
    agent.next_run_at = next_occurrence(agent, utcnow())
    session.add(agent)
    flush_unique(session, "agent", body.name)
    return agent


def get_agent(session: Session, principal: Principal, agent_id: uuid.UUID) -> Agent:
    return own_row(session, Agent, principal.workspace_id, agent_id, "agent")


def resolve_agent(session: Session, principal: Principal, ref: str) -> Agent:
    """An agent by its id, a unique prefix of its id, or its name (the CLI's argument)."""
    return resolve_ref(session, Agent, principal.workspace_id, ref, "agent")


def list_agents(session: Session, principal: Principal) -> list[Agent]:
    return own_rows(session, Agent, principal.workspace_id)


def update_agent(
    session: Session, principal: Principal, agent_id: uuid.UUID, body: AgentUpdate
) -> Agent:
    """Change what is given (an explicit null clears tone, instructions, the schedule and
    the provider). The next run is worked out again only when the schedule, its zone or
    ``enabled`` changes, so an edit elsewhere never skips an occurrence that is due."""
    principal.require_manager()
    agent = get_agent(session, principal, agent_id)
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("name", "topic", "keywords", "target_words", "language", "enabled", "review"):
        value = getattr(body, name)
        if value is not None:
            changes[name] = value
    for name in ("tone", "instructions"):
        if name in given:
            changes[name] = getattr(body, name)
    zone = body.timezone if body.timezone is not None else agent.timezone
    expr = body.schedule_cron if "schedule_cron" in given else agent.schedule_cron
    if {"schedule_cron", "timezone"} & given:
        changes["schedule_cron"] = _schedule(expr, zone)
        changes["timezone"] = zone
    if body.source_ids is not None:
        changes["source_ids"] = _own_ids(
            session, Source, principal, body.source_ids, "source_ids", "source"
        )
    if body.channel_ids is not None:
        changes["channel_ids"] = _own_ids(
            session, Channel, principal, body.channel_ids, "channel_ids", "channel"
        )
    if "provider_id" in given:
        if body.provider_id is not None:
            own_provider(session, principal, body.provider_id, "provider_id")
        changes["provider_id"] = body.provider_id
    review = changes.get("review", agent.review)
    if review == ReviewMode.AUTO_PUBLISH and not changes.get("channel_ids", agent.channel_ids):
        raise InvalidInput(AUTO_PUBLISH_NEEDS_CHANNELS, field="review")

    schedule_before = (agent.schedule_cron, agent.timezone, agent.enabled)
    for name, value in changes.items():
        setattr(agent, name, value)
    if body.quota is not None:
        _set_quota(agent, body.quota)
    if (agent.schedule_cron, agent.timezone, agent.enabled) != schedule_before:
        agent.next_run_at = next_occurrence(agent, utcnow())
    flush_unique(session, "agent", agent.name)
    return agent


def delete_agent(session: Session, principal: Principal, agent_id: uuid.UUID) -> None:
    """Delete the agent and its runs; its ledger rows stay (they copy its name), and its
    sources go back to drafting from items themselves (their foreign key is SET NULL)."""
    principal.require_manager()
    agent = get_agent(session, principal, agent_id)
    session.delete(agent)
    session.flush()


# -- reading ------------------------------------------------------------------------------


def agent_settings(session: Session, workspace_id: uuid.UUID) -> AgentSettings:
    """The workspace's agent settings; the defaults (not added to the session) when it
    has never changed them."""
    found = session.get(AgentSettings, workspace_id)
    if found is not None:
        return found
    return AgentSettings(
        workspace_id=workspace_id,
        default_provider_id=None,
        instructions=None,
        timezone=DEFAULT_ZONE,
        quota_drafts_per_month=None,
        quota_tokens_per_month=None,
        quota_cost_micros_per_month=None,
    )


def effective_provider(
    session: Session, agent: Agent
) -> tuple[Provider | None, Literal["agent", "workspace", "builtin"]]:
    """The provider the agent's runs use, and where it comes from: the agent's own, else
    the workspace's default, else the built-in digest (None)."""
    if agent.provider_id is not None:
        own = session.get(Provider, agent.provider_id)
        if own is not None:
            return own, "agent"
    default_id = agent_settings(session, agent.workspace_id).default_provider_id
    default = session.get(Provider, default_id) if default_id is not None else None
    if default is not None:
        return default, "workspace"
    return None, "builtin"


def _provider_ref(
    provider: Provider | None, origin: Literal["agent", "workspace", "builtin"]
) -> ProviderRef:
    if provider is None:
        return DIGEST
    return ProviderRef(id=provider.id, name=provider.name, kind=provider.kind, origin=origin)


def _quota(row: Agent | AgentSettings) -> QuotaRead:
    cost = row.quota_cost_micros_per_month
    return QuotaRead(
        drafts_per_month=row.quota_drafts_per_month,
        tokens_per_month=row.quota_tokens_per_month,
        cost_per_month=None if cost is None else from_micros(cost),
    )


def read_agent(session: Session, agent: Agent) -> AgentRead:
    zone = ZoneInfo(agent.timezone)
    upcoming = []
    if agent.enabled and agent.schedule_cron:
        upcoming = [
            at.astimezone(zone)
            for at in cron.next_runs(agent.schedule_cron, agent.timezone, utcnow(), NEXT_RUNS)
        ]
    return AgentRead(
        id=agent.id,
        name=agent.name,
        topic=agent.topic,
        keywords=agent.keywords,
        tone=agent.tone,
        target_words=agent.target_words,
        language=agent.language,
        instructions=agent.instructions,
        source_ids=[uuid.UUID(i) for i in agent.source_ids],
        channel_ids=[uuid.UUID(i) for i in agent.channel_ids],
        schedule_cron=agent.schedule_cron,
        timezone=agent.timezone,
        enabled=agent.enabled,
        provider_id=agent.provider_id,
        provider=_provider_ref(*effective_provider(session, agent)),
        review=agent.review,
        quota=_quota(agent),
        next_run_at=agent.next_run_at,
        next_runs=upcoming,
        last_run_at=agent.last_run_at,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


# -- runs ---------------------------------------------------------------------------------


def list_runs(
    session: Session,
    principal: Principal,
    agent_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[RunRead], str | None]:
    """The agent's runs, newest first, one page."""
    get_agent(session, principal, agent_id)
    query = select(AgentRun).where(AgentRun.agent_id == agent_id)
    if cursor:
        raw_at, raw_id = decode_cursor(cursor, 2)
        try:
            at, after_id = datetime.fromisoformat(str(raw_at)), uuid.UUID(str(raw_id))
        except ValueError:
            raise InvalidInput(
                "cursor is not one Herald returned; start again without it.", field="cursor"
            ) from None
        query = query.where(
            or_(AgentRun.created_at < at, and_(AgentRun.created_at == at, AgentRun.id < after_id))
        )
    rows = list(
        session.scalars(
            query.order_by(AgentRun.created_at.desc(), AgentRun.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    page = [read_run(r) for r in rows]
    next_cursor = (
        encode_cursor([rows[-1].created_at.isoformat(), str(rows[-1].id)]) if more else None
    )
    return page, next_cursor


def read_run(run: AgentRun) -> RunRead:
    return RunRead(
        id=run.id,
        state=run.state,
        trigger=run.trigger,
        scheduled_for=run.scheduled_for,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        post_id=run.post_id,
        topic=run.topic,
        keyword=run.keyword,
        provider_kind=run.provider_kind,
        model=run.model,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost=from_micros(run.cost_micros),
        latency_ms=run.latency_ms,
        attempts=run.attempts,
        error=run.error,
        job_id=run.job_id,
    )


# -- the workspace's settings -------------------------------------------------------------


def read_settings(session: Session, principal: Principal) -> AgentSettingsRead:
    row = agent_settings(session, principal.workspace_id)
    default = session.get(Provider, row.default_provider_id) if row.default_provider_id else None
    return AgentSettingsRead(
        default_provider_id=row.default_provider_id,
        default_provider=_provider_ref(default, "workspace"),
        instructions=row.instructions,
        timezone=row.timezone,
        quota=_quota(row),
        updated_at=row.updated_at if row in session else None,
    )


def update_settings(
    session: Session, principal: Principal, body: AgentSettingsUpdate
) -> AgentSettingsRead:
    """Change what is given (an explicit null clears the default provider or the
    instructions); the row is made by the first change."""
    principal.require_manager()
    given = body.model_fields_set
    if "default_provider_id" in given and body.default_provider_id is not None:
        own_provider(session, principal, body.default_provider_id, "default_provider_id")
    if body.timezone is not None:
        zone_or_422(body.timezone, field="timezone", where="body")
    row = agent_settings(session, principal.workspace_id)
    if row not in session:
        session.add(row)
    if "default_provider_id" in given:
        row.default_provider_id = body.default_provider_id
    if "instructions" in given:
        row.instructions = body.instructions
    if body.timezone is not None:
        row.timezone = body.timezone
    if body.quota is not None:
        _set_quota(row, body.quota)
    row.updated_at = utcnow()
    session.flush()
    return read_settings(session, principal)
