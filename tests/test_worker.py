from __future__ import annotations

from herald.core.settings import get_settings
from herald.worker import QUEUES, app


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
    from herald.core.settings import Settings
    from herald.worker import celery_config

    assert celery_config(Settings(task_sent_events=True))["task_send_sent_event"] is True
    assert celery_config(Settings())["task_send_sent_event"] is False
