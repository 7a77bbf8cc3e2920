"""Worker liveness for /metrics: each worker's main process writes its own heartbeat to
Redis. Why not Celery's ping: it waits for answers (a second or more), too slow for a
scrape; why not a counter in the process: prefork children and other hosts would each
keep their own. A hash field per worker hostname holds the Unix time of its last beat."""

from __future__ import annotations

import time
from typing import Any

import redis

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
