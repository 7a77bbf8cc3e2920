"""Deliveries to a slow platform: does the worker hide the platform's latency?

    uv run python -m bench.slow_platform                         # SQLite, L = 0.1, 0.5, 2 s
    uv run python -m bench.slow_platform --database postgresql
    uv run python -m bench.slow_platform --pool prefork --concurrency 2   # the old pool
    uv run python -m bench.slow_platform --priority              # a "now" behind a backlog

A local webhook receiver answers every delivery L seconds after it arrives. N deliveries
(posts x 10 webhook channels) are created beforehand with Herald's broker send held back,
then sent in one burst, as in publish_throughput's "worker side only" mode; the timing runs
from the burst to the last delivery recorded ``published``. The same run first measures the
CPU-bound rate (L = 0), and the ideal for each L is
``min(CPU-bound rate, in-flight capacity / L)``, the capacity being the worker's pool size
for the ``publishing`` queue. It reports deliveries/s, the ratio to the ideal and to the
CPU-bound rate, the worker's memory (peak RSS and PSS of its process group), and the p50/p99
of the two transactions of each attempt (claim, settle; bench/_tx_timing.py).

A level whose N would take longer than ``--max-seconds`` at its ideal rate runs with fewer
deliveries (the table says how many), so the default run ends in a few minutes whatever the
pool.

``--priority``: ``--backlog`` scheduled deliveries (default 5,000) are made due and sent by
the scheduler's own dispatcher (``dispatch_once``), then one delivery is published "now"
(``actions.publish``, as the API does); its lateness is the time from that request to its
receiver hit. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update

from bench._charts import Bar, Curve, Panel, completion_chart_svg
from bench._harness import (
    TX_TIMES_KEY,
    BenchError,
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
from bench.publish_throughput import BODY, herald_stack, worker_facts

NAME = "slow_platform"
CHANNELS = 10
TARGET_LATENCY = 0.5
TARGET_RATIO = 0.8
TARGET_RSS_MB = 300
TARGET_LATENESS = 1.0
POLL_SECONDS = 0.1
COLORS = ["#8c8c8c", "#1971c2", "#d9480f", "#2f9e44", "#ae3ec9"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slow_platform",
        description="Deliveries/s to a receiver that answers after L seconds, against the ideal.",
    )
    parser.add_argument("--n", type=int, default=1000, help="Deliveries per latency.")
    parser.add_argument(
        "--latencies",
        default="0.1,0.5,2",
        help="Comma-separated receiver latencies in seconds (the CPU-bound L=0 always runs).",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=90.0,
        help="Fewer deliveries for a latency whose N would take longer at its ideal rate.",
    )
    parser.add_argument(
        "--priority",
        action="store_true",
        help="Measure a 'now' delivery's lateness behind a backlog instead.",
    )
    parser.add_argument("--backlog", type=int, default=5000, help="With --priority.")
    parser.add_argument(
        "--without-priorities",
        action="store_true",
        help="With --priority: the dispatcher sends the backlog at the 'now' priority, as "
        "Herald did before priorities (the comparison).",
    )
    parser.add_argument(
        "--priority-latency",
        type=float,
        default=0.1,
        help="With --priority: the receiver's latency (s) while the backlog drains.",
    )
    add_stack_arguments(
        parser, broker_db=13, timeout=1200, workdir_holds="worker and receiver logs, SQLite file"
    )
    args = parser.parse_args(argv)
    try:
        args.latency_list = [float(x) for x in args.latencies.split(",") if x.strip()]
    except ValueError:
        parser.error("--latencies: numbers separated by commas")
    if args.n < 1 or args.backlog < 1 or any(x <= 0 for x in args.latency_list):
        parser.error("--n and --backlog must be at least 1, latencies above 0")
    return args


# --- set-up -----------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    receiver: Receiver
    worker: ManagedProcess | None = None
    principal: Any = None
    channel_ids: list[uuid.UUID] = field(default_factory=list)
    publishing_pid: int | None = None  # the worker consuming publishing (its own process)
    problems: list[str] = field(default_factory=list)

    def check_children(self) -> None:
        assert self.worker is not None
        assert self.receiver.process is not None
        self.worker.check()
        self.receiver.process.check()


def create_fixtures(bench: Bench) -> None:
    """A user and ten webhook channels to the receiver (not timed)."""
    from herald.channels.schemas import ChannelCreate
    from herald.channels.service import create_channel
    from herald.core.db import session_scope
    from herald.users.models import Role
    from herald.users.principal import Principal
    from herald.users.service import create_user

    with session_scope() as session:
        user, _ = create_user(
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="bench"
        )
        bench.principal = Principal(user.id, user.workspace_id, user.email, user.role)
        for i in range(CHANNELS):
            channel = create_channel(
                session,
                bench.principal,
                ChannelCreate(
                    platform="webhook",
                    name=f"slow {i}",
                    credentials=bench.receiver.credentials(),
                ),
            )
            bench.channel_ids.append(channel.id)


def create_posts(bench: Bench, count: int) -> list[uuid.UUID]:
    from herald.core.db import session_scope
    from herald.posts.schemas import PostCreate
    from herald.posts.service import create_post

    ids: list[uuid.UUID] = []
    for start in range(0, count, 500):
        with session_scope() as session:
            for i in range(start, min(count, start + 500)):
                post = create_post(
                    session, bench.principal, PostCreate(title=f"Slow post {i}", body=BODY)
                )
                ids.append(post.id)
    return ids


def held_deliveries(bench: Bench, n: int) -> list[tuple[uuid.UUID, str]]:
    """``n`` queued deliveries (posts x the ten channels), their broker messages held back:
    Herald's ``enqueue`` is swapped for a list while they are made."""
    from herald.core.db import session_scope
    from herald.publishing import actions
    from herald.publishing.actions import compare_and_set

    post_ids = create_posts(bench, math.ceil(n / CHANNELS))
    send = compare_and_set.enqueue
    held: list[tuple[uuid.UUID, str]] = []

    def hold(publication_id: uuid.UUID, task_id: str, priority: int = 0) -> None:
        held.append((publication_id, task_id))

    compare_and_set.enqueue = hold
    try:
        left = n
        for post_id in post_ids:
            with session_scope() as session:
                actions.publish(session, bench.principal, post_id, bench.channel_ids[:left])
            left -= min(left, CHANNELS)
    finally:
        compare_and_set.enqueue = send
    if len(held) != n:
        raise BenchError(f"{len(held)} messages held for {n} deliveries")
    return held


# --- measuring ----------------------------------------------------------------------------


class MemorySampler:
    """Peak RSS and PSS (MB) of a process group, summed over its processes, sampled in a
    thread every quarter second; and apart, the peak RSS of one of its workers (``pid``
    and its own pool children). PSS shares each page among the processes mapping it (a
    prefork pool's pages shared with its parent count once); RSS counts them in each."""

    def __init__(self, group: int, pid: int | None = None) -> None:
        self.group = group
        self.pid = pid
        self.peak_rss = 0.0
        self.peak_pss = 0.0
        self.peak_worker_rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[float, float, float]:
        rss = pss = worker = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[2]) != self.group:
                    continue
                mine = self.pid in (int(entry.name), int(fields[1]))
                for line in (entry / "smaps_rollup").read_text().splitlines():
                    name, _, value = line.partition(":")
                    if name == "Rss":
                        rss += int(value.split()[0]) / 1024
                        worker += int(value.split()[0]) / 1024 if mine else 0.0
                    elif name == "Pss":
                        pss += int(value.split()[0]) / 1024
        return rss, pss, worker

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss, worker = self.sample()
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_worker_rss = max(self.peak_worker_rss, worker)
            self._stop.wait(0.25)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def settled(ids: set[uuid.UUID]) -> list[Any]:
    """The rows of these deliveries once none is active any more, else none."""
    from herald.core.db import session_scope
    from herald.publishing.models import ACTIVE, Publication

    with session_scope() as session:
        rows = [
            row
            for row in session.execute(
                select(Publication.id, Publication.state, Publication.published_at)
            )
            if row.id in ids
        ]
    if len(rows) < len(ids) or any(row.state in ACTIVE for row in rows):
        return []
    return rows


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def transaction_times(r: redis.Redis) -> dict[str, dict[str, float]]:
    """p50/p99/max ms of each kind of delivery transaction since the last call."""
    raw = r.lrange(TX_TIMES_KEY, 0, -1)
    r.delete(TX_TIMES_KEY)
    kinds: dict[str, list[float]] = {}
    for item in raw:
        kind, ms = (item.decode() if isinstance(item, bytes) else item).split()
        kinds.setdefault(kind, []).append(float(ms))
    return {
        kind: {
            "n": len(v),
            "p50_ms": round(percentile(v, 0.5), 2),
            "p99_ms": round(percentile(v, 0.99), 2),
            "max_ms": round(max(v), 2),
        }
        for kind, v in kinds.items()
    }


@dataclass
class Level:
    latency: float
    n: int
    seconds: float
    completions: list[float]
    rss_mb: float
    pss_mb: float
    publishing_rss_mb: float
    transactions: dict[str, dict[str, float]]

    @property
    def per_second(self) -> float:
        return self.n / self.seconds


def run_level(bench: Bench, latency: float, n: int, r: redis.Redis) -> Level:
    """``n`` deliveries sent in one burst to a receiver that answers after ``latency`` s,
    timed to the last one recorded ``published``; then each is checked to have reached the
    receiver exactly once."""
    from herald.publishing.actions import compare_and_set

    assert bench.worker is not None
    held = held_deliveries(bench, n)
    bench.receiver.reset()
    bench.receiver.set_delay(latency)
    r.delete(TX_TIMES_KEY)
    ids = {publication_id for publication_id, _ in held}
    with MemorySampler(bench.worker.pid, bench.publishing_pid) as memory:
        started = time.time()
        for publication_id, task_id in held:
            compare_and_set.enqueue(publication_id, task_id)
        wait_until(
            lambda: bench.receiver.delivered() >= n,
            max(120.0, 3 * n * max(latency, 0.01)),
            f"{n} deliveries at the receiver (L={latency:g} s)",
            interval=POLL_SECONDS,
            check=bench.check_children,
        )
        rows = wait_until(
            lambda: settled(ids), 60 + 2 * latency, "the deliveries to be recorded",
            interval=POLL_SECONDS, check=bench.check_children,
        )  # fmt: skip
    hits, bad = bench.receiver.hits()
    per_key = Counter(key for key, event, _ in hits if event == "post.published")
    where = f"L={latency:g} s"
    if duplicates := [k for k, c in per_key.items() if c > 1]:
        bench.problems.append(f"{where}: {len(duplicates)} deliveries reached the receiver twice")
    states = Counter(str(row.state) for row in rows)
    if states != Counter({"published": n}):
        bench.problems.append(f"{where}: delivery states {dict(states)}, expected all published")
    if bad:
        bench.problems.append(f"{where}: {bad} requests with a bad signature")
    times = sorted(row.published_at.timestamp() - started for row in rows if row.published_at)
    return Level(
        latency, n, times[-1], times, memory.peak_rss, memory.peak_pss,
        memory.peak_worker_rss, transaction_times(r),
    )  # fmt: skip


def level_size(args: argparse.Namespace, latency: float, cpu_rate: float, capacity: int) -> int:
    """N, or fewer when N would take longer than ``--max-seconds`` at the ideal rate."""
    ideal = min(cpu_rate, capacity / latency) if latency else cpu_rate
    n: int = args.n
    return max(CHANNELS, min(n, int(ideal * args.max_seconds)))


# --- priority -----------------------------------------------------------------------------


def run_priority(bench: Bench, r: redis.Redis) -> dict[str, Any]:
    """A backlog of scheduled deliveries made due and sent by the dispatcher, then one
    delivery published now: how late is it?"""
    from herald.core.clock import utcnow
    from herald.core.db import session_scope
    from herald.publishing import actions
    from herald.publishing.models import Publication
    from herald.scheduling import dispatcher
    from herald.worker import PRIORITY_NOW

    backlog: int = bench.args.backlog
    later = utcnow() + timedelta(days=1)
    post_ids = create_posts(bench, math.ceil(backlog / CHANNELS) + 1)
    now_post, post_ids = post_ids[0], post_ids[1:]
    left = backlog
    for post_id in post_ids:
        with session_scope() as session:
            actions.publish(
                session, bench.principal, post_id, bench.channel_ids[:left], due_at=later
            )
        left -= min(left, CHANNELS)
    with session_scope() as session:
        session.execute(
            update(Publication).where(Publication.due_at == later).values(due_at=utcnow())
        )
    bench.receiver.reset()
    bench.receiver.set_delay(bench.args.priority_latency)
    r.delete(TX_TIMES_KEY)
    sent_started = time.time()
    if bench.args.without_priorities:
        # The dispatcher imports the constant from herald.worker (not re-exported).
        dispatcher.PRIORITY_BACKLOG = PRIORITY_NOW  # type: ignore[attr-defined]
    dispatched = dispatcher.dispatch_once()
    if dispatched != backlog:
        raise BenchError(f"the dispatcher sent {dispatched} of {backlog} deliveries")
    sent = time.time() - sent_started
    requested = time.time()
    with session_scope() as session:
        (now_delivery,) = actions.publish(session, bench.principal, now_post, bench.channel_ids[:1])
        key = now_delivery.idempotency_key

    def now_hit_at() -> float:
        return next((at for k, _e, at in bench.receiver.hits()[0] if k == key), 0.0)

    now_hit = wait_until(
        now_hit_at,
        max(120.0, backlog / 5),
        "the 'now' delivery at the receiver",
        interval=POLL_SECONDS,
        check=bench.check_children,
    )
    ahead = sum(1 for k, _e, at in bench.receiver.hits()[0] if k != key and at < now_hit)
    wait_until(
        lambda: bench.receiver.delivered() >= backlog + 1,
        max(120.0, backlog / 5),
        "the backlog to drain",
        interval=0.5,
        check=bench.check_children,
    )
    drained = max(at for _k, _e, at in bench.receiver.hits()[0]) - requested
    r.delete(TX_TIMES_KEY)
    return {
        "backlog": backlog,
        "priorities": not bench.args.without_priorities,
        "receiver_latency_s": bench.args.priority_latency,
        "backlog_send_seconds": round(sent, 3),
        "lateness_seconds": round(now_hit - requested, 3),
        "backlog_hits_before_it": ahead,
        "backlog_drained_seconds": round(drained, 3),
    }


# --- reporting ----------------------------------------------------------------------------


def print_levels(
    bench: Bench, levels: list[Level], facts: dict[str, Any], machine: dict[str, Any]
) -> dict[str, Any]:
    console = Console(width=140)
    capacity = int(facts.get("concurrency") or 1)
    cpu = levels[0].per_second
    pool = f"{facts.get('pool', '?')} x {capacity}"
    table = Table(title=f"Slow platform — {bench.args.database}, {pool}, {CHANNELS} channels")
    columns = ["L s", "N", "seconds", "per second", "ideal /s", "vs ideal", "vs CPU-bound",
               "publishing RSS MB", "all RSS MB", "all PSS MB", "claim p50/p99 ms",
               "settle p50/p99 ms"]  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    rows: list[dict[str, Any]] = []
    for level in levels:
        ideal = min(cpu, capacity / level.latency) if level.latency else cpu
        tx = level.transactions
        claim, settle = tx.get("claim", {}), tx.get("settle", {})
        row = {
            "latency_s": level.latency,
            "n": level.n,
            "seconds": round(level.seconds, 3),
            "per_second": round(level.per_second, 2),
            "ideal_per_second": round(ideal, 2),
            "ratio_to_ideal": round(level.per_second / ideal, 3),
            "ratio_to_cpu_bound": round(level.per_second / cpu, 3),
            "peak_publishing_rss_mb": round(level.publishing_rss_mb, 1),
            "peak_rss_mb": round(level.rss_mb, 1),
            "peak_pss_mb": round(level.pss_mb, 1),
            "transactions": tx,
        }
        rows.append(row)
        table.add_row(
            f"{level.latency:g}" if level.latency else "0 (CPU-bound)",
            str(level.n),
            f"{level.seconds:.2f}",
            f"{level.per_second:,.1f}",
            f"{ideal:,.1f}",
            f"{row['ratio_to_ideal']:.2f}",
            f"{row['ratio_to_cpu_bound']:.2f}",
            f"{level.publishing_rss_mb:,.0f}",
            f"{level.rss_mb:,.0f}",
            f"{level.pss_mb:,.0f}",
            f"{claim.get('p50_ms', float('nan')):.1f} / {claim.get('p99_ms', float('nan')):.1f}",
            f"{settle.get('p50_ms', float('nan')):.1f} / {settle.get('p99_ms', float('nan')):.1f}",
        )
    console.print(table)
    at_target = next((r for r in rows if r["latency_s"] == TARGET_LATENCY), None)
    if at_target is not None:
        ratio, rss = (
            float(at_target["ratio_to_cpu_bound"]),
            float(at_target["peak_publishing_rss_mb"]),
        )
        met = ratio >= TARGET_RATIO and rss <= TARGET_RSS_MB
        print(
            f"at L = {TARGET_LATENCY:g} s: {ratio:.2f} x the CPU-bound "
            f"rate, publishing worker RSS {rss:.0f} MB — "
            f"{'meets' if met else 'is BELOW'} the target (≥ {TARGET_RATIO} x, ≤ "
            f"{TARGET_RSS_MB} MB)"
        )
    print(
        "ideal = min(CPU-bound rate (L=0, this run), in-flight capacity / L); capacity = the "
        f"publishing pool's size ({capacity}); times from the burst to the last delivery "
        "recorded published; publishing RSS: peak of the process consuming the publishing "
        "queue (with its pool children); all RSS/PSS: every process `herald worker` started"
    )
    print(
        f"machine: {machine['usable_cores']} of {machine['cores']} cores usable, "
        f"{machine['cpu']}, load average at start {machine['loadavg_at_start']}"
    )
    return {"levels": rows, "cpu_bound_per_second": round(cpu, 2), "capacity": capacity}


def print_priority(result: dict[str, Any]) -> None:
    met = result["lateness_seconds"] <= TARGET_LATENESS
    print(
        f"priority ({'on' if result['priorities'] else 'OFF: --without-priorities'}): "
        f"one 'now' delivery published after {result['backlog']:,} scheduled ones "
        f"were dispatched (sent in {result['backlog_send_seconds']:.2f} s; receiver latency "
        f"{result['receiver_latency_s']:g} s) reached the receiver "
        f"{result['lateness_seconds']:.2f} s after its request, behind "
        f"{result['backlog_hits_before_it']:,} of the backlog — "
        f"{'meets' if met else 'is BELOW'} the target (≤ {TARGET_LATENESS:g} s); the backlog "
        f"drained in {result['backlog_drained_seconds']:.1f} s"
    )


def chart(bench: Bench, levels: list[Level], facts: dict[str, Any], machine: dict[str, Any]) -> str:
    capacity = int(facts.get("concurrency") or 1)
    cpu = levels[0].per_second
    curves, bars = [], []
    for i, level in enumerate(levels):
        color = COLORS[i % len(COLORS)]
        name = f"L={level.latency:g} s" if level.latency else "L=0 (CPU-bound)"
        curves.append(Curve(f"{name}: {level.per_second:,.0f}/s", level.completions, color))
        ideal = min(cpu, capacity / level.latency) if level.latency else cpu
        bars.append(Bar(name, level.per_second, color, f"{level.per_second / ideal:.2f}x ideal"))
    return completion_chart_svg(
        Panel(
            f"Slow platform: deliveries/s against the ideal ({facts.get('pool', '?')} x "
            f"{capacity})",
            f"{CHANNELS} webhook channels, {bench.args.database}, {machine['usable_cores']} "
            f"cores, ideal = min(CPU-bound rate, capacity / L), "
            f"{time.strftime('%Y-%m-%d %H:%M')}",
            curves,
            bars,
            unit="deliveries",
            x_label="seconds from the burst",
        )
    )


def priority_chart(bench: Bench, result: dict[str, Any], facts: dict[str, Any]) -> str:
    return completion_chart_svg(
        Panel(
            f"Priority: a 'now' delivery behind {result['backlog']:,} scheduled ones",
            f"{bench.args.database}, {facts.get('pool', '?')} x {facts.get('concurrency', '?')}, "
            f"receiver latency {result['receiver_latency_s']:g} s, "
            f"{time.strftime('%Y-%m-%d %H:%M')}",
            [Curve("the 'now' delivery", [result["lateness_seconds"]], COLORS[2])],
            [
                Bar("now: lateness", result["lateness_seconds"], COLORS[2], "s"),
                Bar("backlog drained", result["backlog_drained_seconds"], COLORS[0], "s"),
            ],
            unit="deliveries",
            x_label="seconds from its request",
        )
    )


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[str]:
    machine = machine_info()
    source = source_info()
    with contextlib.ExitStack() as stack:
        workdir, _database_url, env = herald_stack(args, stack, "sp-")
        receiver = stack.enter_context(Receiver(workdir))
        bench = Bench(args, receiver)
        create_fixtures(bench)
        bench.worker = start_worker(env, workdir / "worker.log", imports=["bench._tx_timing"])
        stack.callback(bench.worker.stop)
        r = redis.Redis.from_url(args.broker_url)
        stack.callback(r.close)
        # Warm up: every pool slot runs a delivery (imports, connections) before timing.
        wait_until(lambda: worker_facts().get("concurrency"), 60, "the worker to answer",
                   interval=0.5, check=bench.check_children)  # fmt: skip
        facts = worker_facts()
        bench.publishing_pid = facts.get("pid")
        capacity = int(facts.get("concurrency") or 1)
        run_level(bench, 0.0, max(CHANNELS, 2 * capacity), r)
        document: dict[str, Any] = {
            "benchmark": NAME,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "database": args.database,
            "machine": machine,
            "source": source,
            "worker": facts,
        }
        document["problems"] = bench.problems  # filled in as the run goes
        if args.priority:
            result = run_priority(bench, r)
            print_priority(result)
            document["priority"] = result
            svg = priority_chart(bench, result, facts)
            write_outputs(args.results_dir, f"{NAME}_priority", args.database, svg, document)
        else:
            levels = [run_level(bench, 0.0, args.n, r)]
            cpu = levels[0].per_second
            for latency in args.latency_list:
                size = level_size(args, latency, cpu, capacity)
                levels.append(run_level(bench, latency, size, r))
            document |= print_levels(bench, levels, facts, machine)
            document["n"] = args.n
            document["completions"] = {
                str(level.latency): [round(t, 4) for t in level.completions] for level in levels
            }
            svg = chart(bench, levels, facts, machine)
            write_outputs(args.results_dir, NAME, args.database, svg, document)
        print(f"source: {source['describe']}")
        bench.worker.stop()
        return bench.problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
