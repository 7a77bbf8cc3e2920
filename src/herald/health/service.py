"""Health of every component: database, broker, workers, scheduler; and the two
questions a load balancer or an orchestrator asks of one API process.

- The full report (:func:`check_all`, ``GET /api/v1/health``): every component, down when
  any one is. Herald as a whole works only when all four are up.
- Readiness (:func:`check_ready`, ``GET /api/v1/health/ready``): can this API process
  serve requests? Only what a request needs: the database and the broker (a publish
  sends a task). Workers and the scheduler are not asked: a stopped beat must not take
  every API process out of its load balancer, nor get it restarted.
- Liveness (``GET /api/v1/health/live``): the process answers HTTP. It asks nothing
  else, so that an outage elsewhere never restarts a healthy process.

The checks run at the same time, each in a thread of its own, and the answer is ready
within :data:`TIMEOUT_SECONDS` whatever hangs (a stopped Redis, a database server that
does not answer): a check still running then is reported down, as not answering. A
component has at most one check running: a caller that arrives meanwhile shares it, so
polling a hung component does not pile up threads.

The checks only read. None opens a write transaction, none waits on SQLite's writer lock
(the database check names the process holding it, see :mod:`herald.health.writer_lock`),
and none runs inside a transaction of the caller's (they run on their own threads).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text

from herald import worker
from herald.core.clock import utcnow
from herald.core.db import get_engine, read_scope, writer_lock_path
from herald.core.errors import ServiceUnavailable
from herald.core.settings import get_settings
from herald.health import writer_lock
from herald.scheduling.heartbeat import last_beat

# How long the checks may take: one that has not answered by then is down. Healthy
# components answer in milliseconds; this keeps the whole answer within 2 s on a busy host.
TIMEOUT_SECONDS = 1.0


class Status(StrEnum):
    UP = "up"
    DOWN = "down"


class Component(BaseModel):
    status: Status
    detail: str | None = None
    latency_ms: float | None = None
    info: dict[str, Any] = {}


class Health(BaseModel):
    status: Status
    components: dict[str, Component]


def _describe(exc: BaseException) -> str:
    # Unauthenticated endpoint: the error's kind and first line only, never SQL or a trace.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


class NotReady(ServiceUnavailable):
    """503: this API process cannot serve requests now (its database or broker is down)."""

    slug = "not-ready"

    @classmethod
    def from_health(cls, health: Health) -> NotReady:
        down = [
            f"{name}: {component.detail or 'down'}"
            for name, component in health.components.items()
            if component.status is Status.DOWN
        ]
        return cls(
            f"Not ready to serve requests: {'; '.join(down)}. This process needs its "
            "database and its broker (HERALD_DATABASE_URL, HERALD_BROKER_URL); it becomes "
            "ready by itself once they answer. GET /api/v1/health reports every component."
        )


# --- the checks -------------------------------------------------------------------------


def check_database(budget: float = TIMEOUT_SECONDS) -> Component:
    """A read (never the writer lock), and on SQLite who holds the writer lock."""
    start = time.perf_counter()
    try:
        with read_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    latency = _ms(start)
    engine = get_engine()
    path = writer_lock_path(engine.url.database) if engine.dialect.name == "sqlite" else None
    if path is None:
        return Component(status=Status.UP, latency_ms=latency)
    wait = get_settings().database_write_wait_seconds
    holder = writer_lock.holder(path, stuck_after=wait)
    if holder is None:
        return Component(status=Status.UP, latency_ms=latency)
    info = {
        "writer_lock": {
            "pid": holder.pid,
            "program": holder.program,
            "state": holder.state,
            "held_seconds": round(holder.held_seconds, 1),
            "writers_waiting": holder.waiting,
        }
    }
    held = holder.held_seconds
    if holder.stuck:
        seen = f" (seen holding it for {held:.0f} s)" if held >= 1 else ""
        detail = (
            f"writes are blocked: {holder.describe()} holds the writer lock and is "
            f"{holder.state}{seen}. Reads still work; resume or stop that process."
        )
    elif held >= wait:
        detail = (
            f"writes are blocked: {holder.describe()} has held the writer lock for at least "
            f"{held:.0f} s, and writes give up after {wait:g} s. Reads still work; stop "
            "that process if it does not finish."
        )
    else:
        return Component(status=Status.UP, latency_ms=latency, info=info)
    return Component(status=Status.DOWN, detail=detail, latency_ms=latency, info=info)


def check_broker(budget: float = TIMEOUT_SECONDS) -> Component:
    """Connect to the broker (the transport's timeouts bound it) and let go."""
    start = time.perf_counter()
    try:
        with worker.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=budget)
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    return Component(status=Status.UP, latency_ms=_ms(start))


def check_workers(budget: float = TIMEOUT_SECONDS) -> Component:
    """Ping the workers; the first to answer is enough (how many run is not known)."""
    start = time.perf_counter()
    timeout = round(max(0.05, min(get_settings().worker_ping_timeout, budget)), 2)
    # A connection of its own, not the pool's: a ping no worker answered leaves its BRPOP
    # pending on the channel, and a publish that got that connection next would, on a
    # hung Redis, wait for it too (one more timeout). Closing reads that answer (up to a
    # second): off the answer's path.
    connection = worker.app.connection_for_write()
    try:
        replies = worker.app.control.ping(timeout=timeout, limit=1, connection=connection)
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    finally:
        threading.Thread(target=connection.release, name="herald-health-close", daemon=True).start()
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return Component(
            status=Status.DOWN, detail=f"no worker answered the ping within {timeout:g} s"
        )
    return Component(status=Status.UP, latency_ms=_ms(start), info={"first_to_answer": names[0]})


def check_scheduler(budget: float = TIMEOUT_SECONDS) -> Component:
    try:
        with read_scope() as session:
            beat_at = last_beat(session)
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    if beat_at is None:
        return Component(
            status=Status.DOWN,
            detail="the scheduler (herald beat, or herald worker --compact) has never run",
        )
    age = (utcnow() - beat_at).total_seconds()
    stale = get_settings().scheduler_heartbeat_stale_seconds
    info = {"heartbeat_age_seconds": round(age, 1), "last_heartbeat": beat_at.isoformat()}
    if age > stale:
        return Component(
            status=Status.DOWN, detail=f"no heartbeat for {age:.0f} s (limit {stale} s)", info=info
        )
    return Component(status=Status.UP, info=info)


# Each check gets the seconds left of the answer's time (a check that waits on a reply
# waits no longer), and reports its own failures as down.
CHECKS: dict[str, Callable[[float], Component]] = {
    "database": check_database,
    "broker": check_broker,
    "workers": check_workers,
    "scheduler": check_scheduler,
}
# A check that needs another component up first: the worker ping goes through the broker,
# and kombu retries a control message's send for as long as the broker is down.
NEEDS = {"workers": "broker"}


# --- running them -----------------------------------------------------------------------


class _Running:
    """The check of each component that is running now, if any (shared by callers)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._guard = threading.Lock()
        self._checks: dict[str, Future[Component]] = {}

    def start(self, name: str, after: Future[Component] | None = None) -> Future[Component]:
        with self._guard:
            running = self._checks.get(name)
            if running is not None and not running.done():
                return running
            future: Future[Component] = Future()
            self._checks[name] = future
        threading.Thread(
            target=_run, args=(name, future, after), name=f"herald-health-{name}", daemon=True
        ).start()
        return future


def _run(name: str, future: Future[Component], after: Future[Component] | None) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS - _MARGIN
    try:
        if after is not None and after.result().status is not Status.UP:
            future.set_result(Component(status=Status.DOWN, detail=BROKER_DOWN))
            return
        # Looked up when it runs, so that a test can replace a check.
        future.set_result(CHECKS[name](deadline - time.monotonic()))
    except BaseException as exc:  # a check reports its own failures: this is a bug
        future.set_result(Component(status=Status.DOWN, detail=_describe(exc)))


BROKER_DOWN = "broker unreachable"
# Kept from the answer's time for the rest of the request.
_MARGIN = 0.1
_running = _Running()
# A forked child (a worker's pool process) has none of the parent's threads.
os.register_at_fork(after_in_child=_running.reset)


# What an API process needs to serve a request (readiness).
READY_NEEDS = ("database", "broker")


def check_all() -> Health:
    """Every component, checked at once; the answer is ready within TIMEOUT_SECONDS."""
    return check(tuple(CHECKS))


def check_ready() -> Health:
    """Readiness: the components an API request needs (:data:`READY_NEEDS`), checked as
    :func:`check_all` checks them."""
    return check(READY_NEEDS)


def check(names: tuple[str, ...]) -> Health:
    """The named components, checked at once (each with what it needs first); the answer
    is ready within TIMEOUT_SECONDS."""
    started: dict[str, Future[Component]] = {}
    wanted = {*names, *(NEEDS[name] for name in names if name in NEEDS)}
    for name in sorted(wanted, key=lambda name: name in NEEDS):
        needed = NEEDS.get(name)
        started[name] = _running.start(name, after=started[needed] if needed else None)
    wait_for(started.values(), timeout=TIMEOUT_SECONDS)
    late = Component(status=Status.DOWN, detail=f"did not answer within {TIMEOUT_SECONDS:g} s")
    results = {name: future.result() if future.done() else late for name, future in started.items()}
    for name, needed in NEEDS.items():
        if name not in results:
            continue
        if results[needed].status is Status.DOWN and results[name].status is Status.DOWN:
            results[name] = Component(status=Status.DOWN, detail=BROKER_DOWN)
    components = {name: results[name] for name in names}
    overall = Status.UP if all(c.status is Status.UP for c in components.values()) else Status.DOWN
    return Health(status=overall, components=components)
