"""Two Celery workers from one command: ``herald worker`` with no queues named runs the
publishing queue on its I/O pool and the other queues on processes (see
``herald.worker.worker_plans``), and one Celery worker has only one pool.

The second worker is a fork of the first, made before either starts Celery: it has every
module the command imported (a benchmark's or a test's extra tasks included), and it
stays in the command's process group, so whatever stops the group stops both. Around it:

- A stop (SIGTERM, SIGINT, SIGQUIT) reaches the main process only, under a service manager
  (``KillMode=mixed``), Kubernetes or ``herald up``; Celery's ``worker_shutting_down`` in
  the main process passes it on (a warm shutdown as SIGTERM, a cold one as SIGQUIT), and
  the main process waits for the fork before it exits, so both finish their running tasks.
- The fork dies with the main process (PR_SET_PDEATHSIG, as ``herald up``'s children).
- A fork that exits while nobody asked makes the main process stop too, with exit code 1,
  so the supervisor (systemd, ``herald up``) restarts the pair instead of leaving the
  publishing queue without a consumer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from celery.signals import worker_shutting_down

from herald.runtime import describe_exit, die_with_parent

log = logging.getLogger(__name__)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _run_child(run: Callable[[], None], preexec: Callable[[], None] | None) -> None:
    """The fork's whole life: run, then leave without running the parent's clean-up."""
    code = 0
    try:
        if preexec is not None:
            preexec()
        run()
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        log.exception("the forked worker failed")
        code = 1
    finally:
        os._exit(code)


class _Pair:
    """The main process's view of its fork: pass stops on, notice an early exit."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stopping = False
        self.left_unasked = False
        self.status: int | None = None
        self._done = threading.Event()

    def forward(self, how: str) -> None:
        self.stopping = True
        sig = signal.SIGQUIT if how.lower() == "cold" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def watch(self) -> None:
        """In a thread: wait for the fork; if it went away unasked, stop this process."""
        _, status = os.waitpid(self.pid, 0)
        self.status = os.waitstatus_to_exitcode(status)
        self._done.set()
        if not self.stopping:
            self.left_unasked = True
            log.error(
                "the forked worker (pid %d) exited with %s; stopping this one too",
                self.pid,
                describe_exit(self.status),
            )
            os.kill(os.getpid(), signal.SIGTERM)

    def wait(self) -> int:
        self.forward("warm")
        self._done.wait()
        return self.status or 0


def run_beside(child: Callable[[], None], main: Callable[[], None]) -> None:
    """Run ``child`` in a fork and ``main`` here; return once both have stopped. Raises
    SystemExit with the first non-zero exit code, 1 when the fork exited unasked."""
    preexec = die_with_parent()  # made here: it checks its parent is this process
    pid = os.fork()
    if pid == 0:
        _run_child(child, preexec)
    pair = _Pair(pid)

    def shutting_down(how: str = "warm", **_: Any) -> None:
        pair.forward(how)

    worker_shutting_down.connect(shutting_down, weak=False)
    threading.Thread(target=pair.watch, name="herald-forked-worker", daemon=True).start()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = _exit_code(exc)
    finally:
        child_code = pair.wait()
        worker_shutting_down.disconnect(shutting_down)
    if pair.left_unasked:
        code = code or 1
    raise SystemExit(code or (1 if child_code else 0))
