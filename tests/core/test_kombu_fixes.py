"""The kombu workaround: settling a message on a closed broker connection is a connection
error Celery survives, not the AttributeError that made the worker exit."""

from __future__ import annotations

import pytest
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis

from herald.core import kombu_fixes


def test_the_names_the_workaround_relies_on_are_still_there() -> None:
    assert callable(kombu_redis.QoS.ack)
    assert callable(kombu_redis.QoS.reject)
    assert callable(kombu_redis.QoS.restore_unacked)
    assert callable(kombu_redis.Channel._connparams)


def test_acking_on_a_closed_connection_is_a_connection_error(redis_broker: str) -> None:
    kombu_fixes.apply()
    kombu_fixes.apply()  # idempotent: one guard, not two
    assert getattr(kombu_redis.QoS.ack, "_herald_closed_channel_guard", False)

    connection = Connection(redis_broker)
    channel = connection.channel()
    qos = channel.qos
    connection.close()  # as Celery does when Redis goes away mid-task

    with pytest.raises(ConnectionError, match="closed"):
        qos.ack("a-delivery-tag")
    with pytest.raises(ConnectionError, match="closed"):
        qos.reject("a-delivery-tag", requeue=False)
    with pytest.raises(ConnectionError, match="closed"):
        qos.restore_unacked()
