"""The supervisor of `herald up`: starts child processes, restarts the ones that exit with
back-off, gives up on one that keeps exiting, and stops them all.

A child that exits while nobody asked it to is restarted after 1 s, 2 s, 4 s, ... (at
most 30 s); the back-off resets once it has stayed up for a minute. A child that exits 5
times within a minute raises :class:`GaveUp`. Stopping sends SIGTERM to each child, waits
up to 7 s, then SIGKILLs the process groups still alive (pool children included).
:mod:`herald.runtime.supervisor` is the command that runs it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from herald.core.exceptions import HeraldFault
from herald.runtime import describe_exit, signal_group, spawn

log = logging.getLogger(__name__)

BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0
GIVE_UP_FAILURES = 5
GIVE_UP_WINDOW = 60.0
STOP_GRACE = 7.0

Clock = Callable[[], float]


def restart_delay(consecutive_failures: int) -> float:
    """1 s after the first failure in a row, then doubling, at most ``BACKOFF_MAX``."""
    return float(min(2 ** max(consecutive_failures - 1, 0), BACKOFF_MAX))


@dataclass
class Child:
    """One supervised process: how to start it, and its restart bookkeeping.

    Started as ``argv`` in its own process group, or by ``launch`` when it needs more
    than a command line (the embedded Redis waits until it answers). With ``log_path``
    its stdout and stderr are appended to that file instead of the terminal.
    """

    name: str
    argv: Sequence[str] = ()
    launch: Callable[[], subprocess.Popen[bytes]] | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    consecutive_failures: int = 0
    recent_failures: deque[float] = field(default_factory=deque)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Failure(HeraldFault):
    """Herald cannot run as started; ``log_paths`` are the logs that explain why."""

    def __init__(self, message: str, log_paths: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.log_paths = list(log_paths)


class GaveUp(Failure):
    """A child keeps exiting; the message says which and how."""


class Supervisor:
    """Starts children, restarts the ones that exit, and stops them all.

    ``poll()`` is called in a loop by its owner; it never sleeps, so tests drive it with
    their own clock.
    """

    def __init__(
        self,
        children: Sequence[Child],
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.children = list(children)
        self.env = dict(env) if env is not None else None
        self.clock = clock

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def poll(self) -> None:
        """Reap exited children and start the ones whose back-off is over.

        Raises ``GaveUp`` when a child has exited ``GIVE_UP_FAILURES`` times within
        ``GIVE_UP_WINDOW`` seconds.
        """
        now = self.clock()
        for child in self.children:
            if child.proc is None:
                if child.restart_at is not None and now >= child.restart_at:
                    log.warning("restarted %s (pid %d)", child.name, self._start(child).pid)
                continue
            code = child.proc.poll()
            if code is None:
                if child.consecutive_failures and now - child.started_at >= STABLE_AFTER:
                    child.consecutive_failures = 0
                continue
            self._on_exit(child, code, now)

    def stop(self, grace: float = STOP_GRACE, hurry: Callable[[], bool] = lambda: False) -> None:
        """SIGTERM every child, wait up to ``grace`` s, then SIGKILL what is left."""
        started = [c for c in self.children if c.proc is not None]
        procs = [c.proc for c in started if c.proc is not None]
        for proc in procs:
            # The leader only: it stops its own children (Celery's pool children reset
            # SIGTERM to "die now", which would kill running tasks mid-flight).
            proc.send_signal(signal.SIGTERM)  # a no-op once reaped
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not hurry():
            if all(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.05)
        for proc in procs:
            # Also reaches what an exited leader left behind in its group.
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in started:
            child.proc = None
            child.restart_at = None

    # --- internals ----------------------------------------------------------------------

    def _start(self, child: Child) -> subprocess.Popen[bytes]:
        if child.launch:
            child.proc = child.launch()
        elif child.log_path is not None:
            with child.log_path.open("ab") as log_file:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                log_file.write(f"--- herald up: starting {child.name} at {stamp}\n".encode())
                log_file.flush()
                # The child has its own copy of the descriptor; ours closes here.
                child.proc = spawn(
                    child.argv, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
                )
        else:
            child.proc = spawn(child.argv, env=self.env)
        child.started_at = self.clock()
        child.restart_at = None
        return child.proc

    def _on_exit(self, child: Child, code: int, now: float) -> None:
        assert child.proc is not None
        pid = child.proc.pid
        # Whatever it left in its group (e.g. a worker's pool children) goes with it.
        signal_group(pid, signal.SIGKILL)
        child.proc = None
        if now - child.started_at >= STABLE_AFTER:
            child.consecutive_failures = 0
        child.consecutive_failures += 1
        child.recent_failures.append(now)
        while child.recent_failures and now - child.recent_failures[0] > GIVE_UP_WINDOW:
            child.recent_failures.popleft()
        how = describe_exit(code)
        if len(child.recent_failures) >= GIVE_UP_FAILURES:
            where = f"see {child.log_path}" if child.log_path else "see its output above"
            raise GaveUp(
                f"the {child.name} process exited {len(child.recent_failures)} times within "
                f"{GIVE_UP_WINDOW:g} s (last: {how}); giving up, {where}",
                [child.log_path] if child.log_path else [],
            )
        delay = restart_delay(child.consecutive_failures)
        child.restart_at = now + delay
        log.warning(
            "%s (pid %d) exited with %s after %.1f s; restarting in %g s",
            child.name,
            pid,
            how,
            now - child.started_at,
            delay,
        )
