"""The fault suite: Herald as it runs (a real worker, a real scheduler, a Redis of the
test's own, SQLite and PostgreSQL), a batch of deliveries to a local webhook receiver,
and a fault injected while they go out. At the end each case counts lost, delivered
twice and stuck deliveries (all must be 0) and the same-key resends (reported); the
session ends with the table (``tests/faults/report.py``).

Each case is bounded (N deliveries, a settle limit of 30 s) so the suite stays a few
minutes on two cores. Every delivery here must end published: the receiver is healthy,
only Herald's own machinery is hurt.
"""

from __future__ import annotations

import time

import pytest

from herald.core.clock import utcnow
from herald.core.db import get_engine, session_scope
from herald.publishing.models import PublicationState
from herald.scheduling.models import PeriodicRun
from tests.fakes.webhook_receiver import Receiver
from tests.faults.stack import FaultStack, database_url, terminate_backends
from tests.workers import wait_for

N = 30
PUBLISHING = PublicationState.PUBLISHING
FREEZE_SECONDS = 10.0  # the SIGSTOP


def test_worker_sigkill_mid_delivery(fault_stack: FaultStack, receiver: Receiver) -> None:
    """The worker and its pool die with requests in flight; a new worker starts at once
    (as ``herald up`` or a service manager would). The reconciler takes back the
    deliveries whose lease ran out, and re-sends those whose messages the dead worker
    had reserved."""
    receiver.hold_seconds = 0.3  # each request is held: the kill lands mid-request
    batch = fault_stack.schedule(N)
    fault_stack.start()
    batch.release(over=4.0)

    wait_for(lambda: batch.in_flight_after(N // 3), 30, what="a third delivered, one in flight")
    in_flight, received = batch.count(PUBLISHING), batch.posts_received()
    (worker,) = fault_stack.workers
    worker.kill()
    killed = time.monotonic()
    fault_stack.start_worker()
    tally = fault_stack.finish(
        "worker SIGKILL mid-delivery",
        batch,
        note=f"killed with {in_flight} in flight after {received}/{N} received; "
        f"a new worker answered {time.monotonic() - killed:.1f} s later",
    )
    fault_stack.assert_clean(tally, all_published=True)


def test_redis_kill_9_and_restart(fault_stack: FaultStack, receiver: Receiver) -> None:
    """Redis dies (kill -9, no persistence: every queued and reserved message is gone)
    with deliveries in flight. It stays down while the worker finishes those (their acks
    have nowhere to go) and the scheduler queues more into it; then a fresh, empty Redis
    comes back on the same port. The database still knows every delivery."""
    # A quick receiver: Redis dies while the worker is busy taking and acking messages.
    receiver.hold_seconds = 0.05
    batch = fault_stack.schedule(N)
    fault_stack.start()
    batch.release(over=6.0)

    wait_for(lambda: batch.in_flight_after(N // 3), 30, what="a third delivered, one in flight")
    received, in_flight = batch.posts_received(), batch.ids_in(PUBLISHING)
    killed_at = utcnow()
    fault_stack.redis.kill()
    killed = time.monotonic()

    def worked_on_without_redis() -> bool:
        return batch.enqueued_since(killed_at) >= 3 and not in_flight & batch.ids_in(PUBLISHING)

    wait_for(worked_on_without_redis, 20, what="in-flight ones done and 3 queued while down")
    during = batch.enqueued_since(killed_at)
    fault_stack.redis.restart()
    tally = fault_stack.finish(
        "Redis kill -9, restarted empty",
        batch,
        note=f"killed with {len(in_flight)} in flight after {received}/{N} received; "
        f"down {time.monotonic() - killed:.1f} s, {during} queued meanwhile",
    )
    fault_stack.assert_clean(tally, all_published=True)


def test_redis_sigstop_for_10_s(fault_stack: FaultStack, receiver: Receiver) -> None:
    """Redis stops answering (SIGSTOP: connections stay open, nothing comes back) for
    10 s, then carries on (SIGCONT) with everything it held."""
    receiver.hold_seconds = 0.1
    batch = fault_stack.schedule(N)
    fault_stack.start()
    batch.release(over=8.0)

    wait_for(lambda: batch.posts_received() >= N // 4, 30, 0.05, what="a quarter delivered")
    received_before = batch.posts_received()
    fault_stack.redis.pause()
    frozen = time.monotonic()
    # The fault is a length of time; meanwhile, watch what Herald gets done without Redis.
    while time.monotonic() - frozen < FREEZE_SECONDS:
        procs = [p.proc for p in fault_stack.workers] + [p.proc for p in fault_stack.beats]
        assert all(proc is not None and proc.poll() is None for proc in procs), "one died"
        time.sleep(0.25)
    received_frozen = batch.posts_received() - received_before
    fault_stack.redis.resume()
    tally = fault_stack.finish(
        "Redis SIGSTOP 10 s",
        batch,
        note=f"frozen after {received_before}/{N} received; "
        f"{received_frozen} received while frozen",
    )
    fault_stack.assert_clean(tally, all_published=True)


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_postgresql_backends_terminated(fault_stack: FaultStack, receiver: Receiver) -> None:
    """Every connection to the database is terminated (``pg_terminate_backend``, as a
    failover or an administrator does), again and again while deliveries go out: claims,
    records, the dispatcher's and the reconciler's transactions die mid-way."""

    receiver.hold_seconds = 0.1
    batch = fault_stack.schedule(N)
    fault_stack.start()
    batch.release(over=6.0)

    wait_for(lambda: batch.posts_received() >= N // 4, 30, 0.05, what="a quarter delivered")
    url, rounds, terminated = database_url(), 0, 0
    deadline = time.monotonic() + 15
    while batch.posts_received() < 3 * N // 4 and time.monotonic() < deadline:
        terminated += terminate_backends(url)
        rounds += 1
        time.sleep(0.3)
    get_engine().dispose()  # the test's own pooled connections were terminated too
    tally = fault_stack.finish(
        "PostgreSQL backends terminated",
        batch,
        note=f"{terminated} connections terminated in {rounds} rounds "
        "while the 2nd and 3rd quarters went out",
    )
    # The fault hit Herald, not an idle database: connections died in at least half the
    # rounds' worth (between rounds the pools may not have connected again yet).
    assert terminated >= max(3, rounds // 2), (terminated, rounds)
    fault_stack.assert_clean(tally, all_published=True)


def test_two_schedulers_at_once(fault_stack: FaultStack, receiver: Receiver) -> None:
    """Two ``herald beat`` side by side, every delivery due at the same instant: both
    dispatchers race for the same rows, and both send the reconciler every second."""

    batch = fault_stack.schedule(N)
    fault_stack.start(beats=2)
    batch.release(over=0.0, start_in=1.0)

    def reconciler_runs() -> str:
        with session_scope() as session:
            run = session.get(PeriodicRun, "reconcile-stuck-deliveries")
            runs, skipped = (run.run_count, run.skipped_count) if run else (0, 0)
        return f"burst of {N} due at once; reconciler ran {runs} times, {skipped} sends skipped"

    tally = fault_stack.finish("two schedulers (herald beat x2)", batch, note=reconciler_runs)
    assert all(b.proc is not None and b.proc.poll() is None for b in fault_stack.beats)
    fault_stack.assert_clean(tally, all_published=True)
