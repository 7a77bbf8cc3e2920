"""Imported into a benchmark's worker (``--import bench._tx_timing``): times the two
transactions of every delivery attempt, the claim and the settle (recording the outcome),
from asking for the transaction to its commit (so a wait for SQLite's writer or for a
pooled connection counts), and pushes each as ``"<kind> <ms>"`` onto the Redis list
:data:`bench._harness.TX_TIMES_KEY` of the broker's Redis.

It wraps ``herald.publishing.delivery.core_scope`` (the name the delivery module calls)
and notes which action ran inside (``actions.claim`` or ``actions.record_outcome``) in a
thread-local, so it works with processes and with threads. One RPUSH per transaction
(about 0.1 ms) is added to each attempt's time, outside the measured span.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from bench._harness import TX_TIMES_KEY
from herald.core.settings import get_settings
from herald.publishing import actions, delivery

_local = threading.local()
_clients: dict[int, redis.Redis] = {}
_lock = threading.Lock()


def _client() -> redis.Redis:
    # One client per process (a forked pool child must not share the parent's sockets);
    # redis-py's connection pool is thread-safe.
    pid = os.getpid()
    with _lock:
        if pid not in _clients:
            _clients[pid] = redis.Redis.from_url(get_settings().effective_broker_url)
        return _clients[pid]


# core_scope reaches delivery by a from-import that mypy does not treat as exported.
_scope = delivery.core_scope  # type: ignore[attr-defined]
_claim = actions.claim
_record = actions.record_outcome


@contextlib.contextmanager
def _timed_scope(*args: Any, **kwargs: Any) -> Iterator[Any]:
    _local.kind = "other"
    started = time.perf_counter()
    with _scope(*args, **kwargs) as tx:
        yield tx
    elapsed = 1000 * (time.perf_counter() - started)
    _client().rpush(TX_TIMES_KEY, f"{_local.kind} {elapsed:.3f}")


def _timed_claim(*args: Any, **kwargs: Any) -> Any:
    _local.kind = "claim"
    return _claim(*args, **kwargs)


def _timed_record(*args: Any, **kwargs: Any) -> Any:
    _local.kind = "settle"
    return _record(*args, **kwargs)


delivery.core_scope = _timed_scope  # type: ignore[attr-defined]
actions.claim = _timed_claim
actions.record_outcome = _timed_record
