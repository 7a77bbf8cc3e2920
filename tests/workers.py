"""A real `herald worker` process for integration tests, on the suite's database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TypeVar

import psutil
from celery import Celery

from herald.core.settings import get_settings
from herald.worker import app

T = TypeVar("T")


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    settings = get_settings()
    return {
        **os.environ,
        "HERALD_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "HERALD_DATABASE_URL": settings.effective_database_url,
        "HERALD_BROKER_URL": settings.effective_broker_url,
        "HERALD_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }


def _spawn(
    args: list[str],
    extra_env: dict[str, str] | None,
    log: Path | None,
    *,
    preload: tuple[str, ...] = (),
    wrap: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """``python -m herald <args>`` in its own session, after importing ``preload``, run
    through ``wrap`` (a command that execs the rest: ``ip netns exec NS``, say); its
    output appended to ``log`` (worth keeping when a test kills things on purpose), else
    dropped."""
    herald = ["-m", "herald"]
    if preload:
        herald = ["-c", f"import {', '.join(preload)}; from herald.cli import main; main()"]
    output: IO[bytes] | int = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [*wrap, sys.executable, *herald, *args],
            env=_env(extra_env),
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    finally:
        if not isinstance(output, int):
            output.close()  # the child has its own copy


@contextmanager
def _control(extra_env: dict[str, str] | None) -> Iterator[Celery]:
    """A Celery app on the broker the worker was given (the suite's own by default)."""

    broker = (extra_env or {}).get("HERALD_BROKER_URL")
    if broker is None:
        yield app
        return
    own = Celery("herald-test-control", broker=broker, set_as_current=False)
    try:
        yield own
    finally:
        own.close()


class WorkerProcess:
    def __init__(
        self,
        extra_env: dict[str, str] | None = None,
        *,
        pool: str = "prefork",
        preload: tuple[str, ...] = (),
        log: Path | None = None,
        concurrency: int = 2,
        wrap: tuple[str, ...] = (),
        nodename: str | None = None,
        args: tuple[str, ...] | None = None,
    ) -> None:
        self.extra_env = extra_env
        self.pool = pool
        # The command's arguments; by default one worker, ``concurrency`` pool processes
        # (or threads) of ``pool``.
        default = ("worker", "--concurrency", str(concurrency), "--pool", pool)
        self.args = default if args is None else args
        # Modules the worker imports before it starts (a test's own adapter, say).
        self.preload = preload
        self.log = log
        # A command the worker runs under (another network namespace), and the node name
        # it answers pings as (``celery@<hostname>``) when it is not the only worker.
        self.wrap = wrap
        self.nodename = nodename
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> WorkerProcess:
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> WorkerProcess:
        """Start the process; :meth:`wait_ready` waits for its first answer (start several
        workers side by side: starting is the slow part)."""
        self.proc = _spawn(
            list(self.args),
            self.extra_env,
            self.log,
            preload=self.preload,
            wrap=self.wrap,
        )
        return self

    def wait_ready(self, timeout: float = 30) -> WorkerProcess:
        assert self.proc is not None
        destination = [self.nodename] if self.nodename else None
        deadline = time.monotonic() + timeout
        with _control(self.extra_env) as app:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}")
                # limit=1: back at the first reply, not at the end of the timeout.
                if app.control.ping(destination=destination, timeout=0.5, limit=1):
                    return self
        self.kill()
        raise TimeoutError("worker did not answer a ping")

    def kill(self) -> None:
        """SIGKILL the worker and its pool, as a crash would."""
        if self.proc is None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return  # the whole group is gone already
        self.proc.wait(timeout=10)
        psutil.wait_procs(children, timeout=10)

    def stop(self, timeout: float = 30) -> None:
        """A warm shutdown, as `herald up` and a service manager stopping the main process
        do: SIGTERM to the leader only, which lets running tasks finish. (Celery's pool
        children reset SIGTERM to "die now", so signalling the whole group would kill
        deliveries mid-flight, which is what `kill` is for.)"""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        self.kill()  # also reaps what the leader left behind in its group


@contextmanager
def running_worker(extra_env: dict[str, str] | None = None) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(extra_env).start()
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(
    predicate: Callable[[], T], timeout: float = 30, interval: float = 0.1, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:g} s")
        time.sleep(interval)


class BeatProcess:
    """A real `herald beat` (the scheduler and its dispatcher)."""

    def __init__(self, extra_env: dict[str, str] | None = None, *, log: Path | None = None) -> None:
        self.extra_env = extra_env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BeatProcess:
        self.proc = _spawn(["beat"], self.extra_env, self.log)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
