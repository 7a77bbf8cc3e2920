"""Who holds SQLite's writer lock, and since when, without ever taking or waiting for it.

Herald's SQLite writers queue on an exclusive ``flock`` of ``<database>-writer.lock``
(``WriterLockedConnection`` in :mod:`herald.core.db`). A process stopped or stuck while
holding it stalls every write; the health check names it. On Linux the holder comes from
``/proc/locks`` (a read: nothing is locked, no writer is delayed), its program and state
from ``/proc/<pid>``. Elsewhere a non-blocking shared ``flock`` on a separate descriptor
only says whether the lock is held (released at once, it delays a writer by microseconds).

The kernel does not say when a lock was taken, so the time it has been held is measured
from the first check that saw the same holder (on :func:`herald.core.clock.utcnow`, which
tests can move): a lower bound, which a monitor polling every few seconds keeps close.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from herald.core.clock import utcnow

PROC_LOCKS = Path("/proc/locks")
# Process states from /proc/<pid>/stat, in words.
_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "waiting on the disk",
    "T": "stopped",
    "t": "stopped by a debugger",
    "Z": "exiting",
    "I": "idle",
}
STUCK_STATES = frozenset({"stopped", "stopped by a debugger"})
# The Herald commands a holder may be running, to name it without echoing its arguments.
_HERALD_COMMANDS = ("worker", "beat", "api", "up")


@dataclass(frozen=True, slots=True)
class Holder:
    """The process holding the writer lock, as far as this host can tell."""

    pid: int | None  # None when the holder cannot be named (no /proc/locks)
    program: str | None  # "herald worker", or the process's own name
    state: str | None  # "running", "stopped"...
    held_seconds: float  # since a check first saw this holder: a lower bound
    waiting: int  # writers queued behind it (0 when unknown)

    @property
    def stuck(self) -> bool:
        """Stopped (SIGSTOP, a debugger): it will not release the lock by itself."""
        return self.state in STUCK_STATES

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "another process"
        return f"{who} ({self.program})" if self.program else who


# The holder each lock file was first seen with, and when: {lock file: (holder, since)}.
_first_seen: dict[Path, tuple[tuple[int | None, str], datetime]] = {}
_first_seen_guard = threading.Lock()
# Before a holder is called stuck for how long it held the lock, the lock is watched this
# long: a busy writer that happened to hold it at each check releases it within it.
CONFIRM_SECONDS = 0.2
_CONFIRM_INTERVAL = 0.02


def holder(path: Path, *, stuck_after: float | None = None) -> Holder | None:
    """Who holds the writer lock at ``path`` now; None when nobody does (or no file).

    With ``stuck_after``, a holder seen for that long already is watched for
    :data:`CONFIRM_SECONDS` first, so that one that lets go in the meantime is not
    reported as having held the lock all along."""
    seen = _observe(path)
    if seen is None:
        return None
    found, held_seconds = seen
    if stuck_after is None or held_seconds < stuck_after or _stuck_state(found):
        return _holder(found, held_seconds)
    deadline = time.monotonic() + CONFIRM_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_CONFIRM_INTERVAL)
        again = _observe(path)
        if again is None or again[0].key != found.key:
            return _holder(again[0], again[1]) if again is not None else None
    return _holder(found, held_seconds)


@dataclass(frozen=True, slots=True)
class _Found:
    key: tuple[int | None, str]  # the pid and its start time: a reused pid is another
    pid: int | None
    waiting: int


def _observe(path: Path) -> tuple[_Found, float] | None:
    """The holder now and how long it has been seen holding the lock, or None."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        _forget(path)
        return None  # no writer ever ran on this database
    pid: int | None = None
    waiting = 0
    listed = _from_proc_locks(stat)
    if listed is not None:
        pid, waiting = listed
        held = pid is not None
    else:
        held = _held_by_probe(path)
    if not held:
        _forget(path)
        return None
    found = _Found((pid, _start_time(pid) if pid is not None else ""), pid, waiting)
    now = utcnow()
    with _first_seen_guard:
        first = _first_seen.get(path)
        if first is None or first[0] != found.key:
            first = _first_seen[path] = (found.key, now)
    return found, max(0.0, (now - first[1]).total_seconds())


def _holder(found: _Found, held_seconds: float) -> Holder:
    program, state = _process(found.pid) if found.pid is not None else (None, None)
    return Holder(found.pid, program, state, held_seconds, found.waiting)


def _stuck_state(found: _Found) -> bool:
    return found.pid is not None and _process(found.pid)[1] in STUCK_STATES


def _forget(path: Path) -> None:
    with _first_seen_guard:
        _first_seen.pop(path, None)


def _from_proc_locks(stat: os.stat_result) -> tuple[int | None, int] | None:
    """(holder pid, writers waiting) from /proc/locks, (None, 0) when the file is not
    locked, or None when /proc/locks cannot be read (not Linux)."""
    try:
        lines = PROC_LOCKS.read_text().splitlines()
    except OSError:
        return None
    # The kernel prints the locked inode as "<major>:<minor>:<inode>", the device in hex.
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pid: int | None = None
    waiting = 0
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:123 0 EOF"; a waiter has "->" after the id.
        blocked = len(fields) > 1 and fields[1] == "->"
        if blocked:
            del fields[1]
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != inode:
            continue
        if blocked:
            waiting += 1
        elif fields[4].isdigit():
            pid = int(fields[4])
    return pid, waiting


def _held_by_probe(path: Path) -> bool:
    """Whether an exclusive flock is held on ``path``: a shared one, tried without
    waiting on a descriptor of our own, and released at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def _start_time(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def _process(pid: int) -> tuple[str | None, str | None]:
    """The holder's program, named without its arguments, and its state in words."""
    fields = _stat_fields(pid)
    state = _STATES.get(fields[0], fields[0]) if fields else None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None, state
    words = [os.path.basename(arg.decode(errors="replace")) for arg in argv if arg]
    for at, word in enumerate(words[:-1]):
        if word == "herald" and words[at + 1] in _HERALD_COMMANDS:
            return f"herald {words[at + 1]}", state
    if "celery" in words:
        command = next((word for word in words if word in ("worker", "beat")), None)
        return f"celery {command}" if command else "celery", state
    return comm or None, state
