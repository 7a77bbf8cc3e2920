"""Fault: SIGTERM while many deliveries are in flight on the threads pool.

``herald worker`` as it starts by default (the publishing queue on threads, forked beside
a worker for the other queues) holds 50 deliveries at once at a slow receiver when its
main process gets SIGTERM, as a service manager, Kubernetes or ``herald up`` send it.
The warm shutdown reaches the forked publishing worker, which lets every running delivery
finish and record its outcome: none is lost, none is sent twice, and both processes exit
cleanly.
"""

from __future__ import annotations

import signal

from herald.publishing.models import PublicationState
from tests.fakes.webhook_receiver import Receiver
from tests.faults.stack import CHANNEL_SETTINGS, FaultStack
from tests.workers import wait_for

N = 50
PUBLISHING = PublicationState.PUBLISHING


def test_sigterm_with_many_deliveries_in_flight(
    fault_stack: FaultStack, receiver: Receiver
) -> None:
    fault_stack.env["HERALD_PUBLISHING_CONCURRENCY"] = str(N + 14)
    fault_stack.env["HERALD_WORKER_CONCURRENCY"] = "1"
    # Longer than the hold: this case is about the shutdown, not about late lease renewals
    # on a crowded machine (tests/faults/test_slow_receiver.py has those).
    fault_stack.env["HERALD_PUBLISH_LEASE_SECONDS"] = "20"
    # Held until all are in flight and well past the SIGTERM, inside the read timeout.
    receiver.hold_seconds = 10.0
    channel = fault_stack.channel({**CHANNEL_SETTINGS, "read_timeout": 20.0})
    batch = fault_stack.schedule(N, channel_id=channel)
    fault_stack.start(workers=0)
    worker = fault_stack.start_worker(args=("worker",))  # the default: two workers
    batch.release(over=0.5)

    # Every delivery is at the receiver, waiting for its answer.
    wait_for(
        lambda: batch.posts_received() == N and batch.count(PUBLISHING) == N,
        60,
        0.05,
        what=f"{N} requests in flight",
    )
    in_flight = batch.count(PUBLISHING)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)  # the main process only
    code = worker.proc.wait(timeout=60)

    tally = fault_stack.finish(
        "SIGTERM, threads pool, 50 in flight",
        batch,
        note=f"SIGTERM with {in_flight} deliveries publishing and all {N} at the receiver; "
        f"the worker exited with {code}",
    )
    fault_stack.assert_clean(tally, all_published=True)
    assert tally.resent == 0, tally  # each finished in the shutdown: nothing re-sent
    assert code == 0, fault_stack.logs()
