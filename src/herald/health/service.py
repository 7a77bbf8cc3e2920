from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text

from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.scheduling.heartbeat import last_beat


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


def _describe(exc: Exception) -> str:
    # Unauthenticated endpoint: the error's kind and first line only, never SQL or a trace.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


def _timed() -> float:
    return time.perf_counter()


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def check_database() -> Component:
    start = _timed()
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    return Component(status=Status.UP, latency_ms=_ms(start))


def check_broker() -> Component:
    from herald.worker import app

    start = _timed()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    return Component(status=Status.UP, latency_ms=_ms(start))


def check_workers() -> Component:
    from herald.worker import app

    start = _timed()
    try:
        replies = app.control.ping(timeout=get_settings().worker_ping_timeout)
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return Component(status=Status.DOWN, detail="no worker answered the ping")
    return Component(
        status=Status.UP, latency_ms=_ms(start), info={"count": len(names), "names": names}
    )


def check_scheduler() -> Component:
    try:
        with session_scope() as session:
            beat_at = last_beat(session)
    except Exception as exc:
        return Component(status=Status.DOWN, detail=_describe(exc))
    if beat_at is None:
        return Component(status=Status.DOWN, detail="the scheduler (herald beat) has never run")
    age = (utcnow() - beat_at).total_seconds()
    stale = get_settings().scheduler_heartbeat_stale_seconds
    info = {"heartbeat_age_seconds": round(age, 1), "last_heartbeat": beat_at.isoformat()}
    if age > stale:
        return Component(
            status=Status.DOWN, detail=f"no heartbeat for {age:.0f} s (limit {stale} s)", info=info
        )
    return Component(status=Status.UP, info=info)


def check_all() -> Health:
    components = {"database": check_database(), "broker": check_broker()}
    if components["broker"].status is Status.UP:
        components["workers"] = check_workers()
    else:
        components["workers"] = Component(status=Status.DOWN, detail="broker unreachable")
    components["scheduler"] = check_scheduler()
    overall = Status.UP if all(c.status is Status.UP for c in components.values()) else Status.DOWN
    return Health(status=overall, components=components)
