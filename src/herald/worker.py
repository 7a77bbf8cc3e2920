"""The Celery app, configured from Herald's settings.

``celery -A herald.worker worker|beat|flower`` works unchanged; ``herald worker`` and
``herald beat`` are the same with Herald's defaults filled in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.schedules import crontab
from celery.signals import (
    worker_before_create_process,
    worker_process_init,
    worker_process_shutdown,
)
from kombu.entity import Queue

from herald.core import heap, kombu_fixes
from herald.core.db import reset_engine
from herald.core.settings import Settings, get_settings
from herald.events.service import flush_events

PUBLISHING = "publishing"
QUEUES = (PUBLISHING, "generation", "sources", "maintenance")

# Message priorities (Redis broker: 0 is served first). A delivery asked for now goes
# ahead of the backlog the scheduler and batches send (due scheduled deliveries, retries,
# a batch's fan-out), so it never waits behind thousands of them: kombu's Redis transport
# keeps one list per priority step and a worker pops the lists in step order. (RabbitMQ
# ignores priorities on queues declared without x-max-priority, as Herald's are.)
# Ahead of both: a delivery back at its rate-budget turn (herald.channels.budgets). Its
# turn is a slot of the platform's limit: late, the slot is lost (a small bucket cannot
# save it up) and the turns behind it bunch up, so it must not queue behind deliveries
# still to be triaged. Turns come at most at the channels' own rates.
PRIORITY_TURN = 0
PRIORITY_NOW = 3
PRIORITY_BACKLOG = 6
PRIORITY_STEPS = (PRIORITY_TURN, PRIORITY_NOW, PRIORITY_BACKLOG)
# How kombu's Redis transport names a queue's list for a priority step other than 0.
_PRIORITY_SEPARATOR = "\x06\x16"


def queue_key(queue: str, priority: int) -> str:
    """The Redis list holding a queue's messages of one priority step."""
    return queue if priority == 0 else f"{queue}{_PRIORITY_SEPARATOR}{priority}"


def queue_keys(queue: str) -> list[str]:
    """The Redis lists holding a queue's messages, served first to last."""
    return [queue_key(queue, step) for step in PRIORITY_STEPS]


kombu_fixes.apply()

# Routing by task-name prefix: every task is named "herald.<feature>.<name>". A task sent
# to the publishing queue without a priority of its own (a channel test, a batch's
# fan-out job) goes with those asked for now, behind rate-budget turns.
TASK_ROUTES: dict[str, dict[str, str | int]] = {
    "herald.publishing.*": {"queue": "publishing", "priority": PRIORITY_NOW},
    "herald.channels.*": {"queue": "publishing", "priority": PRIORITY_NOW},
    "herald.agents.*": {"queue": "generation"},
    "herald.sources.*": {"queue": "sources"},
    "herald.scheduling.*": {"queue": "maintenance"},
    "herald.maintenance.*": {"queue": "maintenance"},
    "herald.backups.*": {"queue": "maintenance"},
    "herald.webhooks.*": {"queue": "maintenance"},
}

TASK_MODULES = [
    "herald.agents.tasks",
    "herald.channels.tasks",
    "herald.agents.provider_tasks",
    "herald.backups.tasks",
    "herald.publishing.tasks",
    "herald.scheduling.tasks",
    "herald.sources.research_tasks",
    "herald.sources.tasks",
    "herald.webhooks.tasks",
    # No task: its heartbeat signal handler, which /metrics counts live workers by.
    "herald.metrics.workers",
]


# Periodic jobs the scheduler (`herald beat`) runs in its own process at the start of each
# period, instead of sending them to a worker. The reconciler recovers deliveries whose
# worker died or whose message was lost, so it must run on time whatever the workers
# are doing; queued behind slow deliveries it ran a third as often as asked. It is a few
# short statements, and the scheduler already dispatches due deliveries outside any
# pool: no reserved slot or extra process is needed, and its period claim in the
# database still makes a second scheduler harmless. The source monitor is the same kind
# of job: one claim statement, after which each check goes to the `sources` queue; so is
# the agents' schedule (each due occurrence claimed, its run sent to `generation`), and the
# channel health pass (due channels claimed, their tests sent to `maintenance`).
# The webhooks' pass is the same: one claim statement, then pointers to `maintenance`.
RUN_IN_SCHEDULER = frozenset(
    {
        "herald.scheduling.reconcile",
        "herald.sources.monitor",
        "herald.agents.schedule",
        "herald.webhooks.dispatch",
        "herald.scheduling.check_channels",
    }
)

# How often the scheduler claims the source checks that fell due (each source has its own
# interval; this is only how soon a due check is noticed).
MONITOR_EVERY_SECONDS = 5.0
# How often the scheduler looks for agents whose cron occurrence has come.
AGENT_SCHEDULE_EVERY_SECONDS = 5.0
# How often the scheduler sends the event webhook deliveries that fell due (a new event's
# deliveries are sent at once after commit; this catches retries and lost messages).
WEBHOOK_DISPATCH_EVERY_SECONDS = 5.0
# How often the scheduler claims the channel checks that fell due.
CHANNEL_CHECK_EVERY_SECONDS = 60.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic jobs. The dispatcher of due deliveries is not one of them: it runs inside
    the scheduler itself (herald.scheduling.dispatcher), and so do those in
    ``RUN_IN_SCHEDULER`` (their schedule is a period in seconds). Each job claims its
    period in the database, so two schedulers running it do no harm; expiry drops a run
    that waited in the queue past its period."""
    return {
        "reconcile-stuck-deliveries": {
            "task": "herald.scheduling.reconcile",
            "schedule": float(settings.reconcile_interval_seconds),
        },
        "monitor-sources": {
            "task": "herald.sources.monitor",
            "schedule": MONITOR_EVERY_SECONDS,
        },
        "agent-schedules": {
            "task": "herald.agents.schedule",
            "schedule": AGENT_SCHEDULE_EVERY_SECONDS,
        },
        "webhook-deliveries": {
            "task": "herald.webhooks.dispatch",
            "schedule": WEBHOOK_DISPATCH_EVERY_SECONDS,
        },
        "check-channels": {
            # Each channel has its own time in the day (herald.channels.health); this is
            # only how soon a due check is noticed.
            "task": "herald.scheduling.check_channels",
            "schedule": CHANNEL_CHECK_EVERY_SECONDS,
        },
        "clean-old-research": {
            "task": "herald.sources.clean_old_research",
            "schedule": crontab(hour=3, minute=10),
            "options": {"expires": 3600},
        },
        "nightly-backup": {
            "task": "herald.backups.nightly",
            "schedule": crontab(hour=settings.backup_at.hour, minute=settings.backup_at.minute),
            "options": {"expires": 3600},
        },
        "clean-old-records": {
            "task": "herald.maintenance.clean_old_records",
            "schedule": crontab(hour=3, minute=0),
            "options": {"expires": 3600},
        },
    }


def _give_up_after_a_timeout(exc: BaseException, _interval: float) -> None:
    """Called by kombu before each retry of a send: a send that timed out found the
    broker hung (it took the connection and never answered), and trying again would wait
    as long again, in an API request. Give up; the delivery stays queued in the database
    and the reconciler sends it. A refused or dropped connection fails at once: retry."""
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        raise exc


def _redis_transport_options(settings: Settings) -> dict[str, Any]:
    """What the broker and the result backend both pass to their Redis connections."""
    timeout = settings.redis_timeout_seconds
    return {
        "visibility_timeout": settings.visibility_timeout,
        # Without a read timeout, a Redis that stops answering (SIGSTOP, a half-open
        # connection) hangs every send and health check for good (kombu's default: None).
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry_on_timeout": False,
    }


def _message_format() -> dict[str, Any]:
    # JSON only, everywhere: a broker message must never be able to run code.
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
    }


def _routing() -> dict[str, Any]:
    return {
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "maintenance",
        "task_routes": TASK_ROUTES,
        "task_create_missing_queues": False,
    }


def _task_execution(settings: Settings) -> dict[str, Any]:
    """How a worker runs a task: events, time limits, prefetch, acknowledgement."""
    return {
        # Events on, so Flower (and `celery events`) see every task from the moment a
        # worker receives it. The task-sent event (a second PUBLISH with every message)
        # is opt-in: Herald's own records already show what is queued.
        "worker_send_task_events": True,
        "task_send_sent_event": settings.task_sent_events,
        "task_track_started": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "worker_prefetch_multiplier": 1,
        # Ack after the run: a worker that dies mid-task leaves the message to be
        # redelivered; the database claim makes the second run harmless.
        "task_acks_late": True,
    }


def _connections(settings: Settings) -> dict[str, Any]:
    """Timeouts and retries for the broker and result backend: fail fast, never hang."""
    timeout = settings.redis_timeout_seconds
    transport = _redis_transport_options(settings)
    return {
        # Herald never asks the broker to hold a message (no ETA/countdown), so the
        # visibility timeout only has to outlast one task run. Same value both sides.
        # Priorities: one Redis list per step Herald uses (see PRIORITY_NOW), not kombu's
        # four, so a worker's BRPOP and the metrics read only the lists that can be used.
        "broker_transport_options": {**transport, "priority_steps": list(PRIORITY_STEPS)},
        "result_backend_transport_options": {
            **transport,
            # Celery's default retries a lost result connection 20 times, a Redis timeout
            # each when Redis hangs; sending a task whose result is kept subscribes to it
            # first. Retry what fails fast (a refused connection), not a timeout.
            "retry_policy": {
                "max_retries": 2,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
                "timeout": timeout / 2,
            },
        },
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        # Don't hang an API request when the broker is down: fail fast, the row stays
        # queued in the database and the reconciler sends it later.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
            # So a hung broker costs a send one timeout, not one per try.
            "errback": _give_up_after_a_timeout,
        },
        "broker_connection_timeout": 2.0,
        "redis_socket_connect_timeout": timeout,
        "redis_socket_timeout": timeout,
        "redis_retry_on_timeout": False,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.effective_broker_url,
        "result_backend": settings.effective_result_backend_url,
        **_message_format(),
        **_routing(),
        **_task_execution(settings),
        **_connections(settings),
        "timezone": "UTC",
        "enable_utc": True,
        "worker_concurrency": settings.worker_concurrency,
        "worker_pool": settings.worker_pool,
        "worker_hijack_root_logger": False,
        "beat_scheduler": "herald.scheduling.beat:HeraldScheduler",
        "imports": TASK_MODULES,
        "beat_schedule": beat_schedule(settings),
    }


@dataclass(frozen=True)
class WorkerPlan:
    """One Celery worker process: the queues it consumes, its pool and the pool's size
    (None: Celery's default, the CPU count), and its node name's prefix (None: Celery's)."""

    queues: tuple[str, ...]
    pool: str
    concurrency: int | None
    node: str | None = None

    def argv(self, log_level: str) -> list[str]:
        """The ``celery worker`` arguments that run it."""
        argv = ["worker", "-Q", ",".join(self.queues), f"--loglevel={log_level}"]
        if self.concurrency:
            argv.append(f"--concurrency={self.concurrency}")
        argv.append(f"--pool={self.pool}")
        if self.node:
            argv.append(f"--hostname={self.node}@%h")
        return argv


def compact_plan(settings: Settings, concurrency: int | None = None) -> WorkerPlan:
    """One Celery worker for every queue, on threads: ``herald worker --compact``, which
    ``herald up`` runs by default (with the scheduler on a thread beside it). Its threads
    are the publishing queue's plus the other queues' (``HERALD_WORKER_CONCURRENCY``, else
    the CPU count), so a generation or source run in flight does not take a delivery's
    place in the count it was sized for."""
    others = settings.worker_concurrency or os.cpu_count() or 1
    return WorkerPlan(QUEUES, "threads", concurrency or settings.publishing_concurrency + others)


def worker_plans(
    settings: Settings,
    queues: Sequence[str] | None = None,
    *,
    pool: str | None = None,
    concurrency: int | None = None,
) -> list[WorkerPlan]:
    """The Celery workers ``herald worker`` runs, each with the pool its queues need.

    A delivery spends its time waiting on the platform, so the publishing queue runs on a
    pool sized for I/O (``HERALD_PUBLISHING_POOL``, threads by default: many deliveries in
    flight in one process), while generation, sources and maintenance keep processes
    (``HERALD_WORKER_POOL``). One Celery worker has one pool, so with no queues, pool or
    concurrency asked for there are two workers: ``publishing@<host>`` and the rest.
    Queues asked for make one worker: publishing alone gets the publishing pool, any
    other set the other one; a pool or concurrency asked for overrides the setting."""
    others = tuple(q for q in QUEUES if q != PUBLISHING)
    publishing = WorkerPlan(
        (PUBLISHING,),
        pool or settings.publishing_pool,
        concurrency or settings.publishing_concurrency,
    )
    rest = WorkerPlan(
        others, pool or settings.worker_pool, concurrency or settings.worker_concurrency
    )
    if queues is None:
        if pool is None and concurrency is None:
            return [
                WorkerPlan(publishing.queues, publishing.pool, publishing.concurrency, PUBLISHING),
                rest,
            ]
        return [WorkerPlan(QUEUES, rest.pool, rest.concurrency)]
    if tuple(queues) == (PUBLISHING,):
        return [publishing]
    return [WorkerPlan(tuple(queues), rest.pool, rest.concurrency)]


def run_celery(argv: Sequence[str]) -> None:
    """``celery <argv>`` (``worker ...``, ``beat ...``) on Herald's app, in this process.
    Raises SystemExit with the command's exit status when it is not 0: Celery's own
    ``worker_main`` and ``start`` drop it, so a worker stopped by a failure exited 0, and
    a service manager that restarts failed units only (``Restart=on-failure``) left it
    stopped."""
    from celery.bin.celery import celery as command  # noqa: PLC0415 - what app.start runs

    command.params[0].default = app  # the --app option, as app.start sets it
    try:
        # Not standalone: click returns the command's exit status instead of exiting.
        code = command.main(args=list(argv), standalone_mode=False)
    finally:
        command.params[0].default = None
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    celery = Celery("herald")
    celery.conf.update(celery_config(settings))
    return celery


app = create_celery()


@worker_process_init.connect
def _fresh_database_connections(**_: Any) -> None:
    # A prefork child must not share the parent's pooled database connections.
    reset_engine(close=False)


@worker_before_create_process.connect
def _freeze_before_fork(**_: Any) -> None:
    # The parent's start-up objects, frozen before each fork: the children inherit them
    # frozen, and neither side's collector walks them again (see herald.core.heap).
    heap.freeze()


@worker_process_init.connect
def _freeze_in_child(**_: Any) -> None:
    # What the child made to start (its task tracers, its own engine); no collection: it
    # would write to, and so copy, every page shared with the parent.
    heap.freeze(collect=False)


@worker_process_shutdown.connect
def _flush_live_events(**_: Any) -> None:
    # A pool process ends with os._exit (no atexit): read Redis's last answers first.
    flush_events()
