"""Scheduling lateness: how late Herald's scheduler (a real ``herald beat``) publishes, as
seen by a local webhook receiver. Lateness = when the receiver got a delivery - its due time.

    uv run python -m bench.schedule_lateness --database sqlite

Modes, one after another, through one worker and one scheduler:

- **spread**: ``--spread-n`` deliveries, each due at its own instant, spread evenly over
  ``--spread-seconds`` → lateness p50, p99, max (target: p99 ≤ 1 s);
- **burst**: for each ``--burst N``, N deliveries due at the same instant → the first
  delivery's lateness (target ≤ 1 s) and the drain time, from the due instant to the last
  receiver hit (target ≤ 1.25 x N ÷ the end-to-end deliveries/s that publish_throughput's
  "Herald webhook delivery" mode measures first, in the same run, with the same worker).

The deliveries are created beforehand (``actions.publish(..., due_at=...)``, far in the
future, not timed), then moved to their due times in one transaction a few seconds ahead.
Every delivery is checked to be ``published`` and seen by the receiver exactly once; a
failed check exits 1, a missed timing target is only reported. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update

from bench._charts import Bar, Curve, Panel, completion_chart_svg
from bench._harness import (
    BenchError,
    CpuMeter,
    ManagedProcess,
    add_stack_arguments,
    machine_info,
    run_main,
    source_info,
    start_worker,
    wait_until,
    write_outputs,
)
from bench.publish_throughput import (
    HERALD,
    LABELS,
    Bench,
    ModeResult,
    create_fixtures,
    finish_herald,
    run_herald,
    warm_up,
    worker_facts,
)
from bench.publish_throughput import (
    set_up as throughput_set_up,
)

NAME = "schedule_lateness"
SPREAD, BURST = "spread", "burst"
LEAD_SECONDS = 3.0  # from setting the due times to the first due instant
FIRST_TARGET = 1.0  # s: the spread's p99, and a burst's first delivery
DRAIN_FACTOR = 1.25  # a burst drains within 1.25 x N ÷ the end-to-end rate
CREATE_BATCH = 250  # scheduled deliveries created per transaction
FAR_AWAY = timedelta(days=365)  # where deliveries wait until their mode runs
COLORS = ["#d9480f", "#1971c2", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599"]
THROUGHPUT_COLOR = "#8c8c8c"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.schedule_lateness",
        description="How late Herald's scheduler publishes: deliveries spread over time and "
        "bursts due at one instant, against a local webhook receiver.",
    )
    parser.add_argument(
        "--spread-n", type=int, default=600, help="Deliveries in the spread mode (600)."
    )
    parser.add_argument(
        "--spread-seconds",
        type=float,
        default=60.0,
        help="The spread's due times are evenly spaced over this many seconds (60).",
    )
    parser.add_argument(
        "--burst",
        dest="bursts",
        type=int,
        nargs="+",
        action="extend",
        metavar="N",
        help="A burst of N deliveries due at one instant; repeat it or give a list "
        "(default: 1000 10000).",
    )
    parser.add_argument(
        "--throughput-n",
        type=int,
        default=1000,
        help="Posts for the end-to-end rate (publish_throughput's Herald mode) that sets "
        "the drain targets (1000).",
    )
    parser.add_argument(
        "--layout",
        choices=("split", "compact"),
        default="split",
        help="split: `herald worker` and a `herald beat` process (a deployment); compact: "
        "`herald worker --compact`, the scheduler on a thread of the worker (`herald up`'s "
        "default) (split).",
    )
    add_stack_arguments(
        parser,
        broker_db=10,
        timeout=1200,
        workdir_holds="worker, scheduler and receiver logs, SQLite file",
    )
    args = parser.parse_args(argv)
    if args.bursts is None:
        args.bursts = [1000, 10000]
    if args.spread_n < 1 or args.throughput_n < 1 or any(n < 1 for n in args.bursts):
        parser.error("--spread-n, --throughput-n and every --burst must be at least 1")
    if args.spread_seconds <= 0:
        parser.error("--spread-seconds must be positive")
    # publish_throughput's helpers size their waits by args.n, its number of deliveries.
    args.n = args.throughput_n
    return args


@dataclass
class LatenessBench(Bench):
    """publish_throughput's Bench, plus the scheduler process and a per-mode wait."""

    beat: ManagedProcess | None = None
    wait: float | None = None  # how long a scheduling mode may take; None: Bench's own

    @property
    def wait_seconds(self) -> float:
        return self.wait if self.wait is not None else super().wait_seconds

    def meter(self) -> CpuMeter:
        assert self.worker is not None
        assert self.receiver.process is not None
        groups = {self.worker.pid, self.receiver.process.pid}
        if self.beat is not None:
            groups.add(self.beat.pid)
        meter = CpuMeter(groups=groups)
        meter.start()
        return meter

    def check_children(self) -> None:
        super().check_children()
        if self.beat is not None:
            self.beat.check()


@dataclass
class Planned:
    """One mode's deliveries, created in state ``scheduled`` and parked at ``marker``."""

    mode: str  # SPREAD or BURST
    n: int
    marker: datetime
    sent: list[tuple[uuid.UUID, str]]  # (publication id, idempotency key), in due order

    @property
    def label(self) -> str:
        return f"{self.mode} {self.n:,}"


# --- setting up ---------------------------------------------------------------------------


def schedule_far_away(
    bench: LatenessBench, mode: str, post_ids: list[uuid.UUID], marker: datetime
) -> Planned:
    """One scheduled delivery per post, all due at ``marker`` (far in the future), a few
    hundred per transaction. Not timed."""
    from herald.core.db import session_scope
    from herald.publishing import actions

    assert bench.channel_id is not None
    sent: list[tuple[uuid.UUID, str]] = []
    for start in range(0, len(post_ids), CREATE_BATCH):
        with session_scope() as session:
            for post_id in post_ids[start : start + CREATE_BATCH]:
                (publication,) = actions.publish(
                    session, bench.principal, post_id, [bench.channel_id], due_at=marker
                )
                sent.append((publication.id, publication.idempotency_key))
    return Planned(mode, len(post_ids), marker, sent)


def beat_process(bench: LatenessBench, env: dict[str, str]) -> ManagedProcess:
    """``herald beat`` (Herald's CLI, the worker's settings), not started yet."""
    argv = [sys.executable, "-m", "herald", "beat"]
    bench.beat = ManagedProcess("beat", argv, bench.workdir / "beat.log", env=env)
    return bench.beat


def wait_for_first_tick(bench: LatenessBench, since: datetime) -> None:
    """Until the scheduler has written its heartbeat (it dispatches on the same tick)."""
    from herald.core.db import read_scope
    from herald.scheduling.heartbeat import last_beat

    def ticked() -> bool:
        with read_scope() as session:
            beat_at = last_beat(session)
        return beat_at is not None and beat_at >= since

    wait_until(
        ticked, 60, "the scheduler's first heartbeat", interval=0.1, check=bench.check_children
    )


def set_due_times(planned: Planned, first: datetime, step: float) -> float:
    """Move the mode's deliveries from their marker to ``first + i x step`` in one
    transaction (one UPDATE when ``step`` is 0: a burst). Returns the commit's time."""

    from herald.core.db import session_scope
    from herald.publishing.models import Publication, PublicationState

    with session_scope() as session:
        if step == 0:
            result = session.execute(
                update(Publication)
                .where(
                    Publication.state == PublicationState.SCHEDULED,
                    Publication.due_at == planned.marker,
                )
                .values(due_at=first)
                .execution_options(synchronize_session=False)
            )
            changed = int(getattr(result, "rowcount", 0))
        else:
            rows = [
                {"id": publication_id, "due_at": first + timedelta(seconds=i * step)}
                for i, (publication_id, _key) in enumerate(planned.sent)
            ]
            session.execute(update(Publication), rows)  # by primary key, executemany
            changed = len(rows)
    committed = time.time()
    if changed != planned.n:
        raise BenchError(f"{planned.label}: {changed} due times set for {planned.n} deliveries")
    return committed


def timeline(ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple[float, float | None, float | None]]:
    """Per delivery: (due, queued by the scheduler, claimed by a worker), as epoch seconds."""

    from herald.core.db import read_scope
    from herald.publishing.models import Publication, PublicationAttempt

    query = select(
        Publication.id,
        Publication.due_at,
        Publication.enqueued_at,
        PublicationAttempt.started_at,
    ).outerjoin(
        PublicationAttempt,
        (PublicationAttempt.publication_id == Publication.id) & (PublicationAttempt.number == 1),
    )
    out: dict[uuid.UUID, tuple[float, float | None, float | None]] = {}
    with read_scope() as session:
        for row in session.execute(query):
            if row.id in ids and row.due_at is not None:
                out[row.id] = (
                    row.due_at.timestamp(),
                    row.enqueued_at.timestamp() if row.enqueued_at else None,
                    row.started_at.timestamp() if row.started_at else None,
                )
    return out


# --- numbers ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": round(min(values), 4),
        "p50": round(percentile(values, 50), 4),
        "p90": round(percentile(values, 90), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4),
        "mean": round(statistics.fmean(values), 4),
    }


# --- the modes ----------------------------------------------------------------------------


def analyse(
    planned: Planned, first_epoch: float, step: float, received: dict[str, float]
) -> tuple[list[float], dict[str, Any]]:
    """Each delivery's lateness (in due order), and where it went: per-part summaries,
    reconciler re-sends and every delivery's times (for the JSON)."""
    from herald.core.settings import get_settings

    steps = timeline({publication_id for publication_id, _ in planned.sent})
    lateness: list[float] = []
    # enqueued_at is stamped when the dispatcher's transaction starts; its commit and the
    # broker sends that follow it fall in the second part.
    scheduler: list[float] = []  # due → picked by the dispatcher
    queue: list[float] = []  # picked → claimed: commit, broker send, a free worker
    send: list[float] = []  # claimed → received: the attempt, up to the receiver
    # A delivery still queued this long after its pick is sent again by the reconciler,
    # which stamps enqueued_at anew: the dispatcher's pick is then lost, so such deliveries
    # are counted apart and left out of the first two parts. (The dispatcher itself picks
    # every delivery of these modes within seconds of its due time.)
    grace = get_settings().queued_grace_seconds
    resent = 0
    deliveries: list[list[float | None]] = []  # offsets from the first due instant
    for i, (publication_id, key) in enumerate(planned.sent):
        due = first_epoch + i * step
        due_db, picked, claimed = steps.get(publication_id, (due, None, None))
        got = received.get(key)
        if got is not None:
            lateness.append(got - due)
        queued = picked
        if picked is not None and picked - due_db >= grace:
            resent += 1
            queued = None
        if queued is not None:
            scheduler.append(queued - due_db)
        if queued is not None and claimed is not None:
            queue.append(claimed - queued)
        if claimed is not None and got is not None:
            send.append(got - claimed)
        deliveries.append(
            [None if x is None else round(x - first_epoch, 4) for x in (due, picked, claimed, got)]
        )
    return lateness, {
        "phases": {
            "due_to_picked": summary(scheduler),
            "picked_to_claimed": summary(queue),
            "claimed_to_received": summary(send),
        },
        "resent_by_reconciler": resent,  # still queued queued_grace_seconds after the pick
        "queued_grace_seconds": grace,
        "deliveries_columns": ["due", "picked", "claimed", "received"],
        "deliveries": deliveries,
    }


def run_mode(bench: LatenessBench, planned: Planned, rate: float, step: float) -> dict[str, Any]:
    """Set the due times, wait for every delivery at the receiver, check and measure."""
    from herald.core.clock import utcnow

    n = planned.n
    bench.receiver.reset()
    span = step * (n - 1)
    bench.wait = LEAD_SECONDS + span + max(60.0, 5 * n / rate)
    first = utcnow() + timedelta(seconds=LEAD_SECONDS)
    first_epoch = first.timestamp()
    committed = set_due_times(planned, first, step)
    meter = bench.meter()
    try:
        result = finish_herald(bench, planned.label, 1, planned.sent, first_epoch, 0.0, meter)
    finally:
        bench.wait = None

    hits, _bad = bench.receiver.hits()
    received: dict[str, float] = {}
    for key, event, at in hits:
        if event == "post.published":
            received.setdefault(key, at)
    lateness, where = analyse(planned, first_epoch, step, received)

    stats = summary(lateness)
    entry: dict[str, Any] = {
        "mode": planned.mode,
        "label": planned.label,
        "n": n,
        "first_due_epoch": round(first_epoch, 4),
        "due_times_set_before_first_due_seconds": round(first_epoch - committed, 4),
        "lateness": stats,
        "cpu": result.extra["cpu"],
        "checks": result.extra["checks"],
        "recorded_seconds": result.extra["recorded_seconds"],
        **where,
    }
    if planned.mode == SPREAD:
        entry |= {
            "spread_seconds": round(span + step, 4),
            "targets": {"p99_seconds": FIRST_TARGET},
            "passed": {"p99": bool(stats) and stats["p99"] <= FIRST_TARGET},
        }
    else:
        drain_target = DRAIN_FACTOR * n / rate
        first_lateness = min(lateness) if lateness else math.inf
        drain = max(lateness) if lateness else math.inf
        entry |= {
            "first_lateness_seconds": round(first_lateness, 4),
            "drain_seconds": round(drain, 4),
            "drain_per_second": round(n / drain, 2) if drain > 0 else None,
            "targets": {"first_seconds": FIRST_TARGET, "drain_seconds": round(drain_target, 4)},
            "passed": {"first": first_lateness <= FIRST_TARGET, "drain": drain <= drain_target},
            "completions": [round(t, 4) for t in sorted(lateness)],
        }
    return entry


def measure_throughput(bench: LatenessBench, post_ids: list[uuid.UUID]) -> ModeResult:
    """publish_throughput's end-to-end Herald mode, once, with this run's worker."""
    return run_herald(bench, post_ids, 1)


# --- reporting ----------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(
    bench: LatenessBench,
    throughput: ModeResult,
    modes: list[dict[str, Any]],
    machine: dict[str, Any],
    facts: dict[str, Any],
    capacity: float,
) -> None:
    console = Console(width=120)
    rate = throughput.per_second
    bursts = [m for m in modes if m["mode"] == BURST]
    targets = ", ".join(f"{m['n']:,} in ≤ {m['targets']['drain_seconds']:.2f} s" for m in bursts)
    print(
        f"{LABELS[HERALD]} (publish_throughput's end-to-end mode, N={throughput.n:,}, same "
        f"worker): {rate:,.1f} deliveries/s in {throughput.seconds:.2f} s → drain targets "
        f"(x{DRAIN_FACTOR}): {targets or 'no burst'}"
    )
    table = Table(title=f"Schedule lateness — {bench.args.database} (seconds late at the receiver)")
    columns = (
        "mode",
        "N",
        "p50",
        "p99",
        "max / first",
        "drain s",
        "target",
        "result",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("mode", "target") else "right")
    for m in modes:
        stats = m["lateness"]
        missed = [name for name, ok in m["passed"].items() if not ok]
        result = "[green]pass[/]" if not missed else f"[red]MISSED: {', '.join(missed)}[/]"
        if m["mode"] == SPREAD:
            size = f"{m['n']:,} in {m['spread_seconds']:g} s"
            extreme, drain = f"max {_s(stats.get('max'))}", "-"
            target = f"p99 ≤ {m['targets']['p99_seconds']:g} s"
        else:
            size = f"{m['n']:,}"
            extreme, drain = f"first {_s(m['first_lateness_seconds'])}", _s(m["drain_seconds"])
            target = (
                f"first ≤ {m['targets']['first_seconds']:g} s, "
                f"drain ≤ {m['targets']['drain_seconds']:.1f} s"
            )
        table.add_row(
            m["mode"],
            size,
            _s(stats.get("p50")),
            _s(stats.get("p99")),
            extreme,
            drain,
            target,
            result,
        )
    console.print(table)

    phases = Table(title="Where the lateness goes (seconds, p50 / p99 / max)")
    for column in (
        "mode",
        "due → picked (scheduler)",
        "picked → claimed (commit, broker, worker)",
        "claimed → received (attempt)",
    ):
        phases.add_column(column, justify="left" if column == "mode" else "right")
    for m in modes:
        cells = [
            " / ".join(_s(part.get(k)) for k in ("p50", "p99", "max")) if part else "-"
            for part in m["phases"].values()
        ]
        phases.add_row(m["label"], *cells)
    console.print(phases)
    for m in modes:
        if m["due_times_set_before_first_due_seconds"] < 0:
            print(
                f"WARNING: {m['label']}: the due times were committed "
                f"{-m['due_times_set_before_first_due_seconds']:.2f} s after the first one; "
                "its lateness includes that setup time"
            )
        if m["resent_by_reconciler"]:
            print(
                f"{m['label']}: {m['resent_by_reconciler']:,} deliveries were still queued "
                f"{m['queued_grace_seconds']} s after being picked and were sent again by the "
                "reconciler (HERALD_QUEUED_GRACE_SECONDS); they are left out of the first two "
                "parts"
            )

    print(
        f"machine: {machine['usable_cores']} of {machine['cores']} cores usable, {machine['cpu']}, "
        f"Python {machine['python']}, load average at start {machine['loadavg_at_start']}"
    )
    print(
        f"worker (one process, every mode): {facts.get('pool', '?')} x "
        f"{facts.get('concurrency', '?')}, prefetch multiplier {facts['prefetch_multiplier']}, "
        f"acks_late {facts['acks_late']}; scheduler: "
        + (
            "a thread of the worker (`herald worker --compact`)"
            if bench.args.layout == "compact"
            else "one `herald beat`"
        )
    )
    print(
        f"database: {bench.args.database}; broker: {bench.args.broker_url}; receiver alone: "
        f"≥ {capacity:,.0f} signed POST/s, new connection each"
    )
    others = [
        f"{label} {'?' if cpu.get('others_cores') is None else format(cpu['others_cores'], '.2f')}"
        for label, cpu in [
            ("end-to-end rate", throughput.extra.get("cpu", {})),
            *((m["label"], m["cpu"]) for m in modes),
        ]
    ]
    print(
        "others' CPU (cores busy outside this benchmark's processes while each part ran; "
        f"noise, Redis and PostgreSQL count as others): {', '.join(others)}"
    )


def plot(throughput: ModeResult, modes: list[dict[str, Any]], machine: str) -> str:
    """The spread's lateness and the bursts' completion curves, one panel each."""
    panels = []
    stamp = time.strftime("%Y-%m-%d %H:%M")
    spreads = [m for m in modes if m["mode"] == SPREAD]
    bursts = [m for m in modes if m["mode"] == BURST]
    for m in spreads:
        stats = m["lateness"]
        lateness = [row[3] - row[0] for row in m["deliveries"] if row[3] is not None]
        verdict = "meets" if m["passed"]["p99"] else "MISSES"
        panel = Panel(
            f"Spread: p99 {stats['p99']:.3f} s late, {verdict} the target (≤ {FIRST_TARGET:g} s)",
            f"{m['n']:,} deliveries due one by one over {m['spread_seconds']:g} s; curve: "
            f"deliveries received within x s of their due time; {machine}, {stamp}",
            [Curve(f"spread {m['n']:,}", [max(0.0, t) for t in lateness], COLORS[0])],
            [
                Bar("p50", stats["p50"], COLORS[0]),
                Bar("p99", stats["p99"], COLORS[0], f"target ≤ {FIRST_TARGET:g}"),
                Bar("max", stats["max"], COLORS[0]),
            ],
            unit="deliveries",
            x_label="seconds after the due time (lateness)",
            bars_label="seconds late",
        )
        panels.append(panel)
    if bursts:
        rate = throughput.per_second
        missed = [m["label"] for m in bursts if not all(m["passed"].values())]
        panel = Panel(
            "Bursts: " + ("every target met" if not missed else f"MISSED by {', '.join(missed)}"),
            f"N deliveries due at one instant; drain target: {DRAIN_FACTOR} x N ÷ "
            f"{rate:,.1f}/s (end to end, same run) = at least {rate / DRAIN_FACTOR:,.1f}/s; "
            f"{machine}, {stamp}",
            [
                Curve(
                    f"{m['label']}: first {m['first_lateness_seconds']:.2f} s, "
                    f"drain {m['drain_seconds']:.2f} s",
                    [max(0.0, t) for t in m["completions"]],
                    COLORS[(i + 1) % len(COLORS)],
                )
                for i, m in enumerate(bursts)
            ],
            [Bar("end to end", rate, THROUGHPUT_COLOR, f"N={throughput.n:,}")]
            + [
                Bar(
                    f"{m['n']:,}",
                    m["drain_per_second"] or 0.0,
                    COLORS[(i + 1) % len(COLORS)],
                    "drain ok" if m["passed"]["drain"] else "drain MISSED",
                )
                for i, m in enumerate(bursts)
            ],
            unit="deliveries",
            x_label="seconds after the due instant",
        )
        panels.append(panel)
    return completion_chart_svg(*panels)


# --- the run ------------------------------------------------------------------------------


def set_up(
    args: argparse.Namespace, stack: contextlib.ExitStack
) -> tuple[LatenessBench, dict[str, str], float]:
    """A fresh database, broker database, data dir and receiver, all cleaned up by ``stack``.
    Returns the bench, the children's environment and the receiver's capacity."""
    workdir, database_url, env, receiver, capacity = throughput_set_up(
        args, stack, "hs-", args.throughput_n
    )
    return LatenessBench(args, workdir, database_url, receiver), env, capacity


def measure(
    bench: LatenessBench, env: dict[str, str], stack: contextlib.ExitStack
) -> tuple[ModeResult, list[dict[str, Any]], dict[str, Any]]:
    """Fixtures, the worker, the end-to-end rate, then the scheduler and every mode.
    Returns the rate's run, the modes' results and the worker's facts."""
    from herald.core.clock import utcnow

    args = bench.args
    warm = 2 * (args.concurrency or os.cpu_count() or 2)
    sizes = [(SPREAD, args.spread_n)] + [(BURST, n) for n in args.bursts]
    scheduled = sum(n for _, n in sizes)
    posts = warm + args.throughput_n + scheduled
    print(f"setting up: {posts:,} posts on {args.database} (not timed)", flush=True)
    post_ids = create_fixtures(bench, posts)
    warm_ids, post_ids = post_ids[:warm], post_ids[warm:]
    throughput_ids, post_ids = post_ids[: args.throughput_n], post_ids[args.throughput_n :]

    importlib.import_module("bench._noop")  # registers bench.noop on Herald's app
    compact = args.layout == "compact"
    started = utcnow()
    bench.worker = start_worker(
        env,
        bench.workdir / "worker.log",
        imports=["bench._noop"],
        args=["--compact"] if compact else [],
    )
    stack.callback(bench.worker.stop)
    warm_up(bench, warm_ids)
    facts = worker_facts()
    print(f"measuring the end-to-end rate: {args.throughput_n:,} publishes", flush=True)
    throughput = measure_throughput(bench, throughput_ids)
    print(f"  {throughput.per_second:,.1f} deliveries/s", flush=True)

    print(f"scheduling {scheduled:,} deliveries far ahead (not timed)", flush=True)
    created = time.monotonic()
    plans = []
    base = utcnow().replace(microsecond=0) + FAR_AWAY
    for index, (mode, n) in enumerate(sizes):
        batch, post_ids = post_ids[:n], post_ids[n:]
        marker = base + timedelta(hours=index)  # each mode waits at its own instant
        plans.append(schedule_far_away(bench, mode, batch, marker))
    print(f"  done in {time.monotonic() - created:.1f} s", flush=True)

    if not compact:  # else the worker's own scheduler started with it
        beat = beat_process(bench, env)
        stack.callback(beat.stop)
        started = utcnow()
        beat.start()
    wait_for_first_tick(bench, started)
    modes = []
    for planned in plans:
        step = args.spread_seconds / planned.n if planned.mode == SPREAD else 0.0
        print(f"running {planned.label}", flush=True)
        modes.append(run_mode(bench, planned, throughput.per_second, step))
    if bench.beat is not None:
        bench.beat.stop()
    bench.worker.stop()
    return throughput, modes, facts


def run(args: argparse.Namespace) -> list[str]:
    """The whole run; returns its problems (checks that failed)."""
    machine = machine_info()
    source = source_info()
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        bench, env, capacity = set_up(args, stack)
        throughput, modes, facts = measure(bench, env, stack)

        print_report(bench, throughput, modes, machine, facts, capacity)
        print(f"source: {source['describe']}")
        met = all(all(m["passed"].values()) for m in modes)
        document: dict[str, Any] = {
            "benchmark": NAME,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "database": args.database,
            "broker_url": args.broker_url,
            "options": {
                "layout": args.layout,
                "spread_n": args.spread_n,
                "spread_seconds": args.spread_seconds,
                "bursts": args.bursts,
                "throughput_n": args.throughput_n,
                "lead_seconds": LEAD_SECONDS,
            },
            "machine": machine,
            "source": source,
            "worker": facts,
            "receiver_capacity_per_second": round(capacity, 1),
            "throughput": throughput.as_json(),
            "throughput_per_second": round(throughput.per_second, 2),
            "drain_factor": DRAIN_FACTOR,
            "modes": modes,
            "targets_met": met,
            "problems": bench.problems,
            "run_seconds": round(time.monotonic() - began, 1),
        }
        cores = f"{machine['usable_cores']} cores, {args.database}"
        svg = plot(throughput, modes, cores)
        write_outputs(args.results_dir, NAME, args.database, svg, document)
        print(f"timing targets: {'all met' if met else 'some MISSED (see the table)'}")
        print(f"the run took {time.monotonic() - began:.0f} s")
        return bench.problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
