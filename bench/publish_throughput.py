"""Publishing throughput: Herald's webhook deliveries per second next to raw Celery's no-op
tasks per second, through the same broker and the same worker (Herald's own pool,
concurrency and prefetch settings), in one run.

    uv run python -m bench.publish_throughput --n 1000 --database sqlite

Raw Celery: N ``bench.noop`` tasks (one RPUSH of their finish time each) sent to the
``publishing`` queue, from the first send to the last finish. Herald: N posts x one webhook
channel, each published with ``actions.publish`` in its own transaction (enqueued after
commit, as the API does), delivered by the worker to a local receiver process, from the
first request to the last receiver hit; every delivery is checked to be ``published`` and
seen by the receiver exactly once. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import os
import pstats
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from bench._charts import Bar, Curve, Panel, completion_chart_svg
from bench._harness import (
    BenchError,
    CpuMeter,
    ManagedProcess,
    ProfileSummary,
    Receiver,
    add_stack_arguments,
    child_env,
    clear_settings,
    fresh_redis,
    is_setting,
    load_profiles,
    machine_info,
    new_workdir,
    postgres_database,
    receiver_capacity,
    run_main,
    source_info,
    start_worker,
    wait_until,
    write_outputs,
)

NAME = "publish_throughput"
DELIVER_TASK = "herald.publishing.deliver"
NOOP_TASK = "bench.noop"
TARGET_RATIO = 0.5
# How often the script looks whether a mode is done. The times come from the completions'
# own stamps (RPUSH, receiver), so this only decides how much CPU the looking takes from
# the run under test: a tenth of a second for every mode.
POLL_SECONDS = 0.1
RAW, HERALD, DELIVERIES = "raw", "herald", "herald_deliveries"
MODES = (RAW, HERALD, DELIVERIES)
LABELS = {
    RAW: "raw Celery (no-op task)",
    HERALD: "Herald webhook delivery",
    DELIVERIES: "  worker side only",
}
SHORT = {RAW: "raw Celery", HERALD: "Herald", DELIVERIES: "worker side"}
COLORS = {RAW: "#8c8c8c", HERALD: "#d9480f", DELIVERIES: "#1971c2"}
BODY = (
    "## A benchmark post\n\nHerald renders this body for every channel. "
    "It is about a kilobyte long, like a short announcement.\n\n" + "Lorem ipsum dolor sit. " * 40
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.publish_throughput",
        description="Herald's deliveries/s against raw Celery's no-op tasks/s, side by side.",
    )
    parser.add_argument("--n", type=int, default=1000, help="Tasks / deliveries per mode.")
    add_stack_arguments(
        parser,
        broker_db=9,
        timeout=900,
        workdir_holds="worker and receiver logs, profiles, SQLite file",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Raw/Herald pairs, in alternating order; the ratio is the median of the rounds'.",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the task bodies in the worker and say where a delivery's time goes "
        "(slows every mode down; the rates of a profiled run are not comparable).",
    )
    parser.add_argument(
        "--worker-import",
        action="append",
        default=[],
        metavar="MODULE",
        help="Also import MODULE in the worker before it starts (to try a change out).",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    return args


@dataclass
class ModeResult:
    mode: str
    round: int
    n: int
    enqueue_seconds: float  # first send → last send returned
    seconds: float  # first send → last completion
    completions: list[float]  # seconds from the first send, sorted
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.n / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "label": LABELS[self.mode],
            "round": self.round,
            "n": self.n,
            "enqueue_seconds": round(self.enqueue_seconds, 4),
            "seconds": round(self.seconds, 4),
            "per_second": round(self.per_second, 2),
            **self.extra,
            "completions": [round(t, 4) for t in self.completions],
        }


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    database_url: str
    receiver: Receiver
    worker: ManagedProcess | None = None
    principal: Any = None
    channel_id: uuid.UUID | None = None
    problems: list[str] = field(default_factory=list)
    # With --profile: the request side (actions.publish + commit + enqueue), timed runs only.
    producer: cProfile.Profile | None = None
    producer_runs: int = 0
    producer_wall: float = 0.0

    @property
    def wait_seconds(self) -> float:
        n: int = self.args.n
        return max(60.0, n / 5)

    def meter(self) -> CpuMeter:
        assert self.worker is not None
        assert self.receiver.process is not None
        meter = CpuMeter(roles={self.worker.pid: "worker", self.receiver.process.pid: "receiver"})
        meter.start()
        return meter

    def check_children(self) -> None:
        assert self.worker is not None
        assert self.receiver.process is not None
        self.worker.check()
        self.receiver.process.check()


# --- setting up ---------------------------------------------------------------------------


def configure_environment(
    args: argparse.Namespace, workdir: Path, database_url: str
) -> dict[str, str]:
    """Herald's settings for this process and the worker: only these HERALD_* variables."""
    herald = {
        "data_dir": str(workdir / "data"),
        "database_url": database_url,
        "broker_url": args.broker_url,
        # The receiver listens on loopback, which the guarded HTTP client refuses unless
        # allowed (as on one machine).
        "allowed_private_networks": "127.0.0.0/8",
    }
    # delivery_cost shares this set-up but runs no worker, so it has no pool options.
    # The options set the pool of each worker `herald worker` starts (publishing, the rest).
    if concurrency := getattr(args, "concurrency", None):
        herald["worker_concurrency"] = herald["publishing_concurrency"] = str(concurrency)
    if pool := getattr(args, "pool", None):
        herald["worker_pool"] = herald["publishing_pool"] = pool
    env = child_env(**herald)
    clear_settings()
    os.environ.update({k: v for k, v in env.items() if is_setting(k)})
    return env


def create_fixtures(bench: Bench, posts: int) -> list[uuid.UUID]:
    """A user, a webhook channel to the receiver, and ``posts`` posts (not timed)."""
    from herald.channels.schemas import ChannelCreate
    from herald.channels.service import create_channel
    from herald.core.db import session_scope
    from herald.posts.schemas import PostCreate
    from herald.posts.service import create_post
    from herald.users.models import Role
    from herald.users.principal import Principal
    from herald.users.service import create_user

    with session_scope() as session:
        user, _ = create_user(
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="bench"
        )
        bench.principal = Principal(user.id, user.workspace_id, user.email, user.role)
        channel = create_channel(
            session,
            bench.principal,
            ChannelCreate(
                platform="webhook", name="bench", credentials=bench.receiver.credentials()
            ),
        )
        bench.channel_id = channel.id
    ids: list[uuid.UUID] = []
    for start in range(0, posts, 500):
        with session_scope() as session:
            for i in range(start, min(posts, start + 500)):
                post = create_post(
                    session,
                    bench.principal,
                    PostCreate(title=f"Bench post {i}", body=BODY, tags=["bench", "throughput"]),
                )
                ids.append(post.id)
    # This process then makes the requests, as the API's would: freeze its start-up
    # objects as the API does when it starts (herald.core.heap).
    from herald.core import heap

    heap.freeze()
    return ids


def worker_facts(queue: str = "publishing") -> dict[str, Any]:
    """What the worker consuming ``queue`` says about its pool (`herald worker` starts one
    for publishing, ``publishing@<host>``, and one for the rest), and Herald's delivery
    settings."""
    from herald.worker import PUBLISHING, app

    facts: dict[str, Any] = {
        "prefetch_multiplier": app.conf.worker_prefetch_multiplier,
        "acks_late": app.conf.task_acks_late,
        "task_events": app.conf.worker_send_task_events,
    }
    with contextlib.suppress(Exception):
        stats = app.control.inspect(timeout=3).stats() or {}
        mine = [n for n in stats if n.startswith(f"{PUBLISHING}@") == (queue == PUBLISHING)]
        for name in mine or list(stats)[:1]:
            data = stats[name]
            pool = data.get("pool", {})
            facts |= {
                "worker": name,
                "pid": data.get("pid"),
                "workers": sorted(stats),
                # "celery.concurrency.prefork:TaskPool" → "prefork"
                "pool": str(pool.get("implementation", "?")).split(":")[0].rsplit(".", 1)[-1],
                "concurrency": pool.get("max-concurrency"),
                "prefetch_count": data.get("prefetch_count"),
            }
    return facts


# --- the two modes ------------------------------------------------------------------------


def run_raw(bench: Bench, n: int, round_: int) -> ModeResult:
    from bench._noop import DONE_KEY, noop

    r = redis.Redis.from_url(bench.args.broker_url)
    r.delete(DONE_KEY)
    meter = bench.meter()
    started = time.time()
    for i in range(n):
        noop.apply_async((i,), queue="publishing")
    enqueued = time.time() - started
    wait_until(
        lambda: r.llen(DONE_KEY) >= n,
        bench.wait_seconds,
        f"{n} no-op tasks",
        interval=POLL_SECONDS,
        check=bench.check_children,
    )
    cpu = meter.stop()
    times = sorted(float(t) - started for t in r.lrange(DONE_KEY, 0, -1))
    r.delete(DONE_KEY)
    r.close()
    if len(times) != n:
        bench.problems.append(f"raw round {round_}: {len(times)} completions for {n} tasks")
    extra = {"cpu": cpu, "cpu_ms_per_task": cpu_per_task(meter, n)}
    return ModeResult(RAW, round_, n, enqueued, times[-1], times, extra)


def publish(bench: Bench, post_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
    """One transaction per post, like one API request each; sent to the broker after commit."""
    from herald.core.db import session_scope
    from herald.publishing import actions

    assert bench.channel_id is not None
    sent = []
    for post_id in post_ids:
        with session_scope() as session:
            (publication,) = actions.publish(session, bench.principal, post_id, [bench.channel_id])
            sent.append((publication.id, publication.idempotency_key))
    return sent


def settled(ids: set[uuid.UUID]) -> list[Any]:
    """The rows of these deliveries once none is active any more, else none."""

    from herald.core.db import session_scope
    from herald.publishing.models import ACTIVE, Publication

    with session_scope() as session:
        rows = [
            row
            for row in session.execute(
                select(
                    Publication.id, Publication.state, Publication.attempt, Publication.published_at
                )
            )
            if row.id in ids
        ]
    if len(rows) < len(ids) or any(row.state in ACTIVE for row in rows):
        return []
    return rows


def run_herald(bench: Bench, post_ids: list[uuid.UUID], round_: int) -> ModeResult:
    """End to end: from the first publish request to the last receiver hit."""
    n = len(post_ids)
    bench.receiver.reset()
    profiling = bench.producer is not None and round_ > 0
    meter = bench.meter()
    started = time.time()
    if profiling:
        assert bench.producer is not None
        bench.producer.enable()
    sent = publish(bench, post_ids)
    enqueued = time.time() - started
    if profiling:
        assert bench.producer is not None
        bench.producer.disable()
        bench.producer_runs += n
        bench.producer_wall += enqueued
    return finish_herald(bench, HERALD, round_, sent, started, enqueued, meter)


def run_deliveries(bench: Bench, post_ids: list[uuid.UUID], round_: int) -> ModeResult:
    """The worker side only: the same requests, made beforehand with Herald's broker send
    held back (its own ``enqueue`` is swapped for a list); then every held message goes out
    through that ``enqueue`` in one burst, like the raw tasks, and the timing starts there."""
    from herald.publishing.actions import compare_and_set

    send = compare_and_set.enqueue
    held: list[tuple[uuid.UUID, str]] = []

    def hold(publication_id: uuid.UUID, task_id: str, priority: int = 0) -> None:
        held.append((publication_id, task_id))

    compare_and_set.enqueue = hold
    try:
        sent = publish(bench, post_ids)
    finally:
        compare_and_set.enqueue = send
    if len(held) != len(sent):
        raise BenchError(f"{len(held)} messages held for {len(sent)} deliveries")
    bench.receiver.reset()
    meter = bench.meter()
    started = time.time()
    for publication_id, task_id in held:
        send(publication_id, task_id)
    enqueued = time.time() - started
    return finish_herald(bench, DELIVERIES, round_, sent, started, enqueued, meter)


def finish_herald(
    bench: Bench,
    mode: str,
    round_: int,
    sent: list[tuple[uuid.UUID, str]],
    started: float,
    enqueued: float,
    meter: CpuMeter,
) -> ModeResult:
    """Wait for the receiver to have every delivery, then check each went out once."""
    n = len(sent)
    wait_until(
        lambda: bench.receiver.delivered() >= n,
        bench.wait_seconds,
        f"{n} deliveries at the receiver",
        interval=POLL_SECONDS,
        check=bench.check_children,
    )
    cpu = meter.stop()
    # Timing is over; now check the outcome, polling gently (a SQLite reader takes the lock).
    ids = {publication_id for publication_id, _ in sent}
    rows = wait_until(
        lambda: settled(ids), 60, "the deliveries to be recorded", interval=0.2,
        check=bench.check_children,
    )  # fmt: skip
    hits, bad_signatures = bench.receiver.hits()
    first_hit: dict[str, float] = {}
    per_key: Counter[str] = Counter()
    for key, event, at in hits:
        if event == "post.published":
            per_key[key] += 1
            first_hit.setdefault(key, at)

    expected = {key for _, key in sent}
    states = Counter(str(row.state) for row in rows)
    checks = {
        "receiver_distinct_keys": len(per_key),
        "receiver_requests": sum(per_key.values()),
        "keys_match": set(per_key) == expected,
        "bad_signatures": bad_signatures,
        "states": dict(states),
        "max_attempt": max(row.attempt for row in rows),
    }
    where = f"{mode} round {round_}"
    if set(per_key) != expected:
        bench.problems.append(f"{where}: the receiver's keys differ from the deliveries' keys")
    if duplicates := {k: c for k, c in per_key.items() if c > 1}:
        bench.problems.append(f"{where}: {len(duplicates)} deliveries reached the receiver twice")
    if states != Counter({"published": n}):
        bench.problems.append(f"{where}: delivery states {dict(states)}, expected all published")
    if bad_signatures:
        bench.problems.append(f"{where}: {bad_signatures} requests with a bad signature")

    times = sorted(at - started for at in first_hit.values())
    recorded = max(row.published_at.timestamp() for row in rows if row.published_at) - started
    return ModeResult(
        mode,
        round_,
        n,
        enqueued,
        times[-1],
        times,
        {
            "recorded_seconds": round(recorded, 4),
            "cpu": cpu,
            "cpu_ms_per_task": cpu_per_task(meter, n),
            "checks": checks,
        },
    )


def cpu_per_task(meter: CpuMeter, n: int) -> dict[str, float]:
    """Milliseconds of CPU per task, by process role (see :data:`CPU_ROLES`)."""
    return {role: round(1000 * seconds / n, 3) for role, seconds in meter.split().items()}


def warm_up(bench: Bench, post_ids: list[uuid.UUID]) -> None:
    """Every pool process runs both tasks once (imports, connections, engine) before timing."""
    run_raw(bench, len(post_ids), 0)
    run_herald(bench, post_ids, 0)
    bench.receiver.reset()


# --- reporting ----------------------------------------------------------------------------


def median_rate(results: list[ModeResult], mode: str) -> float:
    return statistics.median(r.per_second for r in results if r.mode == mode)


def round_ratios(results: list[ModeResult], mode: str = HERALD) -> dict[int, float]:
    """A mode's rate over raw Celery's, per round (they ran next to each other)."""
    rates = {(r.round, r.mode): r.per_second for r in results}
    rounds = sorted({r.round for r in results})
    return {i: rates[i, mode] / rates[i, RAW] for i in rounds}


def median_round(ratios: dict[int, float]) -> int:
    ordered = sorted(ratios, key=ratios.__getitem__)
    return ordered[(len(ordered) - 1) // 2]


def print_report(
    bench: Bench,
    results: list[ModeResult],
    machine: dict[str, Any],
    facts: dict[str, Any],
    capacity: float,
) -> float:
    console = Console(width=120)
    ratios = round_ratios(results)
    ratio = statistics.median(ratios.values())
    each_mode = {mode: round_ratios(results, mode) for mode in MODES}
    table = Table(title=f"Publish throughput — {bench.args.database}, N={bench.args.n}")
    columns = ("mode", "round", "N", "enqueue s", "seconds", "per second", "vs raw", "others' CPU")
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in results:
        others = r.extra.get("cpu", {}).get("others_cores")
        table.add_row(
            LABELS[r.mode],
            str(r.round),
            str(r.n),
            f"{r.enqueue_seconds:.2f}",
            f"{r.seconds:.2f}",
            f"{r.per_second:,.1f}",
            f"{each_mode[r.mode][r.round]:.3f}" if r.mode != RAW else "1",
            "?" if others is None else f"{others:.2f} cores",
        )
    console.print(table)
    print_cpu_split(console, results)
    verdict = "meets" if ratio >= TARGET_RATIO else "is BELOW"
    each = ", ".join(f"{ratios[i]:.3f}" for i in sorted(ratios))
    print(
        f"Herald / raw = {ratio:.3f} (median of the rounds: {each}) — {verdict} the target "
        f"of ≥ {TARGET_RATIO}"
    )
    worker_side = statistics.median(each_mode[DELIVERIES].values())
    print(
        f"worker side only / raw = {worker_side:.3f}: the same deliveries created beforehand, "
        "their messages sent in one burst (Herald's request path not timed)"
    )
    print(
        f"machine: {machine['usable_cores']} of {machine['cores']} cores usable, {machine['cpu']}, "
        f"Python {machine['python']}, load average at start {machine['loadavg_at_start']}"
    )
    print(
        "others' CPU: cores busy outside this benchmark's processes while the mode ran "
        "(noise; Redis and PostgreSQL count as others)"
    )
    print(
        f"worker (one process, every mode): {facts.get('pool', '?')} x "
        f"{facts.get('concurrency', '?')}, prefetch multiplier {facts['prefetch_multiplier']} "
        f"(prefetch count {facts.get('prefetch_count', '?')}), acks_late {facts['acks_late']}, "
        f"task events {facts['task_events']}"
    )
    print(
        f"database: {bench.args.database}; broker: {bench.args.broker_url}; receiver alone: "
        f"≥ {capacity:,.0f} signed POST/s, new connection each (not the bottleneck if ≫ Herald)"
    )
    recorded = ", ".join(f"{r.extra['recorded_seconds']:.2f} s" for r in results if r.mode != RAW)
    print(
        f"Herald: the last delivery of each run was recorded `published` at {recorded} "
        "(after its receiver hit, which ends the timing)"
    )
    return ratio


# (role in CpuMeter.split(), column heading)
CPU_ROLES = [
    ("bench", "this script¹"),
    ("worker", "worker parent"),
    ("worker pool", "pool children"),
    ("receiver", "receiver"),
    ("redis", "Redis"),
    ("database", "PostgreSQL"),
]


def print_cpu_split(console: Any, results: list[ModeResult]) -> None:
    """CPU per task by process, the median of each mode's rounds: where the cores went."""

    table = Table(title="CPU ms per task, by process (median of the rounds)")
    table.add_column("mode")
    for _, heading in [*CPU_ROLES, ("", "total")]:
        table.add_column(heading, justify="right")
    for mode in MODES:
        splits = [r.extra.get("cpu_ms_per_task") or {} for r in results if r.mode == mode]
        if not splits or not any(splits):
            continue
        cells = [statistics.median(s.get(role, 0.0) for s in splits) for role, _ in CPU_ROLES]
        total = statistics.median(sum(s.values()) for s in splits)
        table.add_row(LABELS[mode], *(f"{c:.2f}" for c in cells), f"{total:.2f}")
    console.print(table)
    print(
        "¹ the requests (raw: apply_async; Herald: actions.publish + commit + send) and "
        "the polling for the end; jiffies from /proc, 10 ms each"
    )


# SQLite's own work: core.direct and the BEGIN hook call the driver's cursor directly.
SQLITE_EXECUTE = ("~", "<method 'execute' of 'sqlite3.Cursor' objects>")

WORKER_PARTS = [
    # (label, module path suffix, function); names that no longer exist show as 0
    ("attempt_delivery (the whole body)", "herald/publishing/delivery.py", "attempt_delivery"),
    ("  claim (tx 1: CAS queued→publishing)", "herald/publishing/actions/attempt.py", "claim"),
    ("  read_delivery (post, channel; tx 1)", "herald/publishing/delivery.py", "read_delivery"),
    ("  prepare (the adapter, after tx 1)", "herald/publishing/delivery.py", "prepare"),
    ("    build_adapter (credentials)", "herald/channels/service.py", "build_adapter"),
    ("  _send (render + HTTP POST)", "herald/publishing/delivery.py", "_send"),
    ("    make_client (a new httpx.Client)", "herald/adapters/http.py", "make_client"),
    ("    httpx Client.send (the request)", "httpx/_client.py", "send"),
    (
        "  record_outcome (tx 2: CAS →published)",
        "herald/publishing/actions/attempt.py",
        "record_outcome",
    ),
    (
        "_follow (job row, event, post state)",
        "herald/publishing/actions/compare_and_set.py",
        "_follow",
    ),
    ("emit (event hook)", "herald/publishing/actions/compare_and_set.py", "emit"),
    ("events: send after commit (Redis)", "herald/events/service.py", "_send"),
    ("imports at run time (_find_and_load)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("core_scope (open, commit + after-commit work)", "herald/core/tx.py", "core_scope"),
    ("BEGIN (waiting for SQLite's writer lock)", "herald/core/db.py", "_sqlite_begin_immediate"),
    ("cursor.execute (SQLite's own work)", *SQLITE_EXECUTE),
]

PRODUCER_PARTS = [
    ("publish (actions)", "herald/publishing/actions/request.py", "publish"),
    ("  emit (event hook)", "herald/publishing/actions/compare_and_set.py", "emit"),
    ("    imports at run time (_find_and_load)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("  refresh_post_state", "herald/publishing/actions/compare_and_set.py", "refresh_post_state"),
    (
        "session_scope (open, commit + after-commit send, close)",
        "herald/core/db.py",
        "session_scope",
    ),
    ("  enqueue (send_task by name)", "herald/publishing/actions/compare_and_set.py", "enqueue"),
    ("  events: send after commit (Redis)", "herald/events/service.py", "_send"),
    ("BEGIN (waiting for SQLite's writer lock)", "herald/core/db.py", "_sqlite_begin_immediate"),
    ("cursor.execute (SQLite's own work)", *SQLITE_EXECUTE),
]


def parts_table(console: Any, title: str, summary: ProfileSummary, parts: list[Any]) -> list[Any]:
    table = Table(title=title)
    for column in ("part", "calls each", "ms each", "% of total"):
        table.add_column(column, justify="left" if column == "part" else "right")
    rows = []
    for label, module, function in parts:
        seconds, calls = summary.cumulative(module, function)
        per = 1000 * seconds / summary.runs
        share = 100 * seconds / summary.wall if summary.wall else 0.0
        rows.append({"part": label.strip(), "calls": calls, "ms_each": round(per, 3),
                     "percent": round(share, 1)})  # fmt: skip
        table.add_row(label, f"{calls / summary.runs:.1f}", f"{per:.2f}", f"{share:.0f}%")
    console.print(table)
    return rows


def print_profile(profile_dir: Path, bench: Bench) -> dict[str, Any]:
    console = Console(width=120)
    deliver = load_profiles(profile_dir, DELIVER_TASK)
    noop = load_profiles(profile_dir, NOOP_TASK)
    result: dict[str, Any] = {"noop": {"runs": noop.runs, "body_ms": noop.per_run_ms}}
    if deliver.runs:
        title = (
            f"Worker: where a delivery's time goes ({deliver.runs} task bodies, cProfile; "
            f"{deliver.per_run_ms:.2f} ms per delivery vs {noop.per_run_ms:.2f} ms per no-op)"
        )
        result["deliver"] = {
            "runs": deliver.runs,
            "body_ms": deliver.per_run_ms,
            "parts": parts_table(console, title, deliver, WORKER_PARTS),
            "top": _print_top(console, deliver, "Worker: top functions by own time"),
        }
    if bench.producer is not None and bench.producer_runs:
        producer = ProfileSummary(
            "publish", bench.producer_runs, bench.producer_wall, pstats.Stats(bench.producer)
        )
        title = (
            f"Request side: one actions.publish transaction "
            f"({producer.per_run_ms:.2f} ms each, cProfile)"
        )
        result["request"] = {
            "runs": producer.runs,
            "ms_each": producer.per_run_ms,
            "parts": parts_table(console, title, producer, PRODUCER_PARTS),
            "top": _print_top(console, producer, "Request side: top functions by own time"),
        }
    return result


def _print_top(console: Any, summary: ProfileSummary, title: str) -> list[dict[str, Any]]:
    top = summary.top(12)
    table = Table(title=title)
    for column in ("function", "calls", "tottime s", "cumtime s"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for row in top:
        table.add_row(
            row["function"], str(row["calls"]), f"{row['tottime']:.3f}", f"{row['cumtime']:.3f}"
        )
    console.print(table)
    return top


def write_results(
    bench: Bench,
    results: list[ModeResult],
    ratio: float,
    document: dict[str, Any],
) -> list[Path]:
    out = bench.args.results_dir
    out.mkdir(parents=True, exist_ok=True)
    # The curves of the round whose ratio is the median one.
    shown = median_round(round_ratios(results))
    picked = {r.mode: r for r in results if r.round == shown}
    curves = [
        Curve(
            f"{LABELS[m].strip()}: {picked[m].per_second:,.0f}/s", picked[m].completions, COLORS[m]
        )
        for m in MODES
    ]
    bars = [
        Bar(
            SHORT[m],
            median_rate(results, m),
            COLORS[m],
            "no-op tasks"
            if m == RAW
            else f"{statistics.median(round_ratios(results, m).values()):.2f}x raw",
        )
        for m in MODES
    ]
    machine = document["machine"]
    facts = document["worker"]
    svg = completion_chart_svg(
        Panel(
            f"Publish throughput: Herald {ratio:.2f}x raw Celery (target ≥ {TARGET_RATIO})",
            f"N={bench.args.n}, {bench.args.database}, {facts.get('pool', '?')} x "
            f"{facts.get('concurrency', '?')}, prefetch x{facts['prefetch_multiplier']}, "
            f"{machine['usable_cores']} cores, median of {bench.args.rounds} round(s), curves "
            f"of round {shown}, {time.strftime('%Y-%m-%d %H:%M')}",
            curves,
            bars,
            unit="tasks / deliveries",
        )
    )
    return write_outputs(out, NAME, bench.args.database, svg, document)


# --- the run ------------------------------------------------------------------------------


def run_rounds(bench: Bench, post_ids: list[uuid.UUID]) -> list[ModeResult]:
    """Every mode once per round, in alternating order; each Herald run on its own posts."""
    n = bench.args.n
    results: list[ModeResult] = []
    for round_ in range(1, bench.args.rounds + 1):
        batch, post_ids = post_ids[:n], post_ids[n:]
        batch2, post_ids = post_ids[:n], post_ids[n:]
        for mode in MODES if round_ % 2 else MODES[::-1]:
            if mode == RAW:
                results.append(run_raw(bench, n, round_))
            elif mode == HERALD:
                results.append(run_herald(bench, batch, round_))
            else:
                results.append(run_deliveries(bench, batch2, round_))
    return results


def herald_stack(
    args: argparse.Namespace, stack: contextlib.ExitStack, prefix: str
) -> tuple[Path, str, dict[str, str]]:
    """A work dir, a fresh database (migrated) and broker database, and Herald's settings
    for this process and the worker, all cleaned up by ``stack``. Returns the work dir,
    the database URL and the children's environment."""
    workdir = new_workdir(prefix)
    if args.keep_workdir:
        stack.callback(print, f"kept {workdir}")
    else:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    if args.database == "postgresql":
        database_url = stack.enter_context(postgres_database(args.pg_admin_url))
    else:
        database_url = f"sqlite:///{workdir / 'data' / 'herald.db'}"
    fresh_redis(args.broker_url)
    stack.callback(fresh_redis, args.broker_url)
    env = configure_environment(args, workdir, database_url)

    from herald.core.db import reset_engine
    from herald.core.migrate import upgrade
    from herald.core.settings import get_settings

    get_settings()  # writes the data dir's secrets before the worker could race us
    stack.callback(reset_engine)
    upgrade(database_url)
    return workdir, database_url, env


def set_up(
    args: argparse.Namespace, stack: contextlib.ExitStack, prefix: str, deliveries: int
) -> tuple[Path, str, dict[str, str], Receiver, float]:
    """:func:`herald_stack` and a receiver. Returns the work dir, the database URL, the
    children's environment, the receiver and its capacity (measured now, before any worker
    competes with it)."""
    workdir, database_url, env = herald_stack(args, stack, prefix)
    receiver = stack.enter_context(Receiver(workdir))
    capacity = receiver_capacity(receiver, requests=max(200, min(deliveries, 2000)))
    return workdir, database_url, env, receiver, capacity


def run(args: argparse.Namespace) -> list[str]:
    """The whole run; returns its problems (checks that failed)."""
    machine = machine_info()
    source = source_info()
    with contextlib.ExitStack() as stack:
        workdir, database_url, env, receiver, capacity = set_up(args, stack, "hb-", args.n)
        bench = Bench(args, workdir, database_url, receiver)

        warm = 2 * (args.concurrency or os.cpu_count() or 2)
        post_ids = create_fixtures(bench, warm + 2 * args.n * args.rounds)

        importlib.import_module("bench._noop")  # registers bench.noop on Herald's app

        profile_dir = workdir / "profile" if args.profile else None
        bench.worker = start_worker(
            env,
            workdir / "worker.log",
            imports=["bench._noop", *args.worker_import],
            profile_dir=profile_dir,
            profile_tasks=[DELIVER_TASK, NOOP_TASK],
        )
        stack.callback(bench.worker.stop)
        if args.profile:
            bench.producer = cProfile.Profile()
        warm_up(bench, post_ids[:warm])
        facts = worker_facts()

        results = run_rounds(bench, post_ids[warm:])
        bench.worker.stop()

        ratio = print_report(bench, results, machine, facts, capacity)
        print(f"source: {source['describe']}")
        document: dict[str, Any] = {
            "benchmark": NAME,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n": args.n,
            "database": args.database,
            "broker_url": args.broker_url,
            "machine": machine,
            "source": source,
            "worker": facts,
            "receiver_capacity_per_second": round(capacity, 1),
            "profiled": args.profile,
            "worker_imports": args.worker_import,
            "ratio_herald_to_raw": round(ratio, 4),
            "ratio_per_round": {str(k): round(v, 4) for k, v in round_ratios(results).items()},
            "worker_side_ratio_per_round": {
                str(k): round(v, 4) for k, v in round_ratios(results, DELIVERIES).items()
            },
            "target_ratio": TARGET_RATIO,
            "problems": bench.problems,
            "runs": [r.as_json() for r in results],
        }
        if profile_dir is not None:
            document["profile"] = print_profile(profile_dir, bench)
            print("(profiled run: the rates above include cProfile's overhead)")
        write_results(bench, results, ratio, document)
        return bench.problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
