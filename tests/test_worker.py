from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from herald.core.settings import Settings, get_settings
from herald.worker import (
    PRIORITY_BACKLOG,
    PRIORITY_NOW,
    PRIORITY_TURN,
    QUEUES,
    WorkerPlan,
    app,
    celery_config,
    compact_plan,
    queue_keys,
    worker_plans,
)


def test_celery_speaks_json_only() -> None:
    conf = app.conf
    assert conf.task_serializer == conf.result_serializer == conf.event_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_queues_and_routing() -> None:
    assert {q.name for q in app.conf.task_queues} == set(QUEUES)
    assert app.amqp.router.route({}, "herald.channels.verify")["queue"].name == "publishing"
    assert app.amqp.router.route({}, "herald.sources.fetch")["queue"].name == "sources"
    assert app.amqp.router.route({}, "herald.agents.run")["queue"].name == "generation"
    assert app.amqp.router.route({}, "herald.maintenance.x")["queue"].name == "maintenance"
    app.loader.import_default_modules()  # what a worker does at start
    assert "herald.channels.verify" in app.tasks


def test_limits_prefetch_events_and_visibility_timeout() -> None:
    settings = get_settings()
    conf = app.conf
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is False  # opt-in: HERALD_TASK_SENT_EVENTS
    assert conf.task_soft_time_limit == 50 * 60
    assert conf.task_time_limit == 60 * 60
    broker_vt = conf.broker_transport_options["visibility_timeout"]
    assert broker_vt == conf.result_backend_transport_options["visibility_timeout"]
    assert broker_vt == settings.visibility_timeout > conf.task_time_limit


def test_task_sent_events_are_opt_in() -> None:
    assert celery_config(Settings(task_sent_events=True))["task_send_sent_event"] is True
    assert celery_config(Settings())["task_send_sent_event"] is False


@pytest.mark.parametrize("keeps_result", [False, True])
def test_a_send_to_a_hung_redis_gives_up_after_one_timeout(keeps_result: bool) -> None:
    """A Redis that takes connections and never answers (the backlog of a socket nobody
    accepts on) costs a send one Redis timeout, not one per retry, nor forever; a task
    whose result is kept first subscribes to it on the result backend: one more."""

    timeout = 0.3
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        celery = Celery("hung")
        celery.conf.update(celery_config(Settings(broker_url=url, redis_timeout_seconds=timeout)))
        start = time.perf_counter()
        with pytest.raises((OperationalError, RuntimeError)):
            celery.send_task(
                "herald.publishing.deliver", ("x",), queue="publishing",
                ignore_result=not keeps_result,
            )  # fmt: skip
        elapsed = time.perf_counter() - start
        celery.close()
    timeouts = 2 if keeps_result else 1
    assert timeouts * timeout <= elapsed < timeouts * timeout + 0.5


def test_herald_worker_runs_publishing_on_threads_and_the_rest_on_processes() -> None:
    publishing, rest = worker_plans(Settings())
    assert publishing == WorkerPlan(("publishing",), "threads", 32, "publishing")
    assert rest == WorkerPlan(("generation", "sources", "maintenance"), "prefork", None)
    assert publishing.argv("INFO") == [
        "worker",
        "-Q",
        "publishing",
        "--loglevel=INFO",
        "--concurrency=32",
        "--pool=threads",
        "--hostname=publishing@%h",
    ]
    assert "--hostname" not in " ".join(rest.argv("INFO"))  # Celery's own name: celery@host


def test_each_queue_gets_its_own_pool_settings() -> None:
    settings = Settings(publishing_pool="prefork", publishing_concurrency=4)
    settings = settings.model_copy(update={"worker_pool": "solo", "worker_concurrency": 1})
    assert worker_plans(settings) == [
        WorkerPlan(("publishing",), "prefork", 4, "publishing"),
        WorkerPlan(("generation", "sources", "maintenance"), "solo", 1),
    ]
    # One queue set asked for: one worker, the pool of its kind of queue.
    assert worker_plans(settings, ["publishing"]) == [WorkerPlan(("publishing",), "prefork", 4)]
    assert worker_plans(settings, ["sources", "generation"]) == [
        WorkerPlan(("sources", "generation"), "solo", 1)
    ]
    # A pool or a concurrency asked for: one worker on every queue, as asked.
    assert worker_plans(settings, pool="threads", concurrency=8) == [
        WorkerPlan(QUEUES, "threads", 8)
    ]
    assert worker_plans(settings, ["publishing"], concurrency=64) == [
        WorkerPlan(("publishing",), "prefork", 64)
    ]


def test_the_compact_worker_runs_every_queue_on_threads_sized_for_both_kinds() -> None:
    settings = Settings(publishing_concurrency=20).model_copy(update={"worker_concurrency": 3})
    assert compact_plan(settings) == WorkerPlan(QUEUES, "threads", 23)
    # Whatever pool the split layout's workers are given: one pool here, and it is threads.
    settings = settings.model_copy(update={"publishing_pool": "prefork", "worker_pool": "solo"})
    assert compact_plan(settings).pool == "threads"
    assert compact_plan(settings, concurrency=8) == WorkerPlan(QUEUES, "threads", 8)
    unset = Settings(publishing_concurrency=20).model_copy(update={"worker_concurrency": None})
    assert compact_plan(unset).concurrency == 20 + (os.cpu_count() or 1)


def test_priority_lists_are_the_ones_kombu_fills(redis_broker: str) -> None:
    """Fails if kombu's Redis transport changes how it names a priority's list: the
    metrics' queue depth reads them by name (herald.worker.queue_keys)."""
    from herald.publishing.actions.compare_and_set import enqueue  # noqa: PLC0415

    client = redis.Redis.from_url(redis_broker)
    enqueue(uuid.uuid4(), str(uuid.uuid4()), PRIORITY_BACKLOG)
    enqueue(uuid.uuid4(), str(uuid.uuid4()), PRIORITY_BACKLOG)
    enqueue(uuid.uuid4(), str(uuid.uuid4()))
    enqueue(uuid.uuid4(), str(uuid.uuid4()), PRIORITY_TURN)
    assert [client.llen(key) for key in queue_keys("publishing")] == [1, 1, 2]
    assert app.conf.broker_transport_options["priority_steps"] == [
        PRIORITY_TURN,
        PRIORITY_NOW,
        PRIORITY_BACKLOG,
    ]
