"""Worker liveness for /metrics: each worker's main process writes its own heartbeat to
Redis. Why not Celery's ping: it waits for answers (a second or more), too slow for a
scrape; why not a counter in the process: prefork children and other hosts would each
keep their own. A hash field per worker hostname holds the Unix time of its last beat."""

from __future__ import annotations

import time
from typing import Any

import redis
from celery.signals import heartbeat_sent

from herald.core.settings import get_settings
from herald.events.service import redis_url

KEY = "herald:worker-heartbeats"


def record(client: redis.Redis, hostname: str, now: float | None = None) -> None:
    client.hset(KEY, hostname, repr(time.time() if now is None else now))


def read(client: redis.Redis) -> dict[str, float]:
    """Every worker that ever beat, with the Unix time of its last beat."""
    raw: dict[Any, Any] = client.hgetall(KEY)
    beats: dict[str, float] = {}
    for name, value in raw.items():
        try:
            beats[name.decode() if isinstance(name, bytes) else str(name)] = float(value)
        except ValueError:
            continue
    return beats


def forget(client: redis.Redis, hostname: str) -> None:
    client.hdel(KEY, hostname)


def _record_worker_heartbeat(sender: Any = None, **_: Any) -> None:
    """Every 2 s in each worker's main process (Celery's event heartbeat; this module is
    in the worker's ``imports``): kept in Redis for /metrics."""
    url = redis_url(get_settings().effective_broker_url)
    hostname = getattr(getattr(sender, "eventer", None), "hostname", None)
    if url is None or not hostname:
        return
    timeout = get_settings().redis_timeout_seconds
    try:
        with redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout) as c:
            record(c, str(hostname))
    except redis.RedisError:
        pass  # the scrape shows this worker's heartbeat getting old: that is the signal


heartbeat_sent.connect(_record_worker_heartbeat)
