"""`herald up`: every Herald process on one machine, supervised.

Start order: the embedded Redis (when no broker is configured), then ``prepare()``
(migrations), then Herald's children, each ``python -m herald <command>`` in its own
process group, writing to ``<data_dir>/logs/<name>.log`` (to the terminal with
``--verbose``). Which children is ``HERALD_UP_LAYOUT``: compact (the default) runs the API
and one worker that also runs the scheduler on a thread (``herald worker --compact``);
split runs the API, ``herald worker`` (publishing on threads, the other queues on
processes) and ``herald beat``, as a deployment does, at about twice the memory
(bench/cli_startup.py measures both). Only once ``GET /api/v1/health`` answers 200
(database, broker, a worker and the scheduler all up) is the first admin created (on an
empty database) and the address and sign-in printed: last, set apart, the password
once. A start that is not healthy within ``--start-timeout`` stops everything and says
which component is not up. All of them, Redis included, are supervised
(:mod:`herald.runtime.processes` does it):

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
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from herald.core.logging import configure_logging
from herald.core.settings import Settings, UpLayout, get_settings
from herald.runtime import START_TIMEOUT
from herald.runtime.bootstrap import create_first_admin, prepare
from herald.runtime.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from herald.runtime.processes import Child, Clock, Failure, Supervisor

log = logging.getLogger(__name__)

REDIS_STOP_TIMEOUT = 2.0
POLL_INTERVAL = 0.2
HEALTH_CHECK_INTERVAL = 0.5
HEALTH_REQUEST_TIMEOUT = 5.0
LOG_TAIL_LINES = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class NotHealthy(Failure):
    """Herald did not become healthy in time; the message says which component is not up."""


Fetch = Callable[[str, float], tuple[int, dict[str, Any]]]


def fetch_health(url: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """GET the health endpoint: its status code and JSON body. Raises httpx.HTTPError."""
    # trust_env=False: an HTTP_PROXY in the environment must not carry a loopback call.
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        response = client.get(url)
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


class StartupWatch:
    """Polls Herald's own health endpoint until it answers 200, for at most ``timeout`` s.

    ``check()`` is called from the supervisor's loop; it asks at most every
    ``HEALTH_CHECK_INTERVAL`` s and never sleeps, so tests drive it with their own clock
    and answers. ``logs`` maps a health component (and ``api``) to the log that explains it.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = START_TIMEOUT,
        logs: Mapping[str, Path] | None = None,
        fetch: Fetch = fetch_health,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.logs = dict(logs or {})
        self.fetch = fetch
        self.clock = clock
        self.started_at = clock()
        self.next_check_at = self.started_at
        self.not_up: dict[str, str] = {"api": "it has not answered yet"}

    def check(self) -> bool:
        """True once healthy; raises ``NotHealthy`` when the time is up."""
        now = self.clock()
        if now >= self.next_check_at:
            left = self.started_at + self.timeout - now
            try:
                status, body = self.fetch(self.url, max(0.1, min(HEALTH_REQUEST_TIMEOUT, left)))
            except httpx.HTTPError as exc:
                self.not_up = {"api": f"{self.url} does not answer ({type(exc).__name__})"}
            else:
                if status == 200:
                    return True
                self.not_up = _components_down(body) or {"api": f"{self.url} answered {status}"}
            now = self.clock()
            self.next_check_at = now + HEALTH_CHECK_INTERVAL
        if now - self.started_at >= self.timeout:
            paths = [path for name in self.not_up if (path := self.logs.get(name))]
            raise NotHealthy(self._describe(), list(dict.fromkeys(paths)))
        return False

    def _describe(self) -> str:
        parts = []
        for name, detail in self.not_up.items():
            log_path = self.logs.get(name)
            parts.append(f"{name}: {detail}" + (f" (see {log_path})" if log_path else ""))
        return f"Herald was not healthy within {self.timeout:g} s; " + "; ".join(parts)


def _components_down(body: dict[str, Any]) -> dict[str, str]:
    components = body.get("components")
    if not isinstance(components, dict):
        return {}
    return {
        str(name): str(part.get("detail") or "down")
        for name, part in components.items()
        if isinstance(part, dict) and part.get("status") != "up"
    }


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
        # Unbuffered: a child's lines reach its log (or the terminal) as they are written.
        PYTHONUNBUFFERED="1",
    )
    return env


def herald_children(
    host: str, port: int, log_dir: Path | None = None, layout: UpLayout = UpLayout.COMPACT
) -> list[Child]:
    """Herald's processes for ``layout``, each writing to ``<log_dir>/<name>.log`` when a
    dir is given. compact: api, and a worker that also runs the scheduler; split: api,
    worker (itself two Celery workers) and beat."""
    herald = [sys.executable, "-m", "herald"]
    argvs = {"api": [*herald, "api", "--host", host, "--port", str(port)]}
    if layout is UpLayout.COMPACT:
        argvs["worker"] = [*herald, "worker", "--compact"]
    else:
        argvs["worker"] = [*herald, "worker"]
        argvs["beat"] = [*herald, "beat"]
    return [
        Child(name, argv, log_path=log_dir / f"{name}.log" if log_dir else None)
        for name, argv in argvs.items()
    ]


# Every log `herald up` may write, whichever the layout: a start rotates them all, so a
# beat.log left by an earlier split start is not taken for this one's.
LOG_NAMES = ("up", "api", "worker", "beat")


def start_logs(log_dir: Path) -> Path:
    """Make ``log_dir`` and send this process's log lines to ``up.log`` there; returns it.

    Each start keeps the previous run's ``<name>.log`` as ``<name>.log.1``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    for name in LOG_NAMES:
        current = log_dir / f"{name}.log"
        if current.exists():
            current.replace(log_dir / f"{name}.log.1")
    _log_to_file(log_dir / "up.log")
    return log_dir


def _log_to_file(path: Path) -> None:
    """This process's own log lines go to ``path``; the terminal keeps warnings and errors."""
    root = logging.getLogger()
    file_handler = logging.FileHandler(path, encoding="utf-8")
    for handler in root.handlers:
        # Same format and redaction as configure_logging() gave the terminal.
        file_handler.setFormatter(handler.formatter)
        for log_filter in handler.filters:
            file_handler.addFilter(log_filter)
        handler.setLevel(logging.WARNING)
    root.addHandler(file_handler)


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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _public_url(settings: Settings, host: str, port: int) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{_url_host(host)}:{port}"


def _announce(
    out: Console,
    url: str,
    login: tuple[str, str] | None,
    log_dir: Path | None,
    log_names: Sequence[str] = LOG_NAMES,
) -> None:
    """The address and how to sign in: set apart, and the last thing on the terminal."""
    url = escape(url)
    lines = [f"[bold green]Herald is running[/] at {url}", f"API docs: {url}/docs", ""]
    if login is not None:
        email, password = (escape(part) for part in login)
        lines += [
            f"Sign in as:  [bold]{email}[/]",
            f"Password:    [bold]{password}[/]",
            "The password is shown only this once: keep it now. (Lost it? "
            f"`herald user set-password --email {email}`)",
        ]
    else:
        lines.append("Sign in with your account (add one with `herald user create`).")
    lines.append("")
    if log_dir is not None:
        names = ", ".join(f"{name}.log" for name in log_names)
        lines.append(f"Logs: {escape(str(log_dir))}{os.sep} ({names})")
    lines.append("Press Ctrl-C to stop.")
    out.print()
    out.rule(style="green")
    for line in lines:
        # soft_wrap: a long URL or password is never broken across lines.
        out.print(f"  {line}" if line else "", soft_wrap=True)
    out.rule(style="green")


def _tail(path: Path, count: int = LOG_TAIL_LINES) -> list[str]:
    try:
        return path.read_text(errors="replace").rstrip("\n").splitlines()[-count:]
    except OSError:
        return []


def _show_log_tails(paths: Sequence[Path]) -> None:
    for path in paths:
        lines = _tail(path)
        if lines:
            sys.stderr.write(f"--- last lines of {path}:\n" + "\n".join(lines) + "\n")


def _fail(message: str) -> int:
    sys.stderr.write(f"herald: error: {message}\n")
    sys.stderr.flush()
    return 1


def _component_logs(children: Sequence[Child], redis: EmbeddedRedis | None) -> dict[str, Path]:
    """Which log explains each component of the health answer (and the API itself)."""
    logs = {child.name: child.log_path for child in children}
    found = {
        "api": logs.get("api"),
        "database": logs.get("api"),
        "broker": redis.logfile if redis is not None else None,
        "workers": logs.get("worker"),
        # In the compact layout the worker runs the scheduler.
        "scheduler": logs.get("beat", logs.get("worker")),
    }
    return {name: path for name, path in found.items() if path is not None}


@dataclass
class _Processes:
    """What `herald up` runs, in two tiers: the broker (the embedded Redis, when no broker
    is configured) is started first and stopped last; then Herald's own children."""

    redis: EmbeddedRedis | None
    services: Supervisor
    children: list[Child]
    herald: Supervisor


def _processes(
    settings: Settings, host: str, port: int, log_dir: Path | None, layout: UpLayout
) -> _Processes:
    redis = EmbeddedRedis(settings.data_dir) if settings.embedded_broker else None
    services = Supervisor([Child("redis", launch=redis.launch)] if redis else [])
    children = herald_children(host, port, log_dir, layout)
    herald = Supervisor(children, env=child_env(settings, host, port))
    return _Processes(redis, services, children, herald)


def _start(processes: _Processes, stop: _StopRequests, out: Console, log_dir: Path | None) -> None:
    """The broker, then migrations, then Herald's children (unless a stop came first)."""
    processes.services.start_all()
    if processes.redis is not None:
        log.info("embedded Redis on %s (pid %s)", processes.redis.socket, processes.redis.pid)
    prepare()
    if not stop:
        processes.herald.start_all()
        where = f" (logs: {log_dir}{os.sep})" if log_dir else ""
        out.print(f"Starting Herald{where}...", soft_wrap=True)


def _welcome(
    out: Console,
    settings: Settings,
    host: str,
    port: int,
    log_dir: Path | None,
    children: Sequence[Child],
) -> None:
    # Created only now, so its one-time password is shown when it works.
    login = create_first_admin()
    names = ["up", *(child.name for child in children)]
    _announce(out, _public_url(settings, host, port), login, log_dir, names)


def _supervise(
    processes: _Processes, watch: StartupWatch, stop: _StopRequests, welcome: Callable[[], None]
) -> None:
    """Keep every process running until a stop is asked for; ``welcome`` once healthy."""
    announced = False
    while not stop:
        processes.services.poll()
        processes.herald.poll()
        if not announced and watch.check():
            log.info("healthy %.1f s after start", time.monotonic() - watch.started_at)
            welcome()
            announced = True
        time.sleep(POLL_INTERVAL)


def _stop(processes: _Processes, stop: _StopRequests, out: Console) -> None:
    """Herald's children (a second stop request hurries them), then Redis last."""
    if stop:
        out.print("Stopping Herald...")
    processes.herald.stop(hurry=lambda: stop.count > 1)
    if processes.redis is not None:
        processes.redis.stop(timeout=REDIS_STOP_TIMEOUT)
    log.info("stopped")


def run_up(
    host: str,
    port: int,
    *,
    verbose: bool = False,
    start_timeout: float = START_TIMEOUT,
    layout: UpLayout | None = None,
) -> int:
    """Run Herald on this machine until asked to stop; the process exit code.

    0 after a requested stop (SIGINT/SIGTERM/SIGHUP), 1 when something cannot start or
    is not healthy within ``start_timeout`` s. Must be called from the main thread (it
    installs signal handlers).
    """
    settings = get_settings()
    configure_logging(settings.log_level)
    out = Console(highlight=False)

    problem = check_port_free(host, port)
    if problem:
        return _fail(problem)

    log_dir = None if verbose else start_logs(settings.data_dir / "logs")
    processes = _processes(settings, host, port, log_dir, layout or settings.up_layout)
    failure: Failure | EmbeddedRedisError | None = None
    with _StopRequests().installed() as stop:
        try:
            _start(processes, stop, out, log_dir)
            watch = StartupWatch(
                f"http://{_url_host(_connect_host(host))}:{port}/api/v1/health",
                timeout=start_timeout,
                logs=_component_logs(processes.children, processes.redis),
            )
            welcome = partial(_welcome, out, settings, host, port, log_dir, processes.children)
            _supervise(processes, watch, stop, welcome)
        except (EmbeddedRedisError, Failure) as exc:
            failure = exc
        finally:
            _stop(processes, stop, out)
    if failure is not None:
        _show_log_tails(failure.log_paths if isinstance(failure, Failure) else [])
        # Last, so the reason is the final line on the terminal.
        return _fail(str(failure))
    out.print("Herald stopped.")
    return 0
