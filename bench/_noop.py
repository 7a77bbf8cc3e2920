"""The raw-Celery baseline: a task on Herald's app that does nothing but note, in the
broker's Redis, when it finished (one RPUSH). The worker imports this module with
``python -m bench._harness worker --import bench._noop``; nothing in src/ knows about it."""

from __future__ import annotations

import time

import redis

from herald.worker import app

DONE_KEY = "bench:noop:done"
_client: redis.Redis | None = None


def client() -> redis.Redis:
    # Made on first use, so each pool process (forked after import) has its own connection.
    global _client  # noqa: PLW0603
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    return _client


@app.task(name="bench.noop", ignore_result=True)
def noop(index: int) -> None:
    client().rpush(DONE_KEY, f"{time.time():.6f}")
