"""API latency under an open-loop load: p50/p99/max of accept-publish, list posts and get
post at fixed arrival rates, with the worker delivering at the same time.

    uv run python -m bench.api_latency                              # SQLite, 50 100 200 req/s
    uv run python -m bench.api_latency --database postgresql --rates 100 --seconds 20

The stack is the real one: ``herald api`` (uvicorn, as ``herald up`` runs it), a real
``herald worker`` delivering every accepted publish to a local webhook receiver
(:class:`bench._harness.Receiver`), Redis and the database.

The load generator runs in its own process (``python -m bench.api_latency generate``) and
is *open-loop*: request ``i`` of a phase is due at ``start + i / rate`` and is sent then
whatever the answers to the ones before; its latency is measured from that due time, not
from when a connection became free, so a server that falls behind shows its queue in the
numbers (no coordinated omission). It holds at most ``--connections`` keep-alive HTTP/1.1
connections (raw asyncio streams: lighter than an HTTP client library on a shared machine);
a request due while every connection is busy waits for one, and that wait is counted.

Phases: for each rate, each endpoint alone at that rate for ``--seconds``:

- ``publish``: POST /api/v1/posts/{id}/publish of a new post to one webhook channel (202);
- ``list``: GET /api/v1/posts (the first page, 20 posts);
- ``get``: GET /api/v1/posts/{id}.

During the list and get phases a background stream of publishes (``--background-rate``,
not counted in the phase's numbers) keeps the worker delivering. A phase starts when the
one before has had all its answers. Each run checks every accepted publish reached the
receiver. The table gives the load average and the CPU others used while it ran: the
machine may be shared, and the numbers mean little when it is busy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._charts import LatencySeries, latency_chart_svg
from bench._harness import (
    BenchError,
    CpuMeter,
    ManagedProcess,
    Receiver,
    add_stack_arguments,
    machine_info,
    run_main,
    source_info,
    start_worker,
    wait_until,
    write_outputs,
)
from bench.publish_throughput import BODY, herald_stack

NAME = "api_latency"
ENDPOINTS = ("publish", "list", "get")
BACKGROUND = "background"
TARGET_RATE, TARGET_P99_MS = 100, 20.0
EXPECTED_STATUS = {"publish": 202, "list": 200, "get": 200, BACKGROUND: 202}
COLORS = {"publish": "#d9480f", "list": "#1971c2", "get": "#2f9e44"}
WARM_UP = 5  # requests of each endpoint before the phases (not counted): lazy imports, pools
REQUEST_TIMEOUT = 10.0  # seconds: an answer later than this is an error


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_latency",
        description="API latency (p50/p99/max) at fixed arrival rates, deliveries running.",
    )
    parser.add_argument(
        "--rates", type=int, nargs="+", default=[50, 100, 200], metavar="R",
        help="Requests per second per phase (50 100 200).",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of a phase (10).")
    parser.add_argument(
        "--endpoints", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS),
        help="Endpoints to measure (all three).",
    )  # fmt: skip
    parser.add_argument(
        "--connections", type=int, default=32,
        help="Most keep-alive connections the load generator holds at once (32).",
    )  # fmt: skip
    parser.add_argument(
        "--background-rate", type=float, default=10.0,
        help="Publishes per second sent during the list and get phases (10; 0: none).",
    )  # fmt: skip
    parser.add_argument(
        "--posts", type=int, default=200,
        help="Posts in the database besides the ones published (200): what lists page over.",
    )  # fmt: skip
    parser.add_argument(
        "--api-workers", type=int, default=None, metavar="N",
        help="Processes `herald api` serves with (HERALD_API_WORKERS; Herald's default: 1).",
    )  # fmt: skip
    add_stack_arguments(
        parser,
        broker_db=14,
        timeout=1200,
        workdir_holds="API, worker and receiver logs, plan and answers, SQLite file",
    )
    args = parser.parse_args(argv)
    if any(rate < 1 for rate in args.rates) or args.seconds <= 0:
        parser.error("every --rates must be at least 1 and --seconds more than 0")
    if args.connections < 1 or args.background_rate < 0 or args.posts < 1:
        parser.error("--connections and --posts must be at least 1, --background-rate >= 0")
    args.rates = sorted(set(args.rates))
    return args


# --- the plan and the load generator (its own process) ---------------------------------------


@dataclass
class Request:
    phase: int
    endpoint: str  # one of ENDPOINTS, or BACKGROUND
    due: float  # seconds from the phase's start
    method: str
    path: str
    body: bytes = b""


def phase_requests(
    phase: int,
    endpoint: str,
    rate: int,
    seconds: float,
    background_rate: float,
    fresh: list[str],
    readable: list[str],
    channel_id: str,
) -> list[Request]:
    """One phase's requests in due order; takes the posts it publishes from ``fresh``."""
    body = json.dumps({"channel_ids": [channel_id]}).encode()

    def publish(kind: str, due: float) -> Request:
        post = fresh.pop()
        return Request(phase, kind, due, "POST", f"/api/v1/posts/{post}/publish", body)

    count = max(1, math.floor(rate * seconds))
    requests = []
    for i in range(count):
        due = i / rate
        if endpoint == "publish":
            requests.append(publish(endpoint, due))
        elif endpoint == "list":
            requests.append(Request(phase, endpoint, due, "GET", "/api/v1/posts"))
        else:
            post = readable[i % len(readable)]
            requests.append(Request(phase, endpoint, due, "GET", f"/api/v1/posts/{post}"))
    if endpoint != "publish" and background_rate > 0:
        for i in range(math.floor(background_rate * seconds)):
            requests.append(publish(BACKGROUND, (i + 0.5) / background_rate))
    requests.sort(key=lambda r: r.due)
    return requests


def publishes_needed(args: argparse.Namespace) -> int:
    """Posts the plan publishes: one per publish request, background ones included."""
    total = 0
    for rate in args.rates:
        for endpoint in args.endpoints:
            if endpoint == "publish":
                total += max(1, math.floor(rate * args.seconds))
            elif args.background_rate > 0:
                total += math.floor(args.background_rate * args.seconds)
    return total


class _Connections:
    """At most ``limit`` keep-alive connections to ``port``, opened as needed."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(limit)

    async def request(self, method: str, path: str, headers: str, body: bytes) -> int:
        """Send one request and read its whole answer; its status."""
        async with self.slots:
            reused = bool(self.idle)
            reader, writer = self.idle.pop() if reused else await self._open()
            status_line = b""
            try:
                head = f"{method} {path} HTTP/1.1\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
                writer.write(head.encode() + body)
                status_line = await reader.readline()
                if not status_line and reused:
                    # The server closed this idle connection (its keep-alive timeout):
                    # the request never reached it; send it again on a new one.
                    writer.close()
                    reader, writer = await self._open()
                    writer.write(head.encode() + body)
                    status_line = await reader.readline()
                status, close = await self._read_answer(reader, status_line)
            except BaseException:
                writer.close()
                raise
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer))
            return status

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    @staticmethod
    async def _read_answer(reader: asyncio.StreamReader, status_line: bytes) -> tuple[int, bool]:
        """The status, and whether the server closes the connection; reads the whole body."""
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise ConnectionError("the API answered chunked; the generator reads lengths")
        await reader.readexactly(length)
        return int(parts[1]), close


async def _generate(plan: dict[str, Any]) -> list[dict[str, Any]]:
    connections = _Connections(plan["port"], plan["connections"])
    headers = (
        f"Host: 127.0.0.1:{plan['port']}\r\nAuthorization: Bearer {plan['token']}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
    )
    loop = asyncio.get_running_loop()
    phases = []
    for phase in plan["phases"]:
        requests = [Request(**r) for r in phase["requests"]]
        for r in requests:
            r.body = r.body.encode() if isinstance(r.body, str) else r.body
        answers: list[list[Any]] = []

        async def one(r: Request, due: float, answers: list[list[Any]]) -> None:
            status: int | str
            try:
                status = await asyncio.wait_for(
                    connections.request(r.method, r.path, headers, r.body), REQUEST_TIMEOUT
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                status = f"{type(exc).__name__}"
            answers.append([r.endpoint, round(r.due, 6), loop.time() - due, status])

        started_wall, start = time.time(), loop.time() + 0.05
        tasks = []
        for r in requests:
            due = start + r.due
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(r, due, answers)))
        await asyncio.gather(*tasks)
        phases.append(
            {
                "endpoint": phase["endpoint"],
                "rate": phase["rate"],
                "started": started_wall,
                "finished": time.time(),
                "answers": answers,
            }
        )
    return phases


def _generate_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_latency generate")
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    phases = asyncio.run(_generate(plan))
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(phases))
    tmp.replace(args.out)


# --- set-up: fixtures, the API ------------------------------------------------------------


def create_fixtures(receiver: Receiver, fresh: int, readable: int) -> dict[str, Any]:
    """A user with a personal token, a webhook channel to the receiver, ``fresh`` posts to
    publish and ``readable`` more (not timed)."""
    from herald.channels.schemas import ChannelCreate
    from herald.channels.service import create_channel
    from herald.core.db import session_scope
    from herald.posts.schemas import PostCreate
    from herald.posts.service import create_post
    from herald.users.models import Role
    from herald.users.principal import Principal
    from herald.users.service import create_personal_token, create_user

    with session_scope() as session:
        user, _ = create_user(
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="bench"
        )
        principal = Principal(user.id, user.workspace_id, user.email, user.role)
        token = create_personal_token(session, principal, name="bench", expires_at=None).token
        channel = create_channel(
            session,
            principal,
            ChannelCreate(platform="webhook", name="bench", credentials=receiver.credentials()),
        )
        channel_id = str(channel.id)
    ids: list[str] = []
    total = fresh + readable
    for first in range(0, total, 500):
        with session_scope() as session:
            for i in range(first, min(total, first + 500)):
                post = create_post(
                    session,
                    principal,
                    PostCreate(title=f"Bench post {i}", body=BODY, tags=["bench", "latency"]),
                )
                ids.append(str(post.id))
    return {
        "token": token,
        "channel_id": channel_id,
        "fresh": ids[:fresh],
        "readable": ids[fresh:],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_api(env: dict[str, str], workdir: Path, port: int) -> ManagedProcess:
    """``herald api`` on ``port``, as ``herald up`` starts it; returns once it answers."""
    argv = [sys.executable, "-m", "herald", "api", "--host", "127.0.0.1", "--port", str(port)]
    api = ManagedProcess("api", argv, workdir / "api.log", env=env).start()

    def live() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/health/live", timeout=2).is_success
        return False

    wait_until(live, 60, "the API to answer", check=api.check, interval=0.2)
    return api


def publishes(answers: list[dict[str, Any]]) -> tuple[int, int]:
    """(accepted, sent) publishes of the plan, background ones included."""
    sent = [a for p in answers for a in p["answers"] if a[0] in ("publish", BACKGROUND)]
    return sum(1 for a in sent if a[3] == EXPECTED_STATUS["publish"]), len(sent)


def receiver_hits(receiver: Receiver, problems: list[str]) -> list[float]:
    """When each post.published delivery reached the receiver; a bad signature is a problem."""
    hits, bad = receiver.hits()
    if bad:
        problems.append(f"{bad} deliveries with a bad signature")
    return [t for _key, event, t in hits if event == "post.published"]


def warm_up(port: int, fixtures: dict[str, Any]) -> None:
    """A few requests of each endpoint, one at a time, not counted (the API's first
    requests import lazily and open its connections); takes the posts it publishes from
    ``fixtures["fresh"]``. Raises if one fails: the plan's would too."""
    headers = {"Authorization": f"Bearer {fixtures['token']}"}
    body = {"channel_ids": [fixtures["channel_id"]]}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        for _ in range(WARM_UP):
            post = fixtures["fresh"].pop()
            for response in (
                client.post(f"/api/v1/posts/{post}/publish", json=body),
                client.get("/api/v1/posts"),
                client.get(f"/api/v1/posts/{fixtures['readable'][0]}"),
            ):
                if not response.is_success:
                    raise BenchError(
                        f"{response.request.method} {response.request.url.path} answered "
                        f"{response.status_code} while warming up: {response.text[:300]}"
                    )


def worker_ready() -> bool:
    from herald.worker import app

    with contextlib.suppress(Exception):
        return bool(app.control.ping(timeout=1))
    return False


def build_plan(args: argparse.Namespace, fixtures: dict[str, Any], port: int) -> dict[str, Any]:
    """Every phase's requests, for the load generator: for each rate, each endpoint."""
    fresh = list(fixtures["fresh"])
    phases: list[dict[str, Any]] = []
    for rate in args.rates:
        for endpoint in args.endpoints:
            requests = phase_requests(
                len(phases), endpoint, rate, args.seconds, args.background_rate,
                fresh, fixtures["readable"], fixtures["channel_id"],
            )  # fmt: skip
            phases.append(
                {
                    "endpoint": endpoint,
                    "rate": rate,
                    "requests": [{**r.__dict__, "body": r.body.decode()} for r in requests],
                }
            )
    return {
        "port": port,
        "token": fixtures["token"],
        "connections": args.connections,
        "phases": phases,
    }


def send(
    plan: dict[str, Any], env: dict[str, str], workdir: Path, meter: CpuMeter, timeout: float
) -> list[dict[str, Any]]:
    """Run the load generator on ``plan`` (``meter`` started just before it; the generator
    has exited when the meter stops, so its own CPU counts in no role); its answers, per
    phase."""
    plan_path, out_path = workdir / "plan.json", workdir / "answers.json"
    plan_path.write_text(json.dumps(plan))
    argv = [sys.executable, "-m", "bench.api_latency", "generate"]
    argv += ["--plan", str(plan_path), "--out", str(out_path)]
    generator = ManagedProcess("generator", argv, workdir / "generator.log", env=env)
    print(f"sending {len(plan['phases'])} phases", flush=True)
    meter.start()
    generator.start()
    assert generator.proc is not None
    try:
        generator.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        generator.stop(grace=2)
        raise BenchError("the load generator did not finish") from exc
    if generator.proc.returncode != 0 or not out_path.exists():
        raise BenchError(f"the load generator failed:\n{generator.log_tail()}")
    answers: list[dict[str, Any]] = json.loads(out_path.read_text())
    return answers


# --- the numbers ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of non-empty ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(phase: dict[str, Any], hits: list[float]) -> dict[str, Any]:
    endpoint = phase["endpoint"]
    mine = [a for a in phase["answers"] if a[0] == endpoint]
    ok = [a[2] * 1000 for a in mine if a[3] == EXPECTED_STATUS[endpoint]]
    errors = [str(a[3]) for a in mine if a[3] != EXPECTED_STATUS[endpoint]]
    background = [a for a in phase["answers"] if a[0] == BACKGROUND]
    seconds = phase["finished"] - phase["started"]
    delivered = sum(1 for t in hits if phase["started"] <= t <= phase["finished"])
    return {
        "endpoint": endpoint,
        "rate": phase["rate"],
        "requests": len(mine),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50_ms": round(percentile(ok, 50), 2) if ok else None,
        "p90_ms": round(percentile(ok, 90), 2) if ok else None,
        "p99_ms": round(percentile(ok, 99), 2) if ok else None,
        "max_ms": round(max(ok), 2) if ok else None,
        "background_publishes": len(background),
        "deliveries_during": delivered,
        "seconds": round(seconds, 2),
        "latencies_ms": [round(v, 2) for v in ok],
    }


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace, facts: str) -> None:
    print(
        f"API latency, open loop ({args.database}, {args.seconds:g} s per phase, "
        f"{args.connections} connections, {args.background_rate:g} background publishes/s, "
        f"{args.api_workers or 1} API process(es))"
    )
    print(
        f"{'endpoint':<8} {'req/s':>6} {'sent':>6} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'delivered':>9}"
    )

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for row in rows:
        print(
            f"{row['endpoint']:<8} {row['rate']:>6} {row['requests']:>6} {row['errors']:>6} "
            f"{ms(row['p50_ms']):>8} {ms(row['p99_ms']):>8} {ms(row['max_ms']):>8} "
            f"{row['deliveries_during']:>9}"
        )
    print(facts)


def plot(rows: list[dict[str, Any]], args: argparse.Namespace, machine: str) -> str:
    series = []
    for endpoint in args.endpoints:
        mine = [r for r in rows if r["endpoint"] == endpoint and r["p50_ms"] is not None]
        series.append(
            LatencySeries(
                endpoint,
                [r["rate"] for r in mine],
                {q: [r[f"{q}_ms"] for r in mine] for q in ("p50", "p99", "max")},
                COLORS[endpoint],
            )
        )
    at_target = [r for r in rows if r["rate"] == TARGET_RATE and r["p99_ms"] is not None]
    if at_target:
        worst = max(at_target, key=lambda r: r["p99_ms"])
        title = (
            f"API latency: worst p99 at {TARGET_RATE} req/s is {worst['p99_ms']:.1f} ms "
            f"({worst['endpoint']}; target ≤ {TARGET_P99_MS:g} ms), {args.database}"
        )
    else:
        title = f"API latency at fixed arrival rates, {args.database}"
    subtitle = (
        f"open loop, latency from each request's due time; {args.seconds:g} s per endpoint "
        f"and rate, {args.connections} connections, the worker delivering "
        f"({args.background_rate:g} background publishes/s during reads); {machine}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    return latency_chart_svg(title, subtitle, series, target_ms=TARGET_P99_MS)


# --- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[str]:
    """The whole run; returns its problems (checks that failed)."""
    machine, source = machine_info(), source_info()
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        workdir, _database_url, env = herald_stack(args, stack, "al-")
        receiver = stack.enter_context(Receiver(workdir))
        print("creating posts (not timed)", flush=True)
        fixtures = create_fixtures(receiver, publishes_needed(args) + WARM_UP, args.posts)

        worker = start_worker(env, workdir / "worker.log")
        stack.callback(worker.stop)
        wait_until(worker_ready, 90, "the worker to answer", check=worker.check)
        port = free_port()
        if args.api_workers:
            env = {**env, "HERALD_API_WORKERS": str(args.api_workers)}
        api = start_api(env, workdir, port)
        stack.callback(api.stop)

        warm_up(port, fixtures)
        plan = build_plan(args, fixtures, port)
        assert receiver.process is not None
        meter = CpuMeter(
            groups={api.pid, worker.pid, receiver.process.pid},
            roles={api.pid: "api", worker.pid: "worker"},
        )
        answers = send(plan, env, workdir, meter, args.timeout)
        cpu, split = meter.stop(), meter.split()
        loadavg_end = [round(x, 2) for x in os.getloadavg()]

        accepted, sent = publishes(answers)
        with contextlib.suppress(BenchError):
            wait_until(
                lambda: receiver.delivered() >= accepted + WARM_UP, 120, "the last deliveries",
                check=worker.check, interval=0.2,
            )  # fmt: skip
        delivered = receiver.delivered() - WARM_UP
        # A publish that timed out here may still have been accepted by the API.
        if not accepted <= delivered <= sent:
            problems.append(
                f"{accepted} publishes accepted ({sent} sent), the receiver saw {delivered}"
            )
        hit_times = receiver_hits(receiver, problems)

    rows = [summarise(phase, hit_times) for phase in answers]
    for row in rows:
        if row["errors"]:
            problems.append(
                f"{row['endpoint']} at {row['rate']} req/s: {row['errors']} errors "
                f"({', '.join(row['error_kinds'])})"
            )
    cores = (
        f"{machine['usable_cores']} cores, load {machine['loadavg_at_start'][0]} → {loadavg_end[0]}"
    )
    used = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(split.items()))
    facts = (
        f"machine: {cores}, {machine['cpu']}; while it ran: {cpu.get('machine_cores_busy', '?')} "
        f"cores busy, others {cpu.get('others_cores', '?')}; CPU s: {used}\n"
        f"deliveries: {delivered} of {accepted} accepted publishes; source: {source['describe']}"
    )
    print_table(rows, args, facts)
    svg = plot(rows, args, cores)
    document = {
        "benchmark": NAME,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "database": args.database,
        "options": {
            "rates": args.rates,
            "seconds": args.seconds,
            "endpoints": args.endpoints,
            "connections": args.connections,
            "background_rate": args.background_rate,
            "posts": args.posts,
            "api_workers": args.api_workers or 1,
        },
        "machine": {**machine, "loadavg_at_end": loadavg_end},
        "cpu": cpu,
        "cpu_seconds": {k: round(v, 2) for k, v in split.items()},
        "source": source,
        "deliveries": {"accepted": accepted, "delivered": delivered},
        "phases": rows,
        "problems": problems,
    }
    write_outputs(args.results_dir, NAME, args.database, svg, document)
    return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        _generate_main(sys.argv[2:])
    else:
        raise SystemExit(main())
