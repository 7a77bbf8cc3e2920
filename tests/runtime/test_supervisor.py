"""`herald up` and its supervisor: restarts with back-off, giving up, and clean stops."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

from herald.runtime.embedded_redis import EmbeddedRedis
from herald.runtime.processes import Child, GaveUp, Supervisor, restart_delay
from herald.runtime.supervisor import HEALTH_CHECK_INTERVAL, NotHealthy, StartupWatch

PY = sys.executable

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll until ``predicate`` gives something true; return it."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return found


def pool_of(worker: psutil.Process) -> list[psutil.Process]:
    """The worker's pool processes: forked children share its command line. (Others come
    and go, such as the ``uname -p`` that Python's platform module runs for the banner.)"""
    try:
        command = worker.cmdline()
        return [child for child in worker.children() if child.cmdline() == command]
    except psutil.NoSuchProcess:
        return []


def alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def up_dir() -> Iterator[Path]:
    # Short on purpose: the embedded Redis's unix socket path must fit in 104 bytes.
    path = Path(tempfile.mkdtemp(prefix="hu-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the supervisor with stand-in children ------------------------------------------------


def test_restart_delay_doubles_up_to_thirty_seconds() -> None:
    assert [restart_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_child_that_keeps_exiting_is_given_up_after_five_failures_in_a_minute() -> None:
    clock = FakeClock()
    child = Child("api", [PY, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor([child], clock=clock)
    supervisor.start_all()
    delays: list[float] = []

    def crash_until_given_up() -> None:
        for _ in range(10):
            assert child.proc is not None
            child.proc.wait(timeout=10)
            supervisor.poll()  # reaps it and schedules the restart
            assert child.proc is None and child.restart_at is not None
            delays.append(child.restart_at - clock.now)
            clock.now = child.restart_at
            supervisor.poll()  # back-off over: started again

    try:
        with pytest.raises(GaveUp, match=r"the api process exited 5 times within 60 s") as info:
            crash_until_given_up()
        assert "last: exit code 3" in str(info.value)
        assert delays == [1, 2, 4, 8]
    finally:
        supervisor.stop(grace=1)


def test_the_back_off_resets_once_a_child_has_stayed_up_for_a_minute() -> None:
    clock = FakeClock()
    child = Child("worker", [PY, "-c", "import time; time.sleep(600)"])
    supervisor = Supervisor([child], clock=clock)
    supervisor.start_all()

    def crash_and_restart() -> float:
        assert child.proc is not None
        child.proc.kill()
        child.proc.wait(timeout=10)
        supervisor.poll()
        assert child.restart_at is not None
        delay = child.restart_at - clock.now
        clock.now = child.restart_at
        supervisor.poll()
        assert child.proc is not None
        return delay

    try:
        assert crash_and_restart() == 1
        assert crash_and_restart() == 2
        clock.now += 60
        supervisor.poll()  # still running after a minute: the count starts over
        assert crash_and_restart() == 1
        # Failures more than a minute apart never add up to giving up.
        for _ in range(5):
            clock.now += 61
            assert crash_and_restart() == 1
    finally:
        supervisor.stop(grace=1)
    assert child.proc is None


def test_stop_kills_the_whole_group_of_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    script = (
        "import signal, subprocess, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "grandchild = subprocess.Popen(['sleep', '600'])\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(grandchild.pid))\n"
        "time.sleep(600)\n"
    )
    child = Child("stubborn", [PY, "-c", script])
    supervisor = Supervisor([child])
    supervisor.start_all()
    assert child.proc is not None
    proc = child.proc
    wait_for(lambda: marker.exists() and marker.read_text(), 10, "the stand-in to start")
    grandchild = psutil.Process(int(marker.read_text()))

    started = time.monotonic()
    supervisor.stop(grace=0.5)
    elapsed = time.monotonic() - started

    assert 0.5 <= elapsed < 3
    assert proc.returncode == -signal.SIGKILL
    wait_for(lambda: not alive(grandchild), 2, "the grandchild to die")


def test_a_dead_embedded_redis_is_started_again_with_its_queue(up_dir: Path) -> None:
    server = EmbeddedRedis(up_dir)
    clock = FakeClock()
    child = Child("redis", launch=server.launch)
    supervisor = Supervisor([child], clock=clock)
    try:
        supervisor.start_all()
        with server.client() as client:
            client.lpush("publishing", "queued")
        old_pid = child.pid
        assert old_pid is not None and old_pid == server.pid
        assert child.proc is not None
        child.proc.kill()
        child.proc.wait(timeout=10)
        supervisor.poll()
        assert child.restart_at == clock.now + 1
        clock.now += 1
        supervisor.poll()
        assert child.pid not in (None, old_pid)
        assert child.pid == server.pid
        with server.client() as client:
            assert client.lrange("publishing", 0, -1) == [b"queued"]
    finally:
        server.stop()


def test_a_child_with_a_log_writes_there_and_giving_up_points_to_it(tmp_path: Path) -> None:
    clock = FakeClock()
    log_path = tmp_path / "worker.log"
    script = "import sys; print('banner line'); sys.exit('boom: bad config')"
    child = Child("worker", [PY, "-c", script], log_path=log_path)
    supervisor = Supervisor([child], clock=clock)
    supervisor.start_all()

    def crash_five_times() -> None:
        for _ in range(5):
            assert child.proc is not None
            child.proc.wait(timeout=10)
            supervisor.poll()
            assert child.restart_at is not None
            clock.now = child.restart_at
            supervisor.poll()

    try:
        with pytest.raises(GaveUp) as info:
            crash_five_times()
    finally:
        supervisor.stop(grace=1)
    assert str(info.value).endswith(f"giving up, see {log_path}")
    assert info.value.log_paths == [log_path]
    text = log_path.read_text()
    assert text.count("--- herald up: starting worker at ") == 5  # appended, one per start
    assert text.count("banner line") == 5 and text.count("boom: bad config") == 5


class FakeHealth:
    """Answers for the startup watch: a status and body, or an exception, in turn."""

    def __init__(self, *answers: tuple[int, dict[str, object]] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, url: str, timeout: float) -> tuple[int, dict[str, object]]:
        assert url == "http://127.0.0.1:8000/api/v1/health" and 0 < timeout <= 5
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


LOGS = {
    "api": Path("d/logs/api.log"),
    "database": Path("d/logs/api.log"),
    "workers": Path("d/logs/worker.log"),
    "scheduler": Path("d/logs/beat.log"),
}
DOWN: dict[str, object] = {
    "status": "down",
    "components": {
        "database": {"status": "up"},
        "broker": {"status": "up"},
        "workers": {"status": "down", "detail": "no worker answered the ping"},
        "scheduler": {
            "status": "down",
            "detail": "the scheduler (herald beat, or herald worker --compact) has never run",
        },
    },
}


def watch(health: FakeHealth, clock: FakeClock, timeout: float = 30) -> StartupWatch:
    return StartupWatch(
        "http://127.0.0.1:8000/api/v1/health", timeout=timeout, logs=LOGS, fetch=health, clock=clock
    )


def test_the_startup_watch_is_ready_only_when_health_answers_200() -> None:
    clock = FakeClock()
    health = FakeHealth(httpx.ConnectError("refused"), (503, DOWN), (200, {"status": "up"}))
    startup = watch(health, clock)
    assert startup.check() is False  # the API is not listening yet
    assert startup.check() is False and health.calls == 1  # asks at most every interval
    clock.now += HEALTH_CHECK_INTERVAL
    assert startup.check() is False  # listening, but the worker and scheduler are not up
    clock.now += HEALTH_CHECK_INTERVAL
    assert startup.check() is True
    assert health.calls == 3


def test_a_start_that_is_not_healthy_in_time_says_which_component_and_where_to_look() -> None:
    clock = FakeClock()
    startup = watch(FakeHealth((503, DOWN)), clock, timeout=30)
    while clock.now < 1029:
        assert startup.check() is False
        clock.now += HEALTH_CHECK_INTERVAL
    clock.now = 1030
    with pytest.raises(NotHealthy) as info:
        startup.check()
    assert str(info.value) == (
        "Herald was not healthy within 30 s; "
        "workers: no worker answered the ping (see d/logs/worker.log); "
        "scheduler: the scheduler (herald beat, or herald worker --compact) has never run "
        "(see d/logs/beat.log)"
    )
    assert info.value.log_paths == [LOGS["workers"], LOGS["scheduler"]]

    silent = watch(FakeHealth(httpx.ConnectError("refused")), clock, timeout=5)
    clock.now += 5
    with pytest.raises(
        NotHealthy,
        match=r"within 5 s; api: http://127\.0\.0\.1:8000/api/v1/health "
        r"does not answer \(ConnectError\) \(see d/logs/api\.log\)$",
    ):
        silent.check()


# --- herald up, for real ------------------------------------------------------------------


class Up:
    """A `python -m herald up` process on a private data dir, with its output in files."""

    def __init__(self, data_dir: Path, port: int, *args: str, layout: str = "compact") -> None:
        self.data_dir = data_dir
        self.port = port
        self.layout = layout
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        # No database or broker URL: SQLite and the embedded Redis, as a new user gets.
        env.update(HERALD_DATA_DIR=str(data_dir), HERALD_WORKER_CONCURRENCY="2")
        if layout != "compact":  # the default is left to be the default
            args = (*args, "--layout", layout)
        self.stdout_path = data_dir / "up.out"
        self.stderr_path = data_dir / "up.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [PY, "-m", "herald", "up", "--port", str(port), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.seen: dict[int, psutil.Process] = {}

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def tree(self) -> list[psutil.Process]:
        """Every live descendant now; also remembered, to check none outlives the stop."""
        try:
            procs: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for proc in procs:
            self.seen.setdefault(proc.pid, proc)
        return procs

    def child(self, name: str) -> psutil.Process | None:
        for proc in self.tree():
            try:
                # python -m herald <name> [options]
                if proc.ppid() == self.proc.pid and proc.cmdline()[3:4] == [name]:
                    return proc
            except psutil.NoSuchProcess:
                continue
        return None

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"herald up exited with {self.proc.returncode}:\n{self.stderr[-3000:]}")

    def healthy(self) -> bool:
        self.check_running()
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=3)
        except httpx.HTTPError:
            return False
        body = response.json()
        return response.status_code == 200 and all(
            component["status"] == "up" for component in body["components"].values()
        )

    def kill(self) -> None:
        """Last resort after a failed test: nothing may outlive the suite."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for proc in self.seen.values():
            if alive(proc):
                proc.kill()


@pytest.fixture
def herald_up(up_dir: Path, request: pytest.FixtureRequest) -> Iterator[Up]:
    """`herald up` with the layout and arguments the test's param names (compact, none)."""
    layout, *args = getattr(request, "param", ("compact",))
    up = Up(up_dir, free_port(), *args, layout=layout)
    try:
        yield up
    finally:
        up.kill()


# What each layout runs, pool processes and forks included.
PROCESSES = {
    "compact": 3,  # redis, api, the worker with the scheduler on a thread
    "split": 6,  # redis, api, worker, its fork for publishing and its pool, beat
}


def _stop_and_check_nothing_is_left(up: Up, sig: signal.Signals = signal.SIGTERM) -> None:
    up.tree()
    assert len(up.seen) >= PROCESSES[up.layout], [p.cmdline() for p in up.seen.values()]
    started = time.monotonic()
    up.proc.send_signal(sig)
    code = up.proc.wait(timeout=15)
    elapsed = time.monotonic() - started
    assert code == 0, up.stderr[-3000:]
    assert elapsed < 10
    # A SIGKILLed orphan may take a moment to be reaped by init; nothing may survive it.
    survivors = [p for p in up.seen.values() if alive(p)]
    deadline = time.monotonic() + 1
    while survivors and time.monotonic() < deadline:
        time.sleep(0.05)
        survivors = [p for p in survivors if alive(p)]
    assert survivors == []


BANNERS = ("celery@", "[tasks]", "[queues]", "Uvicorn")
SCHEDULER_BANNERS = {
    "compact": ("beat: Starting", "the scheduler runs on a thread of this worker"),
    "split": ("celery beat v", "Herald's scheduler"),
}


@pytest.mark.integration
@pytest.mark.parametrize(
    "herald_up", [("compact", "--verbose"), ("split", "--verbose")], indirect=True
)
def test_herald_up_runs_everything_and_stops_cleanly(herald_up: Up) -> None:
    wait_for(herald_up.healthy, 120, "GET /api/v1/health to answer 200 with everything up")
    wait_for(lambda: "Press Ctrl-C to stop." in herald_up.stdout, 10, "the sign-in")

    out = herald_up.stdout
    assert f"Herald is running at http://127.0.0.1:{herald_up.port}" in out
    assert f"http://127.0.0.1:{herald_up.port}/docs" in out
    assert "Sign in as:  admin@herald.localhost" in out
    assert "shown only this once" in out
    # --verbose: every process's output is on the terminal, and no log files are written.
    terminal = out + herald_up.stderr
    assert all(banner in terminal for banner in BANNERS + SCHEDULER_BANNERS[herald_up.layout])
    assert not (herald_up.data_dir / "logs").exists()
    names = [" ".join(p.cmdline()) for p in herald_up.tree()]
    assert any("redis-server" in name and "redis.sock" in name for name in names)
    worker = herald_up.child("worker")
    assert worker is not None
    if herald_up.layout == "split":
        assert pool_of(worker), "the worker's pool processes"
        assert herald_up.child("beat") is not None
    else:
        assert worker.cmdline()[3:] == ["worker", "--compact"]
        assert herald_up.child("beat") is None
    assert (herald_up.data_dir / "appendonly.aof").exists()

    _stop_and_check_nothing_is_left(herald_up)
    assert not (herald_up.data_dir / "redis.sock").exists()


def sign_in_block(out: str) -> list[str] | None:
    """The lines from the rule above the address to the rule below it, once printed."""
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("─" * 20)]
    return lines[rules[0] : rules[1] + 1] if len(rules) >= 2 else None


@pytest.mark.integration
def test_herald_up_shows_the_sign_in_last_once_healthy_and_logs_the_rest(herald_up: Up) -> None:
    def signed_in() -> bool:
        herald_up.check_running()
        return "Press Ctrl-C to stop." in herald_up.stdout

    wait_for(signed_in, 120, "the address and sign-in to be printed")
    # Printed only once everything answers: at that moment health is already 200.
    assert herald_up.healthy(), "the sign-in was printed before /api/v1/health answered 200"

    out = herald_up.stdout
    block = sign_in_block(out)
    assert block is not None, out
    assert block[1:3] == [
        f"  Herald is running at http://127.0.0.1:{herald_up.port}",
        f"  API docs: http://127.0.0.1:{herald_up.port}/docs",
    ]
    found = re.search(r"Password:\s+(\S+)", "\n".join(block))
    assert found is not None
    password = found.group(1)
    signed = httpx.post(
        f"http://127.0.0.1:{herald_up.port}/api/v1/auth/login",
        json={"email": "admin@herald.localhost", "password": password},
        timeout=10,
    )
    assert signed.status_code == 200, signed.text

    logs = herald_up.data_dir / "logs"
    api_log = logs / "api.log"
    # That request was logged, to the API's log: nothing is printed after the sign-in.
    wait_for(lambda: "POST /api/v1/auth/login" in api_log.read_text(), 10, "the login in api.log")
    out = herald_up.stdout
    assert out.splitlines()[-len(block) :] == block, out
    assert out.splitlines()[-len(block) - 1] == ""  # set apart
    assert out.count(password) == 1
    assert f"Logs: {logs}/ (up.log, api.log, worker.log)" in out  # the compact layout's
    assert not any(banner in out for banner in BANNERS), out
    assert herald_up.stderr == ""
    logged = {name: (logs / f"{name}.log").read_text() for name in ("up", "api", "worker")}
    assert "[tasks]" in logged["worker"] and "ready." in logged["worker"]
    assert all(banner in logged["worker"] for banner in SCHEDULER_BANNERS["compact"])
    assert not (logs / "beat.log").exists()
    assert "Uvicorn running" in logged["api"]
    assert "Running upgrade" in logged["up"]  # the migrations, run by herald up itself
    assert not any(password in text for text in logged.values())

    _stop_and_check_nothing_is_left(herald_up, signal.SIGINT)
    assert herald_up.stdout.endswith("Stopping Herald...\nHerald stopped.\n")


@pytest.mark.integration
def test_herald_up_that_is_not_healthy_in_time_stops_and_says_what(up_dir: Path) -> None:
    up = Up(up_dir, free_port(), "--start-timeout", "1")
    try:
        assert up.proc.wait(timeout=60) == 1
    finally:
        up.kill()
    last_line = up.stderr.strip().splitlines()[-1]
    assert last_line.startswith("herald: error: Herald was not healthy within 1 s; "), up.stderr
    assert f"(see {up_dir}/logs/" in last_line
    assert "Password" not in up.stdout
    # No admin was created whose password nobody saw: the next start creates and shows it.
    with sqlite3.connect(up_dir / "herald.db") as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
    assert not (up_dir / "redis.sock").exists()


@pytest.mark.integration
@pytest.mark.parametrize("herald_up", [("compact",), ("split",)], indirect=True)
def test_a_killed_worker_comes_back(herald_up: Up) -> None:
    def worker_with_pool() -> psutil.Process | None:
        """The worker once it runs, with its pool processes in the split layout (in the
        compact one its pool is threads)."""
        herald_up.check_running()
        worker = herald_up.child("worker")
        if worker is None or (herald_up.layout == "split" and not pool_of(worker)):
            return None
        return worker

    old = wait_for(worker_with_pool, 60, "the worker and its pool to start")
    old_pool = pool_of(old)

    old.send_signal(signal.SIGKILL)

    def new_worker() -> bool:
        herald_up.check_running()
        worker = herald_up.child("worker")
        return worker is not None and worker.pid != old.pid

    wait_for(new_worker, 10, "the worker to be restarted")  # first back-off: 1 s
    # Its orphaned pool processes went with it.
    wait_for(lambda: not any(alive(p) for p in old_pool), 2, "the old pool to die")
    assert "worker (pid" in herald_up.stderr and "restarting in 1 s" in herald_up.stderr
    wait_for(worker_with_pool, 60, "the new worker and its pool to start")

    _stop_and_check_nothing_is_left(herald_up)


@pytest.mark.integration
def test_herald_up_says_so_when_the_port_is_taken(up_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = Up(up_dir, port)
        try:
            assert up.proc.wait(timeout=30) == 1
        finally:
            up.kill()
    lines = up.stderr.strip().splitlines()
    assert lines[-1] == f"herald: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert not (up_dir / "redis.sock").exists()


def test_herald_up_refuses_a_layout_it_does_not_have(up_dir: Path) -> None:
    up = Up(up_dir, free_port(), layout="everything")
    try:
        assert up.proc.wait(timeout=30) == 1
    finally:
        up.kill()
    assert up.stderr.strip().splitlines() == [
        "herald: error: --layout must be one of: compact, split"
    ]


@pytest.mark.integration
def test_herald_up_refuses_a_data_dir_in_use(up_dir: Path) -> None:
    with EmbeddedRedis(up_dir) as running:
        up = Up(up_dir, free_port())
        try:
            assert up.proc.wait(timeout=30) == 1
        finally:
            up.kill()
        with running.client() as client:
            assert client.ping() is True
    last_line = up.stderr.strip().splitlines()[-1]
    assert last_line.startswith("herald: error: another Herald is running with this data dir")
    assert up.stdout == ""
