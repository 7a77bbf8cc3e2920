"""One run of an agent, from its reservation to its draft.

A run goes through the job runner's three steps (herald.jobs.runner), so no database
transaction is open while the provider works (DESIGN §2)::

    start     (the request or the scheduler)  reserve the quota, record the run and its
                                              job; the job is sent after commit
    prepare   (one transaction)               claim the run (reserved → running), claim
                                              its items for the agent, read the provider
    call      (no transaction)                the provider, retried with back-off while its
                                              errors are retryable
    record    (one transaction)               every call into the ledger; the draft, its
                                              SEO metrics and its items; the run settled
                                              (its reservation released); auto-publish

A run that fails releases its items (another run of the agent may use them) and its
reservation; the ledger keeps every call it made. A run left holding a reservation by a
worker that died is settled as failed by the scheduler (:func:`settle_abandoned`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from herald.agents import reserve
from herald.agents.models import (
    HOLDING_STATES,
    Agent,
    AgentRun,
    AgentSettings,
    ReviewMode,
    RunItem,
    RunState,
    RunTrigger,
)
from herald.agents.prices import Prices
from herald.agents.provider_service import (
    append_ledger,
    config_for,
    mark_needs_reconnect,
    prices_of,
)
from herald.agents.providers.base import (
    CallRecord,
    ErrorKind,
    Generation,
    GenerationRequest,
    ProviderConfig,
    ProviderError,
    SourceText,
)
from herald.agents.providers.registry import provider_for
from herald.agents.service import effective_provider
from herald.core.clock import utcnow
from herald.core.errors import HeraldError, InvalidInput
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import READY_STATES, Job
from herald.jobs.runner import JobFailed
from herald.posts.models import Post, PostState
from herald.posts.service import measure
from herald.scheduling.slots import queue_post
from herald.sources.models import ItemUse, Source, SourceItem
from herald.users.models import Role, User
from herald.users.principal import Principal
from herald.webhooks import outbox
from herald.worker import app as celery_app

log = logging.getLogger(__name__)

GENERATE_TASK = "herald.agents.generate"
JOB_KIND = "agent.generate"

# How many of its sources' newest unused items a run draws on.
ITEMS_PER_RUN = 5
# Attempts at a provider call whose errors are retryable, and the longest wait between
# two: a server asking for a longer wait (Retry-After) fails the run with its reason.
MAX_ATTEMPTS = 3
MAX_WAIT_SECONDS = 60.0
# A run still holding its reservation this long after it was made lost its worker.
ABANDONED_AFTER = timedelta(hours=2)


# -- start ------------------------------------------------------------------------------


def _workspace_items(
    session: Session, workspace_id: uuid.UUID, item_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    found = set(
        session.scalars(
            select(SourceItem.id).where(
                SourceItem.id.in_(item_ids), SourceItem.workspace_id == workspace_id
            )
        )
    )
    missing = [str(i) for i in item_ids if i not in found]
    if missing:
        raise InvalidInput(f"No item {', '.join(missing)}.", field="item_ids")
    return list(dict.fromkeys(item_ids))


def start_run(
    session: Session,
    agent: Agent,
    *,
    trigger: RunTrigger,
    owner_id: uuid.UUID | None = None,
    topic: str | None = None,
    keyword: str | None = None,
    item_ids: list[uuid.UUID] | None = None,
    scheduled_for: datetime | None = None,
) -> AgentRun:
    """Reserve the quota and record the run and its job; the job goes to the
    `generation` queue after commit. Raises QuotaExceeded (nothing recorded)."""
    if item_ids:
        item_ids = _workspace_items(session, agent.workspace_id, item_ids)
    now = utcnow()
    run = reserve.reserve(
        session,
        agent,
        trigger=trigger,
        now=now,
        topic=topic,
        keyword=keyword,
        item_ids=item_ids,
        scheduled_for=scheduled_for,
    )
    job = jobs.create_job(
        session,
        workspace_id=agent.workspace_id,
        owner_id=owner_id,
        kind=JOB_KIND,
        params={"run_id": str(run.id), "agent_id": str(agent.id)},
    )
    run.job_id = job.id
    job_id = job.id
    after_commit(session, lambda: celery_app.send_task(GENERATE_TASK, (job_id,), task_id=job_id))
    return run


def runs_for_items(
    session: Session, agent_id: uuid.UUID, item_ids: list[uuid.UUID]
) -> dict[str, Any]:
    """One run per item a source handed over, its title the topic; a refusal (quota, a
    provider needing reconnecting) is recorded on the agent's runs and stops the rest."""
    agent = session.get(Agent, agent_id)
    if agent is None or not agent.enabled:
        return {"skipped": True, "reason": "the agent is gone or disabled"}
    items = session.scalars(
        select(SourceItem).where(
            SourceItem.id.in_(item_ids), SourceItem.workspace_id == agent.workspace_id
        )
    ).all()
    started: list[str] = []
    for item in sorted(items, key=lambda i: item_ids.index(i.id)):
        try:
            with session.begin_nested():
                run = start_run(
                    session,
                    agent,
                    trigger=RunTrigger.SOURCE,
                    owner_id=agent.created_by,
                    topic=item.title[:300] or None,
                    item_ids=[item.id],
                )
        except HeraldError as exc:
            reserve.refused(
                session, agent, trigger=RunTrigger.SOURCE, now=utcnow(), error=exc.message
            )
            return {"runs": started, "refused": exc.message}
        started.append(str(run.id))
    return {"runs": started}


# -- prepare ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    run_id: uuid.UUID
    request: GenerationRequest
    config: ProviderConfig
    prices: Prices


def _claim_items(session: Session, run: AgentRun, agent: Agent) -> list[SourceItem]:
    """The run's items, each claimed for the agent (an item serves an agent once): those
    asked for, else the newest its sources brought that the agent has not used."""
    if run.item_ids:
        wanted = [uuid.UUID(i) for i in run.item_ids]
        by_id = {
            item.id: item
            for item in session.scalars(
                select(SourceItem).where(
                    SourceItem.id.in_(wanted), SourceItem.workspace_id == agent.workspace_id
                )
            )
        }
        candidates = [by_id[i] for i in wanted if i in by_id]
    else:
        used = exists().where(RunItem.agent_id == agent.id, RunItem.item_id == SourceItem.id)
        candidates = list(
            session.scalars(
                select(SourceItem)
                .join(Source, Source.id == SourceItem.source_id)
                .where(
                    Source.workspace_id == agent.workspace_id,
                    Source.id.in_([uuid.UUID(s) for s in agent.source_ids]),
                    ~used,
                )
                .order_by(SourceItem.sort_at.desc(), SourceItem.id.desc())
                .limit(ITEMS_PER_RUN * 2)
            )
        )
    claimed: list[SourceItem] = []
    for item in candidates:
        if len(claimed) >= ITEMS_PER_RUN and not run.item_ids:
            break
        try:
            with session.begin_nested():
                session.add(
                    RunItem(
                        run_id=run.id, item_id=item.id, agent_id=agent.id, position=len(claimed)
                    )
                )
        except IntegrityError:
            continue  # used by an earlier run of the agent, or claimed by one running now
        claimed.append(item)
    return claimed


def _source_names(session: Session, items: list[SourceItem]) -> dict[uuid.UUID, str]:
    ids = {item.source_id for item in items if item.source_id}
    if not ids:
        return {}
    return {
        row.id: row.title or row.name
        for row in session.execute(
            select(Source.id, Source.title, Source.name).where(Source.id.in_(ids))
        )
    }


def _instructions(settings: AgentSettings | None, agent: Agent) -> str | None:
    parts = [
        text.strip()
        for text in (settings.instructions if settings else None, agent.instructions)
        if text and text.strip()
    ]
    return "\n\n".join(parts) or None


def prepare(session: Session, job: Job) -> Prepared:
    run_id = uuid.UUID(job.params["run_id"])
    claimed = session.execute(
        update(AgentRun)
        .where(AgentRun.id == run_id, AgentRun.state == RunState.RESERVED)
        .values(state=RunState.RUNNING, started_at=utcnow())
    )
    if not getattr(claimed, "rowcount", 0):
        raise JobFailed(f"run {run_id} is not waiting to run (settled or cancelled)")
    run = session.get_one(AgentRun, run_id)
    agent = session.get(Agent, run.agent_id)
    if agent is None:
        raise JobFailed("the agent was deleted")
    settings = session.get(AgentSettings, agent.workspace_id)
    items = _claim_items(session, run, agent)
    if run.item_ids and not items:
        _fail(session, run, "every item asked for was already used by this agent")
        raise JobFailed("every item asked for was already used by this agent")
    names = _source_names(session, items)
    keywords = list(agent.keywords)
    if run.keyword and run.keyword not in keywords:
        keywords.insert(0, run.keyword)
    request = GenerationRequest(
        topic=run.topic or agent.topic or (items[0].title if items else agent.name),
        keywords=keywords,
        keyword=run.keyword,
        tone=agent.tone,
        target_words=agent.target_words,
        language=agent.language,
        instructions=_instructions(settings, agent),
        items=[
            SourceText(
                id=item.id,
                title=item.title,
                text=item.summary_text,
                link=item.link,
                author=item.author,
                source_name=names.get(item.source_id, "") if item.source_id else "",
                published_at=item.published_at,
            )
            for item in items
        ],
        max_output_tokens=reserve.output_budget(agent.target_words),
    )
    provider, _origin = effective_provider(session, agent)
    config = config_for(session, agent.workspace_id, provider.id if provider else None)
    return Prepared(run.id, request, config, prices_of(session, config))


# -- call -------------------------------------------------------------------------------


@dataclass
class Outcome:
    prepared: Prepared
    calls: list[CallRecord] = field(default_factory=list)
    generation: Generation | None = None
    seo: dict[str, Any] | None = None  # the draft's, measured here: no transaction is open
    error: str | None = None
    error_kind: ErrorKind | None = None


def _retryable(exc: BaseException) -> bool:
    return (
        isinstance(exc, ProviderError)
        and exc.kind is ErrorKind.RETRYABLE
        and (exc.retry_after is None or exc.retry_after <= MAX_WAIT_SECONDS)
    )


_backoff = wait_exponential_jitter(initial=1, max=MAX_WAIT_SECONDS)


def _wait(state: RetryCallState) -> float:
    """The server's Retry-After when it sent one, else exponential back-off with jitter."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ProviderError) and exc.retry_after is not None:
        return exc.retry_after
    return float(_backoff(state))


def call(prepared: Prepared, *, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Ask the provider, retrying retryable errors; every call is kept for the ledger.
    Never raises: whatever goes wrong is the outcome's error, so the run is settled."""
    outcome = Outcome(prepared)
    provider = provider_for(prepared.config)

    def attempt() -> Generation:
        try:
            generation = provider.generate(prepared.request)
        except ProviderError as exc:
            outcome.calls.append(exc.call)
            raise
        outcome.calls.append(generation.call)
        return generation

    retrying = Retrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(MAX_ATTEMPTS),
        wait=_wait,
        sleep=sleep,
        reraise=True,
    )
    try:
        outcome.generation = retrying(attempt)
        draft, request = outcome.generation.draft, prepared.request
        outcome.seo = measure(
            draft.title, draft.body, draft.excerpt, request.keywords, request.language
        )
    except ProviderError as exc:
        outcome.error, outcome.error_kind = exc.message, exc.kind
        if (
            exc.kind is ErrorKind.RETRYABLE
            and exc.retry_after
            and exc.retry_after > MAX_WAIT_SECONDS
        ):
            outcome.error += f" (the server asks to wait {exc.retry_after:g} s; try again later)"
    except Exception as exc:  # a bug or a time limit: the run is still settled
        log.exception("agent run %s failed", prepared.run_id)
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


# -- record -----------------------------------------------------------------------------


def _ledger(session: Session, run: AgentRun, agent_name: str, outcome: Outcome) -> None:
    """Append one ledger row per call, and settle the run's totals from them."""
    config, prices = outcome.prepared.config, outcome.prepared.prices
    for call in outcome.calls:
        entry = append_ledger(
            session,
            workspace_id=run.workspace_id,
            config=config,
            call=call,
            prices=prices,
            agent_id=run.agent_id,
            agent_name=agent_name,
            run_id=run.id,
        )
        run.input_tokens += entry.input_tokens
        run.output_tokens += entry.output_tokens
        run.cost_micros += entry.cost_micros
        run.latency_ms = entry.latency_ms
    run.attempts = len(outcome.calls)


def _fail(session: Session, run: AgentRun, error: str) -> None:
    """Settle the run as failed: its items go back to the agent's pool, its reservation
    is released."""
    session.execute(delete(RunItem).where(RunItem.run_id == run.id))
    run.state = RunState.FAILED
    run.error = error
    run.finished_at = utcnow()
    session.flush()


def _author(session: Session, agent: Agent) -> Principal | None:
    """Whom auto-publish deliveries are requested as: the agent's maker, else the
    workspace's first admin."""
    user = session.get(User, agent.created_by) if agent.created_by else None
    if user is None or not user.is_active:
        user = session.scalars(
            select(User)
            .where(User.workspace_id == agent.workspace_id, User.role == Role.ADMIN, User.is_active)
            .order_by(User.created_at)
            .limit(1)
        ).first()
    if user is None:
        return None
    return Principal(user.id, user.workspace_id, user.email, user.role)


def _auto_publish(session: Session, agent: Agent, post: Post) -> str | None:
    """Queue the draft into each target channel's next free slot; the reason it could
    not be, else None."""
    principal = _author(session, agent)
    channel_ids = [uuid.UUID(c) for c in agent.channel_ids]
    if principal is None or not channel_ids:
        return "no channel or no user to publish as"
    try:
        # A savepoint: a channel without a free slot undoes the slots taken before it.
        # (queue_post takes every slot before it requests a delivery, so nothing sent
        # after commit is registered by then.)
        with session.begin_nested():
            queue_post(session, principal, post.id, channel_ids)
    except HeraldError as exc:
        return exc.message
    return None


def _draft(
    session: Session, run: AgentRun, agent: Agent, generation: Generation, outcome: Outcome
) -> Post:
    draft, request = generation.draft, outcome.prepared.request
    items = list(
        session.scalars(
            select(SourceItem)
            .join(RunItem, RunItem.item_id == SourceItem.id)
            .where(RunItem.run_id == run.id)
            .order_by(RunItem.position)
        )
    )
    post = Post(
        workspace_id=agent.workspace_id,
        author_id=None,
        title=draft.title[:300],
        body=draft.body,
        excerpt=draft.excerpt[:2000] or None,
        canonical_url=items[0].link[:2048] if len(items) == 1 and items[0].link else None,
        short_body=draft.short_text[:500] or None,
        language=agent.language,
        keywords=list(request.keywords),
        seo=outcome.seo,
        agent_id=agent.id,
        agent_run_id=run.id,
        state=PostState.IN_REVIEW if agent.review == ReviewMode.REQUIRED else PostState.DRAFT,
    )
    post.tags = list(dict.fromkeys(k.strip()[:100] for k in request.keywords if k.strip()))
    session.add(post)
    session.flush()
    for item in items:
        session.add(ItemUse(item_id=item.id, post_id=post.id, agent_id=agent.id))
    session.flush()
    return post


def record(session: Session, job: Job, outcome: Outcome) -> dict[str, Any]:
    run = session.get_one(AgentRun, outcome.prepared.run_id)
    agent = session.get(Agent, run.agent_id)
    agent_name = agent.name if agent else ""
    config = outcome.prepared.config
    run.provider_id, run.provider_kind = config.id, config.kind
    run.model = outcome.calls[-1].model if outcome.calls else config.model
    _ledger(session, run, agent_name, outcome)
    if outcome.error_kind is ErrorKind.AUTH:
        mark_needs_reconnect(session, config.id, outcome.error or "the key was refused")
    if agent is not None:
        agent.last_run_at = utcnow()
    if outcome.generation is None or agent is None:
        error = outcome.error or "the agent was deleted while it ran"
        _fail(session, run, error)
        raise JobFailed(error)
    post = _draft(session, run, agent, outcome.generation, outcome)
    run.post_id = post.id
    run.state = RunState.SUCCEEDED
    run.finished_at = utcnow()
    not_queued = None
    if agent.review == ReviewMode.AUTO_PUBLISH:
        not_queued = _auto_publish(session, agent, post)
        session.refresh(post, ["state"])  # publishing moves it with Core statements
        if not_queued:
            # Drafted, but it cannot go out as asked: a person decides.
            post.state = PostState.IN_REVIEW
            run.error = f"drafted, not queued: {not_queued}"
    session.flush()
    outbox.record(
        session,
        agent.workspace_id,
        "draft.created",
        {
            "post_id": post.id,
            "agent_id": agent.id,
            "run_id": run.id,
            "title": post.title,
            "state": str(post.state),
        },
    )
    seo = post.seo or {}
    return {
        "success": True,
        "post_id": str(post.id),
        "title": post.title,
        "word_count": seo.get("word_count"),
        "status": post.state.value if isinstance(post.state, PostState) else str(post.state),
        "run_id": str(run.id),
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "cost": run.cost_micros / 1_000_000,
        "attempts": run.attempts,
        **({"not_queued": not_queued} if not_queued else {}),
    }


# -- runs that lost their worker ---------------------------------------------------------


def settle_abandoned(session: Session, now: datetime) -> int:
    """Fail runs still holding a reservation whose job has ended (a worker killed past
    its time limit), or that are older than ABANDONED_AFTER: their reservations would
    otherwise count against the quota for the rest of the month."""
    ended = select(Job.id).where(Job.id == AgentRun.job_id, Job.state.in_(list(READY_STATES)))
    stale = list(
        session.scalars(
            select(AgentRun).where(
                AgentRun.state.in_(list(HOLDING_STATES)),
                (AgentRun.created_at < now - ABANDONED_AFTER) | ended.exists(),
            )
        )
    )
    for run in stale:
        _fail(session, run, "the run's worker stopped before it finished; nothing was drafted")
    return len(stale)
