"""One workaround for kombu's Redis transport, kept in one place with a test.

A worker acks a message (``task_acks_late``) on the channel it came on. When the broker
connection was lost while the task ran, that channel's connection is already closed and
kombu 5.x fails inside ``QoS.ack`` with ``AttributeError: 'NoneType' object has no
attribute 'hostname'`` (it builds a new pool from a connection whose ``client`` is
gone); the same happens when Celery closes the lost connection and kombu restores its
unacked messages. Celery treats an AttributeError there as unrecoverable and the worker exits
(code 0), so after a Redis restart nothing consumes the queues any more. Turning it into
a connection error lets Celery log "Couldn't ack" and carry on reconnecting: the message
stays in Redis's unacked set and is restored after the visibility timeout, which is
harmless because every task claims its row in the database first.

``tests/core/test_kombu_fixes.py`` fails if kombu changes the names this relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis

_PATCHED = "_herald_closed_channel_guard"


def _connection_gone(qos: Any) -> bool:
    transport = getattr(qos.channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(qos: Any, *args: Any, **kwargs: Any) -> Any:
        if _connection_gone(qos):
            raise ConnectionError(
                f"cannot {method.__name__.replace('_', ' ')}: the broker connection the "
                "messages came on is closed (Redis restores them after the visibility timeout)"
            )
        return method(qos, *args, **kwargs)

    setattr(guarded, _PATCHED, True)
    guarded.__doc__ = method.__doc__
    return guarded


def apply() -> None:
    """Guard the Redis transport's ack, reject and restore of unacked messages
    (idempotent)."""
    qos = kombu_redis.QoS
    for name in ("ack", "reject", "restore_unacked"):
        method = getattr(qos, name)
        if not getattr(method, _PATCHED, False):
            setattr(qos, name, _guard(method))
