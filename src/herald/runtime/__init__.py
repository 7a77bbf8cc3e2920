"""Running Herald's processes on one machine: the embedded Redis and the `herald up` supervisor.

The helpers here are shared by both: every child is started in its own session (so a
Ctrl-C in the terminal reaches only the supervisor, which then stops the children in
order) and, on Linux, asks the kernel to SIGTERM it when the supervisor dies, so a
SIGKILLed supervisor leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO

_PR_SET_PDEATHSIG = 1

# How long `herald up` waits for everything to answer healthy before it gives up (seconds).
START_TIMEOUT = 120.0

Output = int | IO[bytes] | None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets PR_SET_PDEATHSIG=SIGTERM, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved before fork: the child only makes two system calls.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died between fork() and prctl(): then nobody would tell us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: Output = None,
    stderr: Output = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new process group that dies with this process."""
    return subprocess.Popen(
        list(argv),
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - single-threaded here, see module doc
    )


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def describe_exit(code: int) -> str:
    """``exit code 3`` or ``signal SIGKILL``, for log lines."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
