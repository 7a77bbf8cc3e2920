"""Herald on several "machines" on this one: worker hosts in network namespaces.

Each worker host is a network namespace (``ip netns``) with a veth pair to this machine,
its own hostname (a UTS namespace, so each worker is ``celery@<its host>``) and no other
way out: it reaches PostgreSQL, Redis and the receiver only across its link, at the host
side's address, as a worker on another machine reaches them across the network. Cutting
a link (``ip link set <host side> down``) is that machine falling off the network with
its processes still running; restoring it brings them back mid-whatever they were doing.

On this machine (the host): PostgreSQL (listening on loopback only, so a small TCP
forwarder listens on each link's host side and connects to it from loopback, where trust
authentication applies), a private Redis bound to loopback and to each link's host side,
the webhook receiver (on the first link's host side: a local address, which every
namespace reaches through its own link however the others are), ``herald beat`` and
``herald api``. Nothing leaves the machine: the links are point-to-point /30s in
10.231.0.0/16 and nothing routes them further.

Shared by the test (``tests/deploy/test_many_machines.py``) and the benchmark
(``bench/many_machines.py``)::

    with Cluster(database_url, workdir, hosts=2, env={...}) as cluster:
        cluster.start()                                 # workers (one per host), beat, api
        token = cluster.account()                       # an admin and a token, on the API
        channels = cluster.channels(token, receiver, 5)  # webhook channels to the receiver
        cluster.publish_burst(token, channels, posts=100)  # 100 posts x 5 channels
        cluster.machines.cut(0); ...; cluster.machines.restore(0)

Everything it made is removed by :meth:`Cluster.close` (namespaces and links too, also
after a failure); namespaces and links a killed run left behind (``hrld-<pid>-*`` of a
process that is gone) are removed when the next run starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.webhook_receiver import Receiver
from tests.faults.stack import PrivateRedis
from tests.workers import BeatProcess, WorkerProcess, _spawn, wait_for

NETWORK = "10.231.0.0/16"
PREFIX = "hrld"
PG_TARGET = ("127.0.0.1", 5432)
# Short enough that a cut link's deliveries are taken over within seconds (the reconciler
# every second re-sends a delivery queued for 3 s and re-examines one whose 3 s lease ran
# out); the fault suite's values (tests/faults/stack.py).
FAST_RECOVERY = {
    "HERALD_RECONCILE_INTERVAL_SECONDS": "1",
    "HERALD_QUEUED_GRACE_SECONDS": "3",
    "HERALD_PUBLISH_LEASE_SECONDS": "3",
}
START_TIMEOUT = 60.0


class NamespacesUnavailable(RuntimeError):
    """This machine cannot make network namespaces (not root, or no ``ip``)."""


def namespaces_unavailable() -> str | None:
    """None when this process can make network namespaces and veth links, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    return None


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> list[str]:
    """Delete the namespaces and links of runs whose process is gone; their names."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{PREFIX}-(\d+)-[a-z]", name)
        if match and not _alive(int(match[1])):
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = re.fullmatch(rf"{PREFIX}(\d+)[a-z]", name)
        if match and not _alive(int(match[1])):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class Link:
    """One worker host: its namespace and the veth pair that is its only network."""

    namespace: str  # hrld-<pid>-a
    host_side: str  # hrld<pid>a, on this machine
    ns_side: str  # hrld<pid>an, in the namespace
    host_address: str  # 10.231.<o>.1: where the namespace finds the services
    ns_address: str  # 10.231.<o>.2: the worker host's own address
    hostname: str  # the UTS hostname its processes see

    def wrap(self) -> tuple[str, ...]:
        """The command prefix that runs a program on this host: in its network namespace,
        under its own hostname."""
        return (
            *("ip", "netns", "exec", self.namespace),
            *("unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"'),
            self.hostname,
        )


def _free_octet() -> int:
    """A third octet no address on this machine uses yet (two runs at once each take
    their own /24), starting from this process's pid."""
    used = set(re.findall(r"inet 10\.231\.(\d+)\.", ip("-4", "-o", "addr", "show")))
    for step in range(256):
        octet = (os.getpid() + step) % 256
        if str(octet) not in used:
            return octet
    raise RuntimeError("no free /24 left in 10.231.0.0/16")


@dataclass
class Machines:
    """Worker hosts as network namespaces, each with a veth pair to this machine."""

    count: int
    links: list[Link] = field(default_factory=list)

    def create(self) -> Machines:
        remove_leftovers()
        pid = os.getpid()
        octet = _free_octet()
        try:
            for i in range(self.count):
                letter = "abcdefghijklmnopqrstuvwxyz"[i]
                link = Link(
                    namespace=f"{PREFIX}-{pid}-{letter}",
                    host_side=f"{PREFIX}{pid}{letter}",
                    ns_side=f"{PREFIX}{pid}{letter}n",
                    host_address=f"10.231.{octet}.{4 * i + 1}",
                    ns_address=f"10.231.{octet}.{4 * i + 2}",
                    hostname=f"herald-host-{letter}",
                )
                self.links.append(link)
                ip("netns", "add", link.namespace)
                ip("link", "add", link.host_side, "type", "veth", "peer", "name", link.ns_side)
                ip("link", "set", link.ns_side, "netns", link.namespace)
                ip("addr", "add", f"{link.host_address}/30", "dev", link.host_side)
                ip("link", "set", link.host_side, "up")
                inside = ("-n", link.namespace)
                ip(*inside, "addr", "add", f"{link.ns_address}/30", "dev", link.ns_side)
                ip(*inside, "link", "set", link.ns_side, "up")
                ip(*inside, "link", "set", "lo", "up")
                ip(*inside, "route", "add", "default", "via", link.host_address)
        except BaseException:
            self.close()
            raise
        return self

    def cut(self, index: int) -> None:
        """The host falls off the network: its link goes down, its processes run on."""
        ip("link", "set", self.links[index].host_side, "down")

    def restore(self, index: int) -> None:
        ip("link", "set", self.links[index].host_side, "up")

    def close(self) -> None:
        """Delete every namespace (its end of the pair goes with it) and link; idempotent."""
        for link in self.links:
            ip("netns", "del", link.namespace, check=False)
            ip("link", "del", link.host_side, check=False)
        self.links = []

    def __enter__(self) -> Machines:
        return self.create()

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Forwarder:
    """TCP from each of ``hosts`` (a port of its own on each) to ``target``: PostgreSQL
    listens on loopback only, and trusts connections from there. One thread per
    direction per connection; :meth:`close` shuts every socket, which ends them."""

    def __init__(self, hosts: Sequence[str], target: tuple[str, int] = PG_TARGET) -> None:
        self.target = target
        self.ports: dict[str, int] = {}
        self._listeners: list[socket.socket] = []
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        for host in hosts:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, 0))
            listener.listen(64)
            self.ports[host] = listener.getsockname()[1]
            self._listeners.append(listener)
            self._thread(self._accept, listener)

    def _thread(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            self._thread(self._pipe, client, upstream)
            self._thread(self._pipe, upstream, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        # One side ended: end both (the other direction's thread then ends too).
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            for sock in (source, sink):
                if sock in self._sockets:
                    self._sockets.discard(sock)
                    sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
            threads = list(self._threads)
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _url_at(url: str, host: str, port: int) -> str:
    """``url`` (``postgresql+psycopg://user@127.0.0.1:5432/db``) at another host and port."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - the caller's settings first

    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)


@dataclass
class Published:
    """A burst: every delivery's id, and when the burst began and ended (Unix time, as
    the receiver's)."""

    ids: list[str]
    started: float
    finished: float


class Cluster:
    """Herald on ``hosts`` worker hosts (one ``herald worker`` each) and this machine
    (beat, api, PostgreSQL, Redis). ``env``: settings for every process (on top of
    :data:`FAST_RECOVERY` and the addresses)."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        hosts: int = 2,
        env: dict[str, str] | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.concurrency = concurrency
        self.pool = pool
        self.machines = Machines(hosts)
        self.env = {
            **FAST_RECOVERY,
            "HERALD_ALLOWED_PRIVATE_NETWORKS": f"127.0.0.0/8,::1/128,{NETWORK}",
            "HERALD_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.redis: PrivateRedis | None = None
        self.forwarder: Forwarder | None = None
        self.workers: list[WorkerProcess] = []
        self.beat: BeatProcess | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self._http: httpx.Client | None = None

    # --- the machines and the services ------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.machines.create()
            hosts = [link.host_address for link in self.machines.links]
            self.redis = PrivateRedis(
                self.workdir, binds=("127.0.0.1", *hosts), password=uuid.uuid4().hex
            ).start()
            self.forwarder = Forwarder(hosts)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def host_env(self) -> dict[str, str]:
        """Settings of the processes on this machine: everything on loopback."""
        assert self.redis is not None
        return {
            **self.env,
            "HERALD_DATABASE_URL": self.database_url,
            "HERALD_BROKER_URL": self.redis.url,
        }

    def worker_env(self, link: Link) -> dict[str, str]:
        """Settings of a worker host's processes: everything across its link."""
        assert self.redis is not None and self.forwarder is not None
        host, port = link.host_address, self.forwarder.ports[link.host_address]
        return {
            **self.env,
            "HERALD_DATABASE_URL": _url_at(self.database_url, host, port),
            "HERALD_BROKER_URL": self.redis.url_at(host),
        }

    def receiver(self, hold_seconds: float) -> Receiver:
        """A webhook receiver on the first link's host side, answering after ``hold``."""
        return Receiver(hold_seconds=hold_seconds, host=self.machines.links[0].host_address)

    # --- Herald's processes -------------------------------------------------------------

    def start(self, *, hosts: int | None = None) -> None:
        """The beat and the API (once), and a worker on each of the first ``hosts`` hosts
        (all by default) that has none yet; returns once every worker answers a ping and
        the API its health check. Everything starts side by side: starting is slow."""
        if self.beat is None:
            self.beat = BeatProcess(self.host_env(), log=self.workdir / "beat.log").start()
        if self.api is None:
            port = _free_port()
            self.api = _spawn(
                ["api", "--host", "127.0.0.1", "--port", str(port)],
                self.host_env(),
                self.workdir / "api.log",
            )
            self.api_url = f"http://127.0.0.1:{port}"
            self._http = httpx.Client(base_url=self.api_url, timeout=30)
        starting = []
        for link in self.machines.links[len(self.workers) : hosts]:
            worker = WorkerProcess(
                self.worker_env(link),
                pool=self.pool,
                concurrency=self.concurrency,
                log=self.workdir / f"worker-{link.hostname}.log",
                wrap=link.wrap(),
                nodename=f"celery@{link.hostname}",
            )
            self.workers.append(worker.spawn())
            starting.append(worker)
        for worker in starting:
            # Its ping goes to the host side's Redis address: a local one, so this
            # process reaches it too.
            worker.wait_ready(timeout=START_TIMEOUT)
        wait_for(self._api_answers, START_TIMEOUT, 0.2, what="the API answering")

    def _api_answers(self) -> bool:
        assert self.api is not None and self._http is not None
        if self.api.poll() is not None:
            raise RuntimeError(f"herald api exited with {self.api.returncode}: {self.logs()}")
        try:
            self._http.get("/api/v1/health")
        except httpx.TransportError:
            return False
        return True

    def close(self) -> None:
        """Stop everything this cluster started and remove what it made; idempotent."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.beat is not None:
            self.beat.stop()
        for i, worker in enumerate(self.workers):
            # A link left down would hold the worker's goodbye until its timeouts.
            with contextlib.suppress(RuntimeError, IndexError):
                self.machines.restore(i)
            worker.kill()
        self.workers = []
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.api.kill()
                self.api.wait(timeout=10)
        if self.forwarder is not None:
            self.forwarder.close()
        if self.redis is not None:
            self.redis.stop()
        self.machines.close()

    def logs(self, lines: int = 30) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {lines} lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    # --- through the API ----------------------------------------------------------------

    def account(self) -> str:
        """An admin (and its workspace) made in the database; a token for the API."""
        from sqlalchemy import create_engine  # noqa: PLC0415 - the caller's settings first
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from herald.users.models import Role, TokenKind  # noqa: PLC0415
        from herald.users.service import create_user, issue_token  # noqa: PLC0415

        engine = create_engine(self.database_url)
        try:
            with Session(engine) as session, session.begin():
                user, _ = create_user(
                    session,
                    email=f"ops-{uuid.uuid4().hex[:8]}@example.com",
                    password="correct horse battery",
                    role=Role.ADMIN,
                    workspace_name="machines",
                )
                issued = issue_token(
                    session, user, kind=TokenKind.PERSONAL, name="machines", expires_at=None
                )
                return issued.token
        finally:
            engine.dispose()

    def _call(self, token: str, method: str, path: str, body: Any, status: int) -> Any:
        assert self._http is not None
        response = self._http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code != status:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def channels(self, token: str, receiver: Receiver, count: int) -> list[str]:
        """``count`` webhook channels to the receiver, with short timeouts; their ids."""
        ids = []
        for i in range(count):
            channel = self._call(
                token,
                "POST",
                "/api/v1/channels",
                {
                    "platform": "webhook",
                    "name": f"machines {i}",
                    "credentials": receiver.credentials(),
                    "settings": {"connect_timeout": 1.0, "read_timeout": 2.0},
                },
                201,
            )
            ids.append(str(channel["id"]))
        return ids

    def publish_burst(self, token: str, channel_ids: list[str], posts: int) -> Published:
        """``posts`` posts, each published at once to every channel: posts x channels
        deliveries, one API request to create and one to publish each post."""
        ids: list[str] = []
        started = time.time()
        for i in range(posts):
            post = self._call(token, "POST", "/api/v1/posts", {"title": f"burst {i}"}, 201)
            answer = self._call(
                token,
                "POST",
                f"/api/v1/posts/{post['id']}/publish",
                {"channel_ids": channel_ids},
                202,
            )
            ids += [str(publication["id"]) for publication in answer["publications"]]
        return Published(ids, started, time.time())

    def schedule_burst(self, token: str, channel_ids: list[str], posts: int) -> list[str]:
        """As :meth:`publish_burst`, but each post scheduled an hour ahead: nothing is due
        until :meth:`release`, so a measurement can leave the API's pace out."""
        when = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        ids: list[str] = []
        for i in range(posts):
            post = self._call(token, "POST", "/api/v1/posts", {"title": f"burst {i}"}, 201)
            answer = self._call(
                token,
                "POST",
                f"/api/v1/posts/{post['id']}/schedule",
                {"scheduled_at": when, "channel_ids": channel_ids},
                202,
            )
            ids += [str(publication["id"]) for publication in answer["publications"]]
        return ids

    def release(self, ids: Sequence[str]) -> float:
        """Make the scheduled deliveries due now (the scheduler queues them within its
        tick); returns when (Unix time)."""
        with _connect(self.database_url) as conn:
            conn.execute(
                "UPDATE publications SET due_at = now() WHERE id = ANY(%s::uuid[])", (list(ids),)
            )
        return time.time()


def _connect(database_url: str) -> Any:
    import psycopg  # noqa: PLC0415

    return psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://", 1))


def states(database_url: str, ids: Sequence[str]) -> dict[str, tuple[str, int, str, str | None]]:
    """Each delivery's state, attempts made, idempotency key and external id, read from
    the database."""
    with _connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, state, attempt, idempotency_key, external_id FROM publications"
            " WHERE id = ANY(%s::uuid[])",
            (list(ids),),
        ).fetchall()
    return {row[0]: (str(row[1]), int(row[2]), str(row[3]), row[4]) for row in rows}
