"""Two workers from one command (herald.runtime.workers): a stop reaches the fork, and a
fork that exits unasked stops the main one. Real forks of the test process; ``main``
stands in for the Celery worker that runs in the main process."""

from __future__ import annotations

import signal
import sys
import threading

import pytest
from celery.signals import worker_shutting_down

from herald.runtime.workers import run_beside

STOP = {signal.SIGTERM}


def test_a_warm_shutdown_is_passed_on_and_waited_for() -> None:
    """Celery's shutdown signal in the main process sends the fork SIGTERM; run_beside
    returns only once the fork has finished, with the fork's clean exit."""
    # Blocked before the fork: the fork waits for the SIGTERM instead of dying of it.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP)

    def fork() -> None:
        signal.sigwait(STOP)  # a worker finishing its tasks, then leaving cleanly
        sys.exit(0)

    def main() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        worker_shutting_down.send(sender="test", sig="SIGTERM", how="Warm", exitcode=0)

    try:
        with pytest.raises(SystemExit) as stopped:
            run_beside(fork, main)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    assert stopped.value.code == 0


def test_a_fork_that_fails_makes_the_exit_code_non_zero() -> None:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP)

    def fork() -> None:
        signal.sigwait(STOP)
        sys.exit(3)

    def main() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        worker_shutting_down.send(sender="test", sig="SIGTERM", how="Warm", exitcode=0)

    try:
        with pytest.raises(SystemExit) as stopped:
            run_beside(fork, main)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    assert stopped.value.code == 1


def test_a_fork_that_exits_unasked_stops_the_main_one() -> None:
    """The publishing worker went away by itself: the main worker is sent SIGTERM (its
    warm shutdown), and the pair exits 1 so a service manager restarts both."""
    told_to_stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: told_to_stop.set())

    def main() -> None:
        assert told_to_stop.wait(30), "the main worker was never told to stop"

    try:
        with pytest.raises(SystemExit) as stopped:
            run_beside(lambda: sys.exit(0), main)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 1
