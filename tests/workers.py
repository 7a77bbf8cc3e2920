"""A real `herald worker` process for integration tests, on the suite's database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    from herald.core.settings import get_settings

    settings = get_settings()
    return {
        **os.environ,
        "HERALD_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "HERALD_DATABASE_URL": settings.effective_database_url,
        "HERALD_BROKER_URL": settings.effective_broker_url,
        "HERALD_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }


class WorkerProcess:
    def __init__(
        self,
        extra_env: dict[str, str] | None = None,
        *,
        pool: str = "prefork",
        preload: tuple[str, ...] = (),
    ) -> None:
        self.extra_env = extra_env
        self.pool = pool
        # Modules the worker imports before it starts (a test's own adapter, say).
        self.preload = preload
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> WorkerProcess:
        from herald.worker import app

        herald = ["-m", "herald"]
        if self.preload:
            herald = [
                "-c",
                f"import {', '.join(self.preload)}; from herald.cli import main; main()",
            ]
        self.proc = subprocess.Popen(
            [sys.executable, *herald, "worker", "--concurrency", "2", "--pool", self.pool],
            env=_env(self.extra_env),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}")
            if app.control.ping(timeout=0.5):
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


def wait_for(predicate, timeout: float = 30, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


class BeatProcess:
    """A real `herald beat` (the scheduler and its dispatcher)."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.extra_env = extra_env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BeatProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "herald", "beat"],
            env=_env(self.extra_env),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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
