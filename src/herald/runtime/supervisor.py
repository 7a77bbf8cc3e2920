"""`herald up`: every Herald process on one machine, supervised.

Start order: the embedded Redis (when no broker is configured), then ``prepare()``
(migrations, and the first admin on an empty database), then three children, each
``python -m herald <api|worker|beat>`` in its own process group. All four are
supervised:

- A child that exits while nobody asked it to is restarted after 1 s, 2 s, 4 s, ...
  (at most 30 s); the back-off resets once it has stayed up for a minute. A child that
  exits 5 times within a minute is a fault, not bad luck: ``herald up`` says so on
  stderr and exits non-zero instead of looping forever.
- SIGINT (Ctrl-C), SIGTERM or SIGHUP stop everything: SIGTERM to each child, up to
  7 s for them to finish (a Celery worker finishes its running tasks), SIGKILL to the
  process groups still alive (pool children included), then Redis last, so nothing
  loses its broker while stopping. A second Ctrl-C skips the wait.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from rich.console import Console

from herald.core.settings import Settings, get_settings
from herald.runtime import describe_exit, signal_group, spawn
from herald.runtime.embedded_redis import EmbeddedRedis, EmbeddedRedisError

log = logging.getLogger(__name__)

BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0
GIVE_UP_FAILURES = 5
GIVE_UP_WINDOW = 60.0
STOP_GRACE = 7.0
REDIS_STOP_TIMEOUT = 2.0
POLL_INTERVAL = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Clock = Callable[[], float]


def restart_delay(consecutive_failures: int) -> float:
    """1 s after the first failure in a row, then doubling, at most ``BACKOFF_MAX``."""
    return float(min(2 ** max(consecutive_failures - 1, 0), BACKOFF_MAX))


@dataclass
class Child:
    """One supervised process: how to start it, and its restart bookkeeping.

    Started as ``argv`` in its own process group, or by ``launch`` when it needs more
    than a command line (the embedded Redis waits until it answers).
    """

    name: str
    argv: Sequence[str] = ()
    launch: Callable[[], subprocess.Popen[bytes]] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    consecutive_failures: int = 0
    recent_failures: deque[float] = field(default_factory=deque)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class GaveUp(Exception):
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
        child.proc = child.launch() if child.launch else spawn(child.argv, env=self.env)
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
            raise GaveUp(
                f"the {child.name} process exited {len(child.recent_failures)} times within "
                f"{GIVE_UP_WINDOW:g} s (last: {how}); giving up, see its output above"
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


# --- herald up --------------------------------------------------------------------------


class _StopRequests:
    """Counts SIGINT/SIGTERM/SIGHUP while installed, instead of raising in random places."""

    def __init__(self) -> None:
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            log.info("%s received; stopping", signal.Signals(signum).name)

    @contextmanager
    def installed(self) -> Iterator[_StopRequests]:
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def child_env(settings: Settings, host: str, port: int) -> dict[str, str]:
    """The supervisor's environment, plus what makes every child agree on where things are."""
    env = dict(os.environ)
    env.update(
        HERALD_DATA_DIR=str(settings.data_dir.resolve()),
        HERALD_HOST=host,
        HERALD_PORT=str(port),
        # Children write to the same terminal; unbuffered keeps their lines in order.
        PYTHONUNBUFFERED="1",
    )
    return env


def herald_children(host: str, port: int) -> list[Child]:
    herald = [sys.executable, "-m", "herald"]
    return [
        Child("api", [*herald, "api", "--host", host, "--port", str(port)]),
        Child("worker", [*herald, "worker"]),
        Child("beat", [*herald, "beat"]),
    ]


def check_port_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be listened on, else why not."""
    try:
        # SO_REUSEADDR, as uvicorn sets it: a port in TIME_WAIT is not "taken".
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"cannot listen on {host}:{port}: {reason}"


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_connect_host(host), port), timeout=0.2):
            return True
    except OSError:
        return False


def _public_url(settings: Settings, host: str, port: int) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _announce(out: Console, url: str, login: tuple[str, str] | None) -> None:
    out.print(f"[bold green]Herald is running[/] at [link={url}]{url}[/link]")
    out.print(f"API docs: {url}/docs")
    if login is not None:
        email, password = login
        out.print(f"[bold]Admin created:[/] {email} / {password} — shown once")
    else:
        out.print("Sign in with your account (create one with `herald user create`).")
    out.print("Press Ctrl-C to stop.")


def _fail(message: str) -> int:
    sys.stderr.write(f"herald: error: {message}\n")
    sys.stderr.flush()
    return 1


def run_up(host: str, port: int) -> int:
    """Run Herald on this machine until asked to stop; the process exit code.

    0 after a requested stop (SIGINT/SIGTERM/SIGHUP), 1 when something cannot start.
    Must be called from the main thread (it installs signal handlers).
    """
    from herald.core.bootstrap import prepare
    from herald.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    out = Console(highlight=False)

    problem = check_port_free(host, port)
    if problem:
        return _fail(problem)

    redis = EmbeddedRedis(settings.data_dir) if settings.embedded_broker else None
    # Two tiers: the broker is started first and stopped last.
    services = Supervisor([Child("redis", launch=redis.launch)] if redis else [])
    herald = Supervisor(herald_children(host, port), env=child_env(settings, host, port))
    failure: str | None = None
    with _StopRequests().installed() as stop:
        try:
            services.start_all()
            if redis is not None:
                log.info("embedded Redis on %s (pid %s)", redis.socket, redis.pid)
            login = prepare()
            if not stop:
                herald.start_all()
            announced = False
            while not stop:
                services.poll()
                herald.poll()
                if not announced and _accepts_connections(host, port):
                    _announce(out, _public_url(settings, host, port), login)
                    announced = True
                time.sleep(POLL_INTERVAL)
        except (EmbeddedRedisError, GaveUp) as exc:
            failure = str(exc)
        finally:
            herald.stop(hurry=lambda: stop.count > 1)
            if redis is not None:
                redis.stop(timeout=REDIS_STOP_TIMEOUT)
            log.info("stopped")
    # Last, so the reason is the final line on the terminal.
    return _fail(failure) if failure else 0
