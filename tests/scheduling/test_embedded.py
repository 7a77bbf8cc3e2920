"""The scheduler on a thread of a worker (`herald worker --compact`, `herald up`'s default
layout): real processes, real Redis, as in test_beat_integration."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.worker import state as worker_state
from fastapi.testclient import TestClient

from herald.core.clock import utcnow
from herald.publishing.models import PublicationState
from herald.scheduling import embedded
from herald.scheduling.heartbeat import last_beat
from herald.scheduling.models import PeriodicRun
from herald.worker import app
from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver
from tests.scheduling.test_beat_integration import (
    rows_by_key,
    schedule_spread,
    wait_delivered,
    webhook_channel,
)
from tests.workers import WorkerProcess, wait_for

COMPACT = ("worker", "--compact", "--concurrency", "4")


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"], indirect=True)
def test_a_compact_worker_alone_sends_scheduled_posts_once_and_runs_the_schedulers_jobs(
    client: TestClient,
    account: Account,
    receiver: Receiver,
    redis_broker: str,
    db: SessionFactory,
    tmp_path: Path,
) -> None:
    period = 2  # the reconciler's: the test sees several periods
    env = {"HERALD_RECONCILE_INTERVAL_SECONDS": str(period)}
    channel_id = webhook_channel(client, account, receiver)
    log = tmp_path / "worker.log"
    # No `herald beat` anywhere: the worker's own thread must dispatch these.
    worker = WorkerProcess(env, args=COMPACT, log=log)
    try:
        worker.start(timeout=60)
        due = schedule_spread(
            client, account, channel_id, 20, start=utcnow() + timedelta(seconds=1), over=3
        )
        wait_delivered(db, receiver, due, timeout=120)

        def reconciler_runs() -> int:
            with db() as s:
                run = s.get(PeriodicRun, "reconcile-stuck-deliveries")
                return run.run_count if run is not None else 0

        # The jobs Herald's scheduler runs itself (not Celery's default scheduler, which
        # would only send them), and its heartbeat, which the health check reads.
        wait_for(lambda: reconciler_runs() >= 2, timeout=30, what="two reconciler runs")
        with db() as s:
            beat = last_beat(s)
        assert beat is not None and utcnow() - beat < timedelta(seconds=30)
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, log.read_text()[-3000:]

    assert len(receiver.posts()) == 20  # once each
    early = [key for key, when in due.items() if receiver.delivered[key].at < when.timestamp()]
    assert not early
    rows = rows_by_key(db)
    assert {rows[key][0] for key in due} == {PublicationState.PUBLISHED}
    # Its schedule is kept in the database, never in a file beside the process (Celery's
    # persistent scheduler, which its embedded service uses unless told otherwise).
    assert not list(Path.cwd().glob("celerybeat-schedule*"))


class _Thread(threading.Thread):
    """Stands in for Celery's embedded beat service: a thread whose run we decide."""

    def __init__(self, run: Any) -> None:
        super().__init__(daemon=True)
        self._run = run
        self.service = self
        self.stopped = threading.Event()

    def run(self) -> None:
        self._run(self)

    def stop(self, wait: bool = False) -> None:
        self.stopped.set()


def test_a_scheduler_thread_that_ends_unasked_stops_the_worker_for_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_state, "should_stop", None)  # restored after the test
    monkeypatch.setattr(
        embedded, "EmbeddedService", lambda *a, **k: _Thread(lambda t: None)
    )  # ends at once, as a thread killed by an error would
    scheduler = embedded.EmbeddedScheduler(app)
    scheduler.start()
    wait_for(lambda: worker_state.should_stop is not None, timeout=5, what="a stop request")
    assert worker_state.should_stop == 1  # warm, and a failure's exit status


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_compact_worker_whose_scheduler_fails_exits_1_for_its_manager_to_restart(
    redis_broker: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = WorkerProcess(args=COMPACT, preload=("tests.scheduling.failing_scheduler",), log=log)
    try:
        worker.start(timeout=60)
        assert worker.proc is not None
        code = worker.proc.wait(timeout=60)
    finally:
        worker.stop()
    text = log.read_text()
    assert code == 1, text[-3000:]
    assert "the scheduler thread ended unasked" in text


def test_a_scheduler_stopped_with_the_worker_does_not_stop_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_state, "should_stop", None)
    monkeypatch.setattr(
        embedded, "EmbeddedService", lambda *a, **k: _Thread(lambda t: t.stopped.wait(10))
    )
    scheduler = embedded.EmbeddedScheduler(app)
    scheduler.start()
    assert scheduler.running
    scheduler.stop()  # what the worker's shutting-down signal calls
    assert not scheduler.running
    assert scheduler._watch is not None
    scheduler._watch.join(5)
    assert worker_state.should_stop is None
