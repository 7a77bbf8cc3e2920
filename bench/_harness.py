"""Shared pieces for Herald's benchmarks.

- :class:`ManagedProcess`: a child in its own session, logged to a file, stopped with a
  bounded wait (SIGTERM, then SIGKILL of its whole process group).
- :func:`start_worker`: a real ``herald worker`` (Herald's CLI, Herald's settings) with extra
  modules imported first: benchmark tasks, and optionally a per-task cProfile hook.
- :class:`Receiver`: a webhook receiver in its own process (so it never competes with the
  benchmark for the GIL) that checks signatures, records every hit with its time, and
  answers like a real receiver; :func:`receiver_capacity` checks it is not the bottleneck.
- :func:`postgres_database`, :func:`fresh_redis`: fresh services, cleaned up afterwards.
- :class:`CpuMeter`: how much CPU everyone else used while a measurement ran.
- :func:`hard_timeout`, :func:`wait_until`, :func:`machine_info`; the charts are in
  :mod:`bench._charts`.

``python -m bench._harness worker|receiver ...`` are the child-process entry points.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import cProfile
import hashlib
import hmac
import http.client
import importlib
import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import redis
from celery import signals

REPO = Path(__file__).resolve().parents[1]
PROFILE_DIR_ENV = "BENCH_PROFILE_DIR"
PROFILE_TASKS_ENV = "BENCH_PROFILE_TASKS"
# The Redis list bench._tx_timing pushes each delivery transaction's time onto.
TX_TIMES_KEY = "bench:tx"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


class BenchTimeout(BenchError):
    pass


# --- the command line and the outputs, the same for every benchmark -----------------------


def add_stack_arguments(
    parser: argparse.ArgumentParser,
    *,
    broker_db: int,
    timeout: float,
    workdir_holds: str,
    worker: bool = True,
) -> None:
    """The options every benchmark has: where Herald's stack runs and where results go;
    with ``worker``, also the worker's pool options (a benchmark that runs no worker
    has none to offer)."""
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--broker-url",
        default=f"redis://127.0.0.1:6379/{broker_db}",
        help="Redis for broker (and result backend); its database is flushed before and after.",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("HERALD_BENCH_PG_URL", DEFAULT_PG_ADMIN_URL),
        help="Where to create (and drop) the fresh PostgreSQL database.",
    )
    if worker:
        parser.add_argument(
            "--concurrency",
            type=int,
            help="Pool size of every worker `herald worker` starts (Herald's defaults).",
        )
        parser.add_argument(
            "--pool",
            help="prefork, threads or solo, for every worker (Herald's defaults: threads for "
            "publishing, prefork for the rest).",
        )
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help=f"Keep the temporary directory ({workdir_holds}).",
    )
    parser.add_argument(
        "--timeout", type=float, default=timeout, help="Hard limit for the run (s)."
    )


def write_outputs(out: Path, name: str, database: str, svg: str, document: Any) -> list[Path]:
    """``<name>.svg/.json`` (the latest run) and ``<name>-<database>.svg/.json``, each
    named on stdout as it is written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in ("", f"-{database}"):
        svg_path = out / f"{name}{suffix}.svg"
        json_path = out / f"{name}{suffix}.json"
        svg_path.write_text(svg)
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        written += [svg_path, json_path]
    for path in written:
        print(f"wrote {path}")
    return written


def run_main(
    name: str,
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], list[str]],
    argv: list[str] | None,
) -> int:
    """A benchmark's ``main``: its hard time limit; exit 1 with each problem (a failed
    check) on stderr, 2 with a BenchError as one line."""
    args = parse_args(argv)
    try:
        with hard_timeout(args.timeout):
            problems = run(args)
    except BenchError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


# --- time ------------------------------------------------------------------------------


@contextlib.contextmanager
def hard_timeout(seconds: float) -> Iterator[None]:
    """Raise BenchTimeout in the main thread once ``seconds`` have passed (cleanup still
    runs: it is an exception, not a kill). SIGTERM becomes SystemExit for the same reason."""

    def expired(_signum: int, _frame: object) -> None:
        raise BenchTimeout(f"the whole run took longer than {seconds:g} s")

    def terminated(_signum: int, _frame: object) -> None:
        raise SystemExit(143)

    previous_alarm = signal.signal(signal.SIGALRM, expired)
    previous_term = signal.signal(signal.SIGTERM, terminated)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(signal.SIGTERM, previous_term)


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.02,
    check: Callable[[], None] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; ``check`` may raise (a child
    process died) to stop waiting early."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise BenchTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- the machine -----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def source_info() -> dict[str, Any]:
    """The commit under test, and whether src/ has changes on top of it."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    changed = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line]
    describe = f"{commit or 'unknown commit'}"
    if changed:
        describe += f" + {len(changed)} uncommitted change(s) in src/"
    return {"commit": commit, "src_changes": changed, "describe": describe}


# --- CPU used by others while we measure --------------------------------------------------


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _processes() -> Iterator[tuple[int, int, str, int]]:
    """(pid, process group, command name, utime + stime jiffies) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ")".
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        jiffies = int(fields[11]) + int(fields[12])
        yield int(entry.name), int(fields[2]), head.partition("(")[2], jiffies


# Shared services, told apart by command name; their CPU counts as others' in the totals.
SERVICES = {"redis": ("redis-server",), "database": ("postgres",)}


@dataclass
class CpuMeter:
    """How many cores the machine, our own processes and everyone else used over an
    interval (from /proc; Linux only, zeros elsewhere). "Ours" is this process plus the
    process groups given (the worker and its pool, the receiver); shared services such as
    Redis and PostgreSQL count as others.

    ``roles`` names process groups of ours (leader pid → name) for :meth:`split`: the CPU
    seconds each used, the leader apart from the rest of its group (a worker's parent and
    its pool), this process as "bench", and Redis and PostgreSQL by command name."""

    pids: set[int] = field(default_factory=lambda: {os.getpid()})
    groups: set[int] = field(default_factory=set)
    roles: dict[int, str] = field(default_factory=dict)
    _start: tuple[float, int, int, dict[str, int]] | None = None
    _split: dict[str, float] = field(default_factory=dict)

    def _role(self, pid: int, pgrp: int, name: str) -> str | None:
        if pid in self.pids:
            return "bench"
        if pgrp in self.roles:
            return self.roles[pgrp] if pid == pgrp else f"{self.roles[pgrp]} pool"
        if pgrp in self.groups:
            return "ours"
        for role, names in SERVICES.items():
            if name.startswith(names):
                return role
        return None

    def _sample(self) -> tuple[float, int, int, dict[str, int]]:
        busy, total = _machine_jiffies()
        used: dict[str, int] = {}
        for pid, pgrp, name, jiffies in _processes():
            role = self._role(pid, pgrp, name)
            if role is not None:
                used[role] = used.get(role, 0) + jiffies
        return time.monotonic(), busy, total, used

    def start(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            self._start = self._sample()

    def stop(self) -> dict[str, float]:
        if self._start is None:
            return {}
        try:
            end = self._sample()
        except (OSError, ValueError, IndexError):
            return {}
        t0, busy0, total0, used0 = self._start
        t1, busy1, total1, used1 = end
        cores = os.cpu_count() or 1
        if total1 == total0:
            return {}
        machine = cores * (busy1 - busy0) / (total1 - total0)
        hz = os.sysconf("SC_CLK_TCK")
        # A process that ended in between is left out of both samples' sums.
        self._split = {
            role: max(0, jiffies - used0.get(role, 0)) / hz for role, jiffies in used1.items()
        }
        ours = sum(v for k, v in self._split.items() if k not in SERVICES)
        ours /= max(t1 - t0, 1e-9)
        return {
            "machine_cores_busy": round(machine, 2),
            "our_cores": round(ours, 2),
            "others_cores": round(max(0.0, machine - ours), 2),
        }

    def split(self) -> dict[str, float]:
        """CPU seconds by role over the last start → stop."""
        return dict(self._split)


# --- processes -------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """A child process in its own session (so its own children can be found and ended),
    with stdout and stderr in ``log_path``."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path = REPO
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check(self) -> None:
        """Raise if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"the {self.name} process exited with code {self.proc.returncode}; "
                f"the end of {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL the whole process group. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._kill_group()
                proc.wait(timeout=5)
        # Its own children (a pool whose parent was killed) share its process group.
        if self._group_alive():
            time.sleep(0.5)
            if self._group_alive():
                self._kill_group()
        return proc.returncode

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


# HERALD_* variables that are the test suite's, not Herald's settings: clearing Herald's
# settings keeps them. The platform fakes a benchmark runs in its own process find the
# platforms' schemas through HERALD_PLATFORM_SPECS: without it, in a clone that has no
# ../shared/platform-specs beside it and under CI=true, every request to a fake that
# checks a schema was answered 500 (tests/fakes/specs.py), and rate_limits never drained.
SUITE_VARIABLES = frozenset(
    {"HERALD_PLATFORM_SPECS", "HERALD_TEST_PG_URL", "HERALD_TEST_REDIS_URL"}
)


def is_setting(name: str) -> bool:
    """Whether the environment variable ``name`` is one of Herald's settings (HERALD_*),
    not one of the test suite's that share the prefix (:data:`SUITE_VARIABLES`)."""
    return name.startswith("HERALD_") and name not in SUITE_VARIABLES


def clear_settings() -> None:
    """Remove Herald's settings (:func:`is_setting`) from this process's environment."""
    for name in [k for k in os.environ if is_setting(k)]:
        del os.environ[name]


def child_env(**herald: str) -> dict[str, str]:
    """This environment without any of Herald's settings (:func:`is_setting`), plus the
    given ones (``database_url="..."`` → ``HERALD_DATABASE_URL``), with the repository
    importable."""
    env = {k: v for k, v in os.environ.items() if not is_setting(k)}
    env.update({f"HERALD_{key.upper()}": value for key, value in herald.items()})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    imports: Sequence[str] = (),
    args: Sequence[str] = (),
    profile_dir: Path | None = None,
    profile_tasks: Sequence[str] = (),
) -> ManagedProcess:
    """``herald worker [args]`` (Herald's CLI and settings, from ``env``), with ``imports``
    imported first so their tasks are registered on Herald's app. With ``profile_dir``,
    each pool process profiles the runs of ``profile_tasks`` (see :func:`load_profiles`)."""
    env = dict(env)
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        env[PROFILE_DIR_ENV] = str(profile_dir)
        env[PROFILE_TASKS_ENV] = ",".join(profile_tasks)
    argv = [sys.executable, "-m", "bench._harness", "worker"]
    for module in imports:
        argv += ["--import", module]
    return ManagedProcess("worker", [*argv, "--", *args], log_path, env=env).start()


def _worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._harness worker")
    parser.add_argument("--import", dest="imports", action="append", default=[])
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    for module in args.imports:
        importlib.import_module(module)
    if os.environ.get(PROFILE_DIR_ENV):
        _install_task_profiler(
            Path(os.environ[PROFILE_DIR_ENV]),
            {n for n in os.environ.get(PROFILE_TASKS_ENV, "").split(",") if n},
        )
    from herald.cli import main

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.argv = ["herald", "worker", *rest]
    main()


# --- profiling inside the worker ---------------------------------------------------------


def _install_task_profiler(directory: Path, task_names: set[str]) -> None:
    """cProfile every run of the named tasks, one profile per (process, thread, task);
    dumped every few seconds and when the pool process exits."""

    local = threading.local()
    lock = threading.Lock()
    profiles: dict[tuple[int, str], tuple[cProfile.Profile, dict[str, float]]] = {}
    last_dump = [time.monotonic()]

    def entry(name: str) -> tuple[cProfile.Profile, dict[str, float]]:
        key = (threading.get_ident(), name)
        with lock:
            if key not in profiles:
                profiles[key] = (cProfile.Profile(), {"runs": 0, "wall": 0.0})
            return profiles[key]

    def dump() -> None:
        with lock:
            items = list(profiles.items())
        for (ident, name), (profile, counts) in items:
            stem = directory / f"{name}.{os.getpid()}.{ident}"
            profile.dump_stats(f"{stem}.pstats")
            Path(f"{stem}.json").write_text(json.dumps({"task": name, **counts}))

    @signals.task_prerun.connect(weak=False)
    def started(task: Any = None, **_: Any) -> None:
        if task is None or task.name not in task_names:
            return
        profile, _counts = entry(task.name)
        local.started = time.perf_counter()
        profile.enable()

    @signals.task_postrun.connect(weak=False)
    def finished(task: Any = None, **_: Any) -> None:
        if task is None or task.name not in task_names:
            return
        profile, counts = entry(task.name)
        profile.disable()
        counts["runs"] += 1
        counts["wall"] += time.perf_counter() - local.started
        if time.monotonic() - last_dump[0] > 2.0:
            last_dump[0] = time.monotonic()
            dump()

    @signals.worker_process_shutdown.connect(weak=False)
    def exiting(**_: Any) -> None:
        dump()

    atexit.register(dump)


@dataclass
class ProfileSummary:
    task: str
    runs: int
    wall: float  # seconds inside the task body (prerun → postrun), all processes
    stats: pstats.Stats | None

    @property
    def per_run_ms(self) -> float:
        return 1000 * self.wall / self.runs if self.runs else 0.0

    def cumulative(self, module_suffix: str, function: str) -> tuple[float, int]:
        """(cumulative seconds, calls) of one function across all processes."""
        if self.stats is None:
            return 0.0, 0
        total, calls = 0.0, 0
        for (filename, _line, name), row in self.stats.stats.items():  # type: ignore[attr-defined]  # typeshed omits Stats.stats
            if name == function and filename.replace("\\", "/").endswith(module_suffix):
                _cc, nc, _tt, ct, _callers = row
                total += ct
                calls += nc
        return total, calls

    def top(self, count: int = 12, key: str = "tottime") -> list[dict[str, Any]]:
        if self.stats is None:
            return []
        index = {"tottime": 2, "cumtime": 3}[key]
        rows = sorted(
            self.stats.stats.items(),  # type: ignore[attr-defined]  # typeshed omits Stats.stats
            key=lambda item: item[1][index],
            reverse=True,
        )[:count]
        return [
            {
                "function": f"{_short(filename)}:{line}({name})",
                "calls": row[1],
                "tottime": round(row[2], 4),
                "cumtime": round(row[3], 4),
            }
            for (filename, line, name), row in rows
        ]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def load_profiles(directory: Path, task: str) -> ProfileSummary:
    """Merge what every pool process wrote for ``task``."""
    runs, wall = 0, 0.0
    stats: pstats.Stats | None = None
    for meta in sorted(directory.glob(f"{task}.*.json")):
        counts = json.loads(meta.read_text())
        runs += int(counts["runs"])
        wall += float(counts["wall"])
        data = meta.with_suffix(".pstats")
        if data.exists():
            if stats is None:
                stats = pstats.Stats(str(data))
            else:
                stats.add(str(data))
    return ProfileSummary(task, runs, wall, stats)


# --- services --------------------------------------------------------------------------


def fresh_redis(url: str) -> None:
    """Check the Redis at ``url`` answers and empty its database."""

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {url} is not available: {exc}") from exc


@contextlib.contextmanager
def postgres_database(
    admin_url: str = DEFAULT_PG_ADMIN_URL, prefix: str = "herald_bench"
) -> Iterator[str]:
    """A new, empty database (dropped afterwards); yields its SQLAlchemy (psycopg) URL."""

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL at {admin_url} is not available: {exc}") from exc
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the webhook receiver -----------------------------------------------------------------


def _sign(secret: str, timestamp: str, body: bytes) -> str:
    # Herald's webhook signature (herald.adapters.webhook.sign), kept here so the receiver
    # process stays light.
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class _ReceiverState:
    """What the receiver has seen: every hit (key, event, time), the distinct keys of
    ``post.published`` hits, and the number of bad signatures."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.hits: list[tuple[str, str, float]] = []
        self.delivered: set[str] = set()
        self.bad_signatures = 0
        # Seconds before a webhook hit is answered: a slow platform (POST /_delay sets it).
        self.delay = 0.0

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if method == "GET" and path == "/_count":
            return 200, {"count": len(self.delivered), "hits": len(self.hits)}
        if method == "GET" and path == "/_hits":
            return 200, {"hits": self.hits, "bad_signatures": self.bad_signatures}
        if method == "POST" and path == "/_reset":
            self.hits, self.delivered, self.bad_signatures = [], set(), 0
            return 200, {"ok": True}
        if method == "POST" and path == "/_delay":
            self.delay = float(json.loads(body)["seconds"])
            return 200, {"ok": True}
        if method != "POST":
            return 404, {"error": "not found"}
        at = time.time()
        expected = _sign(self.secret, headers.get("x-herald-timestamp", ""), body)
        if not hmac.compare_digest(expected, headers.get("x-herald-signature", "")):
            self.bad_signatures += 1
            return 401, {"error": "bad signature"}
        key = headers.get("idempotency-key", "")
        event = headers.get("x-herald-event", "")
        self.hits.append((key, event, at))
        duplicate = key in self.delivered
        if event == "post.published":
            self.delivered.add(key)
        return 200, {
            "id": f"ext-{key[-8:]}",
            "url": f"https://example.test/{key}",
            "duplicate": duplicate,
        }


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


def _receiver_protocol(state: _ReceiverState) -> Any:
    """HTTP/1.1 with keep-alive on one asyncio loop: a stand-in for a platform on another
    machine, so it should take as little of this machine's CPU as it can (a threaded
    ``http.server`` took about 0.3 ms per request, this about a third of that)."""

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                lines = self.buffer[:head_end].decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if len(self.buffer) < head_end + 4 + length:
                    return  # the body is still coming
                body = self.buffer[head_end + 4 : head_end + 4 + length]
                self.buffer = self.buffer[head_end + 4 + length :]
                status, answer = state.answer(method, path, headers, body)
                close = headers.get("connection", "").lower() == "close"
                if state.delay and not path.startswith("/_"):
                    # A slow platform: the answer comes later, the loop serves others
                    # meanwhile (one request at a time per connection: no pipelining).
                    asyncio.get_running_loop().call_later(
                        state.delay, self.answer, status, answer, close
                    )
                    if close:
                        return
                    continue
                self.answer(status, answer, close)
                if close:
                    return

        def answer(self, status: int, answer: Any, close: bool) -> None:
            if self.transport.is_closing():
                return
            data_out = json.dumps(answer).encode()
            self.transport.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data_out)}\r\n"
                f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n".encode()
                + data_out
            )
            if close:
                self.transport.close()

    return Protocol


def _receiver_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._harness receiver")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    protocol = _receiver_protocol(_ReceiverState(args.secret))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        # A deep backlog: the default drops bursts of new connections.
        server = await loop.create_server(protocol, args.host, 0, backlog=256)
        port = server.sockets[0].getsockname()[1]
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(args.port_file)
        stopped = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
        async with server:
            await stopped.wait()

    asyncio.run(serve())


@dataclass
class Receiver:
    """A webhook receiver in its own process: checks Herald's signature, records each hit
    (Idempotency-Key, event, time), answers 200 with an id like a real receiver."""

    workdir: Path
    secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    process: ManagedProcess | None = None
    port: int = 0
    _client: httpx.Client | None = None

    def start(self) -> Receiver:
        port_file = self.workdir / f"receiver-{uuid.uuid4().hex[:6]}.port"
        argv = [sys.executable, "-m", "bench._harness", "receiver"]
        argv += ["--secret", self.secret, "--port-file", str(port_file)]
        env = child_env()
        self.process = ManagedProcess("receiver", argv, self.workdir / "receiver.log", env=env)
        self.process.start()
        wait_until(port_file.exists, 30, "the receiver to listen", check=self.process.check)
        self.port = int(port_file.read_text())
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.process is not None:
            self.process.stop(grace=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def credentials(self) -> dict[str, str]:
        return {"url": self.url, "secret": self.secret}

    def _get(self, path: str) -> dict[str, Any]:
        assert self._client is not None
        response = self._client.get(path)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def delivered(self) -> int:
        """Distinct Idempotency-Keys of post.published hits so far."""
        return int(self._get("/_count")["count"])

    def hits(self) -> tuple[list[tuple[str, str, float]], int]:
        """Every hit (key, event, time) and the number of bad signatures."""
        data = self._get("/_hits")
        return [(k, e, float(t)) for k, e, t in data["hits"]], int(data["bad_signatures"])

    def reset(self) -> None:
        assert self._client is not None
        self._client.post("/_reset", content=b"").raise_for_status()

    def set_delay(self, seconds: float) -> None:
        """Answer every later webhook hit ``seconds`` after it arrives (a slow platform)."""
        assert self._client is not None
        self._client.post("/_delay", json={"seconds": seconds}).raise_for_status()


def receiver_capacity(receiver: Receiver, requests: int, threads: int = 4) -> float:
    """Signed POSTs per second the receiver answers, each on a new connection (the worst
    case: Herald's pooled client keeps its connections alive), from ``threads`` threads.
    A lower bound (the client shares this process's GIL); compare it with the rate under
    test. Resets the receiver afterwards."""

    body = b'{"event":"post.published","post":{}}'
    counter = iter(range(requests))
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            timestamp = str(int(time.time()))
            conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
            try:
                conn.request(
                    "POST",
                    "/hook",
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": f"capacity-{i}",
                        "X-Herald-Event": "post.published",
                        "X-Herald-Timestamp": timestamp,
                        "X-Herald-Signature": _sign(receiver.secret, timestamp, body),
                    },
                )
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(str(response.status))
            finally:
                conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    elapsed = time.perf_counter() - started
    receiver.reset()
    if errors:
        raise BenchError(f"the receiver answered {errors[0]} during its capacity check")
    return requests / elapsed


def new_workdir(prefix: str) -> Path:
    # Short: a path under it may have to fit a unix socket name.
    return Path(tempfile.mkdtemp(prefix=prefix))


if __name__ == "__main__":
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "worker":
        _worker_main(rest)
    elif command == "receiver":
        _receiver_main(rest)
    else:
        sys.exit("usage: python -m bench._harness worker|receiver ...")
