"""The scheduler as it runs: real `herald beat` and `herald worker` processes, real Redis.

The tests wait on the state that must hold (the receiver's deliveries, the database's
rows, the clock passing a due time), each wait bounded by a generous deadline that only
limits how long a failure takes to show."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from herald.core.clock import utcnow
from herald.publishing.models import Publication, PublicationState
from herald.scheduling.heartbeat import last_beat
from herald.scheduling.models import PeriodicRun
from herald.scheduling.service import epoch_key
from tests.conftest import Account, SessionFactory
from tests.fakes.webhook_receiver import Receiver
from tests.workers import BeatProcess, WorkerProcess, wait_for

pytestmark = pytest.mark.integration


def webhook_channel(
    client: TestClient, account: Account, receiver: Receiver, **settings: object
) -> str:
    response = client.post(
        "/api/v1/channels",
        json={
            "platform": "webhook",
            "name": "hook",
            "credentials": receiver.credentials(),
            "settings": settings,
        },
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    channel_id: str = response.json()["id"]
    return channel_id


def schedule_spread(
    client: TestClient,
    account: Account,
    channel_id: str,
    count: int,
    *,
    start: datetime,
    over: float,
) -> dict[str, datetime]:
    """Schedule ``count`` posts due evenly from ``start`` over ``over`` seconds, each at
    least a second after it is scheduled (one due already would be queued at once); return
    each delivery's due time by its idempotency key (what the receiver records)."""
    due = {}
    for i in range(count):
        post = client.post("/api/v1/posts", json={"title": f"p{i}"}, headers=account.headers)
        when = max(start + timedelta(seconds=over * i / count), utcnow() + timedelta(seconds=1))
        response = client.post(
            f"/api/v1/posts/{post.json()['id']}/schedule",
            json={"scheduled_at": when.isoformat(), "channel_ids": [channel_id]},
            headers=account.headers,
        )
        assert response.status_code == 202, response.text
        assert response.json()["publications"][0]["state"] == "scheduled"
        key = f"herald-{response.json()['publications'][0]['id'].replace('-', '')}"
        due[key] = when
    return due


def missing_states(
    db: SessionFactory, receiver: Receiver, due: dict[str, datetime]
) -> list[tuple[str, str, str | None]]:
    """The deliveries the receiver has not seen: (key, state, last error), for a failure."""
    with db() as s:
        rows = s.execute(
            select(Publication.idempotency_key, Publication.state, Publication.last_error)
        )
        return [
            (k, str(st), err) for k, st, err in rows if k in due and k not in receiver.delivered
        ]


def wait_delivered(
    db: SessionFactory, receiver: Receiver, due: dict[str, datetime], timeout: float
) -> None:
    try:
        wait_for(lambda: set(due) <= set(receiver.delivered), timeout=timeout, interval=0.2)
    except TimeoutError:
        pytest.fail(f"not delivered: {missing_states(db, receiver, due)}")


def wait_until(moment: datetime, timeout: float = 30) -> None:
    """Wait for the wall clock to pass ``moment``: the subject of a test whose deliveries
    must fall due while Herald is stopped (the processes have no clock to inject)."""
    wait_for(lambda: utcnow() > moment, timeout=timeout, interval=0.05, what=f"{moment}")


def rows_by_key(db: SessionFactory) -> dict[str, tuple[PublicationState, int, datetime | None]]:
    """Each delivery's (state, attempts, when it was last queued), by idempotency key."""
    with db() as s:
        rows = s.execute(
            select(
                Publication.idempotency_key,
                Publication.state,
                Publication.attempt,
                Publication.enqueued_at,
            )
        )
        return {key: (state, attempt, enqueued) for key, state, attempt, enqueued in rows}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_stop_and_restart_every_delivery_goes_out_once(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str, db: SessionFactory
) -> None:
    channel_id = webhook_channel(client, account, receiver)
    # The scheduler first: it starts while the worker does, which takes longer.
    beat, worker = BeatProcess().start(), WorkerProcess()
    try:
        worker.start()
        while_running = schedule_spread(
            client, account, channel_id, 30, start=utcnow() + timedelta(seconds=1), over=1
        )
        wait_delivered(db, receiver, while_running, timeout=90)
    finally:
        beat.stop()
        worker.stop()
    assert set(receiver.delivered) == set(while_running)

    # Herald is down: one group falls due now, the other only after the restart.
    down_at = utcnow()
    while_stopped = schedule_spread(
        client, account, channel_id, 40, start=down_at + timedelta(seconds=1), over=1
    )
    after_restart = schedule_spread(
        client, account, channel_id, 30, start=utcnow() + timedelta(seconds=6), over=2
    )
    wait_until(max(while_stopped.values()))
    assert set(receiver.delivered) == set(while_running)  # nothing went out while down
    restarted_at = utcnow()

    beat, worker = BeatProcess().start(), WorkerProcess()
    try:
        worker.start()
        wait_delivered(db, receiver, {**while_stopped, **after_restart}, timeout=120)
    finally:
        beat.stop()
        worker.stop()

    due = {**while_running, **while_stopped, **after_restart}
    assert len(receiver.posts()) == 100  # exactly once: not one resend
    assert set(receiver.delivered) == set(due)
    rows = rows_by_key(db)
    assert {key: rows[key][:2] for key in due} == dict.fromkeys(
        due, (PublicationState.PUBLISHED, 1)
    )
    # No delivery went out before its time, before or after the restart.
    early = [key for key, when in due.items() if receiver.delivered[key].at < when.timestamp()]
    assert not early
    # The ones that fell due during the stop went out right after the start: the restarted
    # scheduler's first dispatch pass queued every one of them (one pass, one `now`).
    queued_after_restart = [rows[key][2] for key in (*while_stopped, *after_restart)]
    first_pass = min(when for when in queued_after_restart if when is not None)
    assert first_pass > restarted_at
    assert {rows[key][2] for key in while_stopped} == {first_pass}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"], indirect=True)
def test_two_schedulers_at_once_post_once_and_run_each_period_once(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str, db: SessionFactory
) -> None:
    period = 2  # the reconciler's period, so the test sees several of them
    more_runs = 5
    env = {"HERALD_RECONCILE_INTERVAL_SECONDS": str(period)}
    channel_id = webhook_channel(client, account, receiver)
    due = schedule_spread(
        client, account, channel_id, 60, start=utcnow() + timedelta(seconds=3), over=10
    )

    def reconciler_runs() -> tuple[int, int]:
        """(runs, skipped sends) of the reconciler so far."""
        with db() as s:
            run = s.get(PeriodicRun, "reconcile-stuck-deliveries")
            return (run.run_count, run.skipped_count) if run is not None else (0, 0)

    beats = [BeatProcess(env).start(), BeatProcess(env).start()]
    worker = WorkerProcess(env)
    started = utcnow()
    try:
        worker.start()
        wait_delivered(db, receiver, due, timeout=120)
        # Both schedulers are up and sending the reconciler each period: count the runs of
        # the next few periods, until a second send of a period has found it taken.
        runs_before, counted_from = reconciler_runs()[0], utcnow()
        wait_for(
            lambda: reconciler_runs()[0] >= runs_before + more_runs and reconciler_runs()[1] > 0,
            timeout=120,
            interval=0.2,
            what="reconciler runs",
        )
        assert all(beat.proc is not None and beat.proc.poll() is None for beat in beats)
    finally:
        for beat in beats:
            beat.stop()
        worker.stop()
    ended = utcnow()

    assert len(receiver.posts()) == 60  # both schedulers dispatched; nothing went out twice
    assert set(receiver.delivered) == set(due)
    run_count, skipped = reconciler_runs()
    periods = epoch_key(ended, period) - epoch_key(started, period) + 1
    counted = epoch_key(ended, period) - epoch_key(counted_from, period)
    print(f"reconcile: {periods} periods, {run_count} runs, {skipped} skipped sends")
    # Each scheduler sent the job once a period; the second send of a period found it
    # taken. Never more runs than periods (the guarantee), from the schedulers' start. Once
    # both were up it ran most periods (on a loaded machine a scheduler's tick can come
    # late enough to miss one).
    assert run_count <= periods, (run_count, periods)
    assert run_count - runs_before >= counted // 2, (run_count - runs_before, counted)
    assert skipped > 0, (skipped, run_count)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"], indirect=True)
def test_the_reconciler_runs_every_period_while_slow_deliveries_fill_the_pool(
    client: TestClient, account: Account, receiver: Receiver, redis_broker: str, db: SessionFactory
) -> None:
    """It shared the pool with publishing: with both pool processes busy on slow
    deliveries it ran 4 times in 2 minutes instead of 12."""

    def runs() -> int:
        with db() as s:
            run = s.get(PeriodicRun, "reconcile-stuck-deliveries")
            return run.run_count if run is not None else 0

    def scheduler_started() -> bool:
        with db() as s:
            return last_beat(s) is not None

    period = 2
    env = {"HERALD_RECONCILE_INTERVAL_SECONDS": str(period)}
    channel_id = webhook_channel(client, account, receiver, read_timeout=60)
    receiver.hold_seconds = 40  # longer than the test: the pool stays full throughout
    for i in range(4):  # two for the two pool processes, two waiting behind them
        post = client.post("/api/v1/posts", json={"title": f"s{i}"}, headers=account.headers)
        client.post(
            f"/api/v1/posts/{post.json()['id']}/publish",
            json={"channel_ids": [channel_id]},
            headers=account.headers,
        )
    beat = BeatProcess(env).start()
    worker = WorkerProcess(env)
    try:
        wait_for(scheduler_started, timeout=60)
        worker.start()  # --concurrency 2
        wait_for(lambda: len(receiver.posts()) == 2, timeout=30)  # the pool is full
        before, started = runs(), utcnow()
        wanted = 5
        try:
            wait_for(lambda: runs() >= before + wanted, timeout=(wanted + 2) * period)
        except TimeoutError:
            pytest.fail(f"{runs() - before} reconciler runs in {(wanted + 2) * period} s")
        ended, ran = utcnow(), runs() - before
        assert len(receiver.posts()) == 2  # still full: nothing finished meanwhile
    finally:
        beat.stop()
        worker.kill()  # its tasks are held by the receiver for a while yet
    periods = epoch_key(ended, period) - epoch_key(started, period)
    print(f"reconciler: {ran} runs in {periods} periods with the pool full")
    assert ran >= periods - 1  # one each period (the first may have run before `before`)
