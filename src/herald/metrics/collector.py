"""Herald's operational metrics, read from the database and Redis when Prometheus scrapes.

Why at scrape time: Herald runs as an API, workers with prefork children and a beat, on
one host or many. A counter kept in a process counts only what that process did and
starts again at zero when it restarts; the database and Redis are what every process
shares, so a value read from them is the same whichever API process answers the scrape.
Counters here are counts of stored rows (attempts, runs): they only fall when retention
deletes rows, which Prometheus's rate() reads as a counter reset.

Histograms are bucketed in SQL (one grouped query per histogram, ``SUM(CASE ...)`` per
bucket), over every stored row: the database returns a few rows per platform whatever
the table's size, and a cumulative histogram stays monotonic, which rate() and
histogram_quantile() need (a sliding window would shrink and break them).

Redis is read before the database transaction opens (no network call while one is open).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from herald.agents.models import LedgerEntry
from herald.channels.models import Channel, ChannelState
from herald.core.clock import utcnow
from herald.core.db import read_scope
from herald.core.settings import get_settings
from herald.events.service import redis_url
from herald.jobs.models import Job
from herald.metrics import workers
from herald.publishing.models import Publication, PublicationAttempt, PublicationState
from herald.scheduling.heartbeat import SCHEDULER
from herald.scheduling.models import Heartbeat, PeriodicRun
from herald.sources.models import Source
from herald.webhooks.models import DeliveryState, Webhook, WebhookDelivery, WebhookState
from herald.worker import QUEUES, queue_keys

# Scheduled lateness (sent - due): an on-time delivery is well under a second late.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# One attempt (claim to outcome): a platform's API call, media upload included.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# A worker that has not beaten for this long is counted as down (Celery beats every 2 s).
WORKER_STALE_SECONDS = 30.0


@dataclass
class RedisView:
    """What the scrape read from Redis, before any database transaction."""

    up: bool = False
    depth: dict[str, int] = field(default_factory=dict)
    # Queue -> the task id of its oldest message (the right end: kombu LPUSHes, BRPOPs).
    oldest_task: dict[str, str] = field(default_factory=dict)
    beats: dict[str, float] = field(default_factory=dict)


def _seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return cast(func.extract("epoch", later - earlier), Float)


def _task_id(message: bytes | None) -> str | None:
    if not message:
        return None
    try:
        headers = json.loads(message).get("headers") or {}
    except (ValueError, AttributeError):
        return None
    task_id = headers.get("id")
    return task_id if isinstance(task_id, str) else None


def read_redis() -> RedisView:
    url = redis_url(get_settings().effective_broker_url)
    view = RedisView()
    if url is None:
        return view
    timeout = get_settings().redis_timeout_seconds
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        # A queue is one Redis list per message priority (herald.worker.queue_keys).
        keys = [(queue, key) for queue in QUEUES for key in queue_keys(queue)]
        with client.pipeline(transaction=False) as pipe:
            for _queue, key in keys:
                pipe.llen(key)
                pipe.lindex(key, -1)
            answers = pipe.execute()
        for index, (queue, _key) in enumerate(keys):
            view.depth[queue] = view.depth.get(queue, 0) + int(answers[2 * index])
            # The oldest of the last list served (the backlog waits longest), else of the
            # one before it.
            task_id = _task_id(answers[2 * index + 1])
            if task_id:
                view.oldest_task[queue] = task_id
        view.beats = workers.read(client)
        view.up = True
    except redis.RedisError:
        view.up = False
    finally:
        client.close()
    return view


def _histogram(
    session: Session,
    name: str,
    documentation: str,
    seconds: ColumnElement[float],
    buckets: Sequence[float],
    where: Iterable[ColumnElement[bool]],
    join_attempts: bool = False,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["platform"])
    columns: list[Any] = [Channel.platform, func.count(), func.coalesce(func.sum(seconds), 0.0)]
    columns += [func.sum(case((seconds <= bound, 1), else_=0)) for bound in buckets]
    query = select(*columns)
    if join_attempts:
        query = query.select_from(PublicationAttempt).join(
            Publication, Publication.id == PublicationAttempt.publication_id
        )
    else:
        query = query.select_from(Publication)
    query = query.join(Channel, Channel.id == Publication.channel_id)
    for row in session.execute(query.where(and_(*where)).group_by(Channel.platform)):
        platform, count, total, *below = row
        pairs = [(_le(bound), float(n or 0)) for bound, n in zip(buckets, below, strict=True)]
        pairs.append(("+Inf", float(count)))
        family.add_metric([platform], pairs, float(total or 0.0))
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def _deliveries(session: Session) -> Iterator[Metric]:
    deliveries = GaugeMetricFamily(
        "herald_deliveries",
        "Deliveries (publications) by state and platform",
        labels=["state", "platform"],
    )
    counts = {
        (state, platform): n
        for state, platform, n in session.execute(
            select(Publication.state, Channel.platform, func.count())
            .join(Channel, Channel.id == Publication.channel_id)
            .group_by(Publication.state, Channel.platform)
        )
    }
    platforms = {platform for _, platform in counts}
    for platform in sorted(platforms):
        for state in PublicationState:
            deliveries.add_metric([state.value, platform], counts.get((state, platform), 0))
    yield deliveries


def _errors(session: Session) -> Iterator[Metric]:
    errors = GaugeMetricFamily(
        "herald_delivery_errors",
        "Deliveries whose last attempt failed, by state, platform and error kind",
        labels=["state", "platform", "error_kind"],
    )
    for state, platform, kind, n in session.execute(
        select(Publication.state, Channel.platform, Publication.error_kind, func.count())
        .join(Channel, Channel.id == Publication.channel_id)
        .where(Publication.error_kind.is_not(None))
        .group_by(Publication.state, Channel.platform, Publication.error_kind)
    ):
        errors.add_metric([state, platform, str(kind)], n)
    yield errors


def _attempts(session: Session) -> Iterator[Metric]:
    attempts = CounterMetricFamily(
        "herald_delivery_attempts",
        "Delivery attempts stored, by platform and outcome (published, retry_wait, failed, "
        "unconfirmed, ...; started while one runs). A retry is an attempt after the first.",
        labels=["platform", "outcome"],
    )
    retries = CounterMetricFamily(
        "herald_delivery_retries",
        "Attempts after a delivery's first, by platform",
        labels=["platform"],
    )
    joined = (
        select(Channel.platform, PublicationAttempt.outcome, func.count())
        .select_from(PublicationAttempt)
        .join(Publication, Publication.id == PublicationAttempt.publication_id)
        .join(Channel, Channel.id == Publication.channel_id)
    )
    by_outcome = {
        (platform, outcome): n
        for platform, outcome, n in session.execute(
            joined.group_by(Channel.platform, PublicationAttempt.outcome)
        )
    }
    retry_counts: dict[str, int] = {}
    for platform, _, n in session.execute(
        joined.where(PublicationAttempt.number > 1).group_by(
            Channel.platform, PublicationAttempt.outcome
        )
    ):
        retry_counts[platform] = retry_counts.get(platform, 0) + n
    for (platform, outcome), n in sorted(by_outcome.items()):
        attempts.add_metric([platform, outcome], n)
    yield attempts
    for platform, n in sorted(retry_counts.items()):
        retries.add_metric([platform], n)
    yield retries


def _histograms(session: Session) -> Iterator[Metric]:
    dialect = session.get_bind().dialect.name
    yield _histogram(
        session,
        "herald_delivery_lateness_seconds",
        "Scheduled lateness of deliveries published at their first attempt: published_at "
        "- due_at, the time the person chose (deliveries published now, with no due time, "
        "and retried ones are not counted)",
        _seconds_between(Publication.published_at, Publication.due_at, dialect),
        LATENESS_BUCKETS,
        [
            Publication.state == PublicationState.PUBLISHED,
            Publication.published_at.is_not(None),
            Publication.due_at.is_not(None),
            # A retry moves due_at to the retry's time, and the first due time is not
            # kept: measured after a retry, lateness would be the retry's, neither the
            # person's nor the scheduler's. Retries are counted by herald_delivery_retries.
            Publication.attempt == 1,
        ],
    )
    yield _histogram(
        session,
        "herald_delivery_duration_seconds",
        "Duration of finished delivery attempts (started to finished), by platform",
        _seconds_between(PublicationAttempt.finished_at, PublicationAttempt.started_at, dialect),
        DURATION_BUCKETS,
        [PublicationAttempt.finished_at.is_not(None)],
        join_attempts=True,
    )


def _channels(session: Session) -> Iterator[Metric]:
    reconnect = GaugeMetricFamily(
        "herald_channels",
        "Channels by state and platform (needs_reconnect: a person must act)",
        labels=["state", "platform"],
    )
    for state, platform, n in session.execute(
        select(Channel.state, Channel.platform, func.count()).group_by(
            Channel.state, Channel.platform
        )
    ):
        reconnect.add_metric([state, platform], n)
    yield reconnect
    needs = GaugeMetricFamily(
        "herald_channels_needs_reconnect", "Channels whose credentials were refused"
    )
    needs.add_metric(
        [],
        session.scalar(
            select(func.count())
            .select_from(Channel)
            .where(Channel.state == ChannelState.NEEDS_RECONNECT)
        )
        or 0,
    )
    yield needs
    yield from _channel_checks(session)


def _channel_checks(session: Session) -> Iterator[Metric]:
    """The health pass (herald.channels.health): how stale the stalest active channel's
    check is (since its creation if never checked), and how many last failed."""
    age = GaugeMetricFamily(
        "herald_channel_check_age_seconds",
        "Seconds since the active channel checked longest ago was checked; absent if none",
    )
    oldest, failing = session.execute(
        select(
            func.min(func.coalesce(Channel.checked_at, Channel.created_at)),
            func.count().filter(Channel.last_check_ok.is_(False)),
        ).where(Channel.state == ChannelState.ACTIVE)
    ).one()
    if oldest is not None:
        age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()))
    yield age
    failed = GaugeMetricFamily(
        "herald_channel_checks_failing", "Active channels whose last check failed"
    )
    failed.add_metric([], failing or 0)
    yield failed


def _jobs(session: Session) -> Iterator[Metric]:
    now = utcnow()
    jobs = GaugeMetricFamily("herald_jobs", "Jobs by kind and state", labels=["kind", "state"])
    for kind, state, n in session.execute(
        select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
    ):
        jobs.add_metric([kind, state], n)
    yield jobs
    oldest_running = GaugeMetricFamily(
        "herald_job_oldest_running_seconds",
        "Age of the longest-running started job, by kind (slow tasks)",
        labels=["kind"],
    )
    for kind, started in session.execute(
        select(Job.kind, func.min(Job.started_at)).where(Job.state == "STARTED").group_by(Job.kind)
    ):
        if started is not None:
            oldest_running.add_metric([kind], max(0.0, (now - started).total_seconds()))
    yield oldest_running


def _queues(session: Session, view: RedisView) -> Iterator[Metric]:
    now = utcnow()
    depth = GaugeMetricFamily(
        "herald_queue_depth", "Messages waiting on each broker queue", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "herald_queue_oldest_message_age_seconds",
        "Age of the oldest message on each queue, from its job's created_at (0 when empty)",
        labels=["queue"],
    )
    created = (
        dict(
            session.execute(
                select(Job.id, Job.created_at).where(Job.id.in_(list(view.oldest_task.values())))
            ).all()
        )
        if view.oldest_task
        else {}
    )
    for queue in QUEUES if view.up else ():
        depth.add_metric([queue], view.depth.get(queue, 0))
        at = created.get(view.oldest_task.get(queue, ""))
        age.add_metric([queue], max(0.0, (now - at).total_seconds()) if at else 0.0)
    yield depth
    yield age
    broker = GaugeMetricFamily("herald_broker_up", "1 when Redis answered this scrape")
    broker.add_metric([], 1 if view.up else 0)
    yield broker


def _workers(view: RedisView) -> Iterator[Metric]:
    wall = time.time()
    live = [name for name, at in view.beats.items() if wall - at <= WORKER_STALE_SECONDS]
    count = GaugeMetricFamily("herald_workers", "Workers that beat in the last 30 s")
    count.add_metric([], len(live))
    yield count
    beat_age = GaugeMetricFamily(
        "herald_worker_heartbeat_age_seconds",
        "Seconds since each worker's last heartbeat",
        labels=["worker"],
    )
    for name, at in sorted(view.beats.items()):
        beat_age.add_metric([name], max(0.0, wall - at))
    yield beat_age


def _scheduler(session: Session) -> Iterator[Metric]:
    now = utcnow()
    scheduler = GaugeMetricFamily(
        "herald_scheduler_heartbeat_age_seconds",
        "Seconds since the scheduler (herald beat, herald worker --compact) last beat; "
        "absent if it never ran",
    )
    beat_at = session.scalar(select(Heartbeat.beat_at).where(Heartbeat.name == SCHEDULER))
    if beat_at is not None:
        scheduler.add_metric([], max(0.0, (now - beat_at).total_seconds()))
    yield scheduler


def _periodic(session: Session) -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "herald_periodic_runs",
        "Periodic job runs (the reconciler's included), by job",
        labels=["job"],
    )
    skipped = CounterMetricFamily(
        "herald_periodic_skipped", "Periodic runs that found their period taken", labels=["job"]
    )
    actions = GaugeMetricFamily(
        "herald_periodic_last_result",
        "The numbers in each periodic job's last result (e.g. the reconciler's actions)",
        labels=["job", "key"],
    )
    failed = GaugeMetricFamily(
        "herald_periodic_last_failed", "1 when the job's last run failed", labels=["job"]
    )
    for row in session.scalars(select(PeriodicRun)):
        runs.add_metric([row.name], row.run_count)
        skipped.add_metric([row.name], row.skipped_count)
        failed.add_metric([row.name], 1 if row.last_status not in (None, "ok", "success") else 0)
        for key, value in (row.last_result or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                actions.add_metric([row.name, str(key)], float(value))
    yield from (runs, skipped, actions, failed)


def _sources(session: Session) -> Iterator[Metric]:
    checks = CounterMetricFamily(
        "herald_source_checks", "Source checks, by source kind", labels=["kind"]
    )
    not_modified = CounterMetricFamily(
        "herald_source_not_modified", "Checks answered 304 Not Modified", labels=["kind"]
    )
    fetched = CounterMetricFamily("herald_source_fetched_bytes", "Bytes fetched", labels=["kind"])
    failing = GaugeMetricFamily(
        "herald_sources_failing", "Enabled sources whose last check failed", labels=["kind"]
    )
    for kind, n, nm, size, bad in session.execute(
        select(
            Source.kind,
            func.sum(Source.checks),
            func.sum(Source.not_modified),
            func.sum(Source.bytes_fetched),
            func.sum(case((and_(Source.enabled, Source.failures > 0), 1), else_=0)),
        ).group_by(Source.kind)
    ):
        checks.add_metric([kind], n or 0)
        not_modified.add_metric([kind], nm or 0)
        fetched.add_metric([kind], size or 0)
        failing.add_metric([kind], bad or 0)
    yield from (checks, not_modified, fetched, failing)


def _generation(session: Session) -> Iterator[Metric]:
    tokens = CounterMetricFamily(
        "herald_generation_tokens",
        "Tokens used by generation, by provider kind, model and direction",
        labels=["provider", "model", "direction"],
    )
    cost = CounterMetricFamily(
        "herald_generation_cost_dollars",
        "Generation cost, by provider kind and model",
        labels=["provider", "model"],
    )
    calls = CounterMetricFamily(
        "herald_generation_calls",
        "Provider calls, by provider kind, model and outcome",
        labels=["provider", "model", "outcome"],
    )
    totals: dict[tuple[str, str], list[float]] = {}
    for kind, model, outcome, n, tin, tout, micros in session.execute(
        select(
            LedgerEntry.provider_kind,
            LedgerEntry.model,
            LedgerEntry.outcome,
            func.count(),
            func.sum(LedgerEntry.input_tokens),
            func.sum(LedgerEntry.output_tokens),
            func.sum(LedgerEntry.cost_micros),
        ).group_by(LedgerEntry.provider_kind, LedgerEntry.model, LedgerEntry.outcome)
    ):
        calls.add_metric([kind, model, outcome], n)
        acc = totals.setdefault((kind, model), [0.0, 0.0, 0.0])
        acc[0] += float(tin or 0)
        acc[1] += float(tout or 0)
        acc[2] += float(micros or 0)
    for (kind, model), (inputs, outputs, spent) in sorted(totals.items()):
        tokens.add_metric([kind, model, "input"], inputs)
        tokens.add_metric([kind, model, "output"], outputs)
        cost.add_metric([kind, model], spent / 1_000_000)
    yield from (tokens, cost, calls)


def _webhooks(session: Session) -> Iterator[Metric]:
    deliveries = GaugeMetricFamily(
        "herald_webhook_deliveries", "Event webhook deliveries by state", labels=["state"]
    )
    found = dict(
        session.execute(
            select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
        ).all()
    )
    for state in DeliveryState:
        deliveries.add_metric([state.value], found.get(state, 0))
    yield deliveries
    oldest = GaugeMetricFamily(
        "herald_webhook_oldest_pending_seconds",
        "Age of the oldest event still waiting to be delivered to an active endpoint",
    )
    first = session.scalar(
        select(func.min(WebhookDelivery.created_at))
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
            Webhook.state == WebhookState.ACTIVE,
        )
    )
    oldest.add_metric([], max(0.0, (utcnow() - first).total_seconds()) if first else 0.0)
    yield oldest


class HeraldCollector(Collector):
    """Registered once in the API process; each scrape reads Redis, then the database."""

    def describe(self) -> Iterator[Metric]:
        # Nothing up front: registering must not query a database that may not exist yet.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        view = read_redis()
        with read_scope() as session:
            metrics = list(collect_from(session, view))
        yield from metrics
        took = GaugeMetricFamily(
            "herald_scrape_duration_seconds", "How long this scrape took to read"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took


def collect_from(session: Session, view: RedisView) -> Iterator[Metric]:
    """Every Herald metric, from one read transaction and what Redis said."""
    yield from _deliveries(session)
    yield from _errors(session)
    yield from _attempts(session)
    yield from _histograms(session)
    yield from _channels(session)
    yield from _jobs(session)
    yield from _queues(session, view)
    yield from _workers(view)
    yield from _scheduler(session)
    yield from _periodic(session)
    yield from _sources(session)
    yield from _generation(session)
    yield from _webhooks(session)
