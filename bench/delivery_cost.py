"""Delivery cost: the CPU one webhook delivery costs Herald, part by part, measured serially
in one process (no worker, no competition), next to what raw Celery pays per task.

    uv run python -m bench.delivery_cost --n 500 --database sqlite

Where ``publish_throughput`` says *how fast*, this says *where the time goes*, without
a profiler's overhead: each part is a Herald function wrapped with a timer that reads the
thread's CPU clock on entry and exit and subtracts the parts nested in it, so every
millisecond is counted once. Per delivery it runs what the API and the worker would run:

- the request: ``create_publications`` in its own ``session_scope()``, the commit, the live
  event sent after it, and the real ``enqueue`` to the broker (a queue no worker reads;
  Celery's send is the one part raw Celery pays too);
- the delivery: ``attempt_delivery`` (the ``deliver`` task's body): claim, prepare, send to
  a local receiver process, record, and the live events after each commit.

Every delivery is checked to be ``published`` and seen by the receiver exactly once.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import Transaction
from sqlalchemy.orm import Session

from bench._charts import PartBar, parts_chart_svg
from bench._harness import add_stack_arguments, machine_info, run_main, source_info, write_outputs
from bench.publish_throughput import Bench, create_fixtures, set_up

NAME = "delivery_cost"
REQUEST, DELIVERY = "request", "delivery"
# Parts whose CPU is raw Celery's too: the task message's send.
CELERY_PARTS = {"broker send (Celery apply_async)"}
COLORS = {REQUEST: "#e8590c", DELIVERY: "#1971c2", "celery": "#8c8c8c"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery_cost",
        description="Herald's CPU per webhook delivery, part by part (serial, one process).",
    )
    parser.add_argument("--n", type=int, default=500, help="Deliveries timed.")
    parser.add_argument(
        "--warm", type=int, default=20, help="Deliveries run first and not counted."
    )
    add_stack_arguments(
        parser,
        broker_db=8,
        timeout=600,
        workdir_holds="receiver log, SQLite file",
        worker=False,  # it runs the task bodies itself, serially
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.warm < 0:
        parser.error("--n must be at least 1 and --warm not negative")
    return args


# --- timing -------------------------------------------------------------------------------


@dataclass
class Part:
    cpu: float = 0.0  # seconds of this thread's CPU, nested parts excluded
    wall: float = 0.0
    calls: int = 0


@dataclass
class PartTimer:
    """Exclusive CPU and wall time per (side, part): a wrapped call's time minus the time
    of the wrapped calls inside it."""

    side: str = REQUEST
    counting: bool = False
    parts: dict[tuple[str, str], Part] = field(default_factory=dict)
    totals: dict[str, Part] = field(default_factory=dict)
    _stack: list[list[float]] = field(default_factory=list)

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            self._stack.append([0.0, 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                inner_cpu, inner_wall = self._stack.pop()
                cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
                if self._stack:
                    self._stack[-1][0] += cpu
                    self._stack[-1][1] += wall
                if self.counting:
                    part = self.parts.setdefault((self.side, label), Part())
                    part.cpu += cpu - inner_cpu
                    part.wall += wall - inner_wall
                    part.calls += 1

        return timed

    @contextlib.contextmanager
    def total(self, side: str) -> Iterator[None]:
        """One whole request or delivery; its untimed remainder becomes the side's "other"."""
        self.side = side
        cpu, wall = time.thread_time(), time.perf_counter()
        yield
        if self.counting:
            part = self.totals.setdefault(side, Part())
            part.cpu += time.thread_time() - cpu
            part.wall += time.perf_counter() - wall
            part.calls += 1


@contextlib.contextmanager
def patched(timer: PartTimer) -> Iterator[None]:
    """Herald's functions, timed where the code under test looks them up."""

    from herald.events import service as events
    from herald.publishing import actions, delivery
    from herald.publishing.actions import compare_and_set

    targets: list[tuple[Any, str, str]] = [
        (actions, "publish", "create_publications"),
        (Session, "commit", "Session.commit (flush, bookkeeping)"),
        (Transaction, "commit", "COMMIT"),
        (events, "_send", "live event to Redis (after commit)"),
        (compare_and_set, "enqueue", "broker send (Celery apply_async)"),
        (actions, "claim", "claim (queued → publishing)"),
        (delivery, "read_delivery", "read the post and channel"),
        (delivery, "prepare", "build the adapter (after the claim)"),
        (delivery, "_send", "render + HTTP POST to the receiver"),
        (actions, "record_outcome", "record the outcome"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    try:
        for owner, name, label in targets:
            setattr(owner, name, timer.wrap(label, getattr(owner, name)))
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


# --- the run ------------------------------------------------------------------------------


def deliver_all(bench: Any, timer: PartTimer, post_ids: list[uuid.UUID]) -> list[Any]:
    """Each post: one request, then its delivery, one after the other."""
    from herald.core.db import session_scope
    from herald.publishing import actions, delivery

    outcomes = []
    for post_id in post_ids:
        with timer.total(REQUEST), session_scope() as session:
            (publication,) = actions.publish(session, bench.principal, post_id, [bench.channel_id])
        with timer.total(DELIVERY):
            outcomes.append(delivery.attempt_delivery(publication.id))
    return outcomes


def check(bench: Any, n: int) -> list[str]:
    from herald.core.db import session_scope
    from herald.publishing.models import Publication

    problems = []
    with session_scope() as session:
        rows = session.execute(select(Publication.state, func.count()).group_by(Publication.state))
        states = {str(state): count for state, count in rows}
    if states != {"published": n}:
        problems.append(f"delivery states {states}, expected {n} published")
    hits, bad = bench.receiver.hits()
    keys = Counter(key for key, event, _ in hits if event == "post.published")
    if len(keys) != n or any(count > 1 for count in keys.values()):
        problems.append(f"the receiver saw {len(keys)} keys in {sum(keys.values())} requests")
    if bad:
        problems.append(f"{bad} requests with a bad signature")
    return problems


def rows_of(timer: PartTimer, n: int) -> list[dict[str, Any]]:
    rows = []
    for side in (REQUEST, DELIVERY):
        whole = timer.totals[side]
        named = [(label, part) for (s, label), part in timer.parts.items() if s == side]
        for label, part in named:
            rows.append(_row(side, label, part.calls / n, part.cpu, part.wall, n))
        rest_cpu = whole.cpu - sum(part.cpu for _, part in named)
        rest_wall = whole.wall - sum(part.wall for _, part in named)
        rows.append(_row(side, "other (session, BEGIN, glue)", 1.0, rest_cpu, rest_wall, n))
    return rows


def _row(side: str, part: str, calls: float, cpu: float, wall: float, n: int) -> dict[str, Any]:
    return {
        "side": side,
        "part": part,
        "calls_per_delivery": round(calls, 2),
        "cpu_ms": round(1000 * cpu / n, 4),
        "wall_ms": round(1000 * wall / n, 4),
        "celery": part in CELERY_PARTS,
    }


def print_table(rows: list[dict[str, Any]], timer: PartTimer, n: int) -> dict[str, float]:
    total = sum(row["cpu_ms"] for row in rows)
    celery = sum(row["cpu_ms"] for row in rows if row["celery"])
    table = Table(title=f"CPU per webhook delivery, part by part (N={n}, serial, one process)")
    for column in ("side", "part", "calls", "CPU ms", "wall ms", "% of CPU"):
        table.add_column(column, justify="left" if column in ("side", "part") else "right")
    for row in rows:
        table.add_row(
            row["side"],
            row["part"] + (" *" if row["celery"] else ""),
            f"{row['calls_per_delivery']:g}",
            f"{row['cpu_ms']:.3f}",
            f"{row['wall_ms']:.3f}",
            f"{100 * row['cpu_ms'] / total:.0f}%",
        )
    Console(width=120).print(table)
    sums = {side: 1000 * timer.totals[side].cpu / n for side in (REQUEST, DELIVERY)} | {
        "total": total,
        "celery": celery,
        "herald_own": total - celery,
    }
    print(
        f"request {sums[REQUEST]:.3f} ms + delivery {sums[DELIVERY]:.3f} ms = {total:.3f} "
        f"CPU ms per delivery; Herald's own (without * Celery's send) {total - celery:.3f} ms"
    )
    return sums


def parts_chart(title: str, subtitle: str, rows: list[dict[str, Any]]) -> str:
    """One horizontal bar per part, CPU ms per delivery, coloured by side."""
    parts = [
        PartBar(
            f"{row['side']}: {row['part']}",
            row["cpu_ms"],
            COLORS["celery" if row["celery"] else row["side"]],
        )
        for row in rows
    ]
    legend = [
        ("request side", COLORS[REQUEST]),
        ("delivery (worker task body)", COLORS[DELIVERY]),
        ("Celery's own send (raw Celery pays it too)", COLORS["celery"]),
    ]
    return parts_chart_svg(title, subtitle, parts, legend)


def run(args: argparse.Namespace) -> list[str]:
    machine, source = machine_info(), source_info()
    with contextlib.ExitStack() as stack:
        workdir, database_url, _env, receiver, _capacity = set_up(args, stack, "hd-", args.n)
        bench = Bench(args, workdir, database_url, receiver)
        post_ids = create_fixtures(bench, args.warm + args.n)

        timer = PartTimer()
        with patched(timer):
            deliver_all(bench, timer, post_ids[: args.warm])
            timer.counting = True
            started = time.perf_counter()
            outcomes = deliver_all(bench, timer, post_ids[args.warm :])
            elapsed = time.perf_counter() - started
        kinds = Counter(outcome.kind if outcome else "skipped" for outcome in outcomes)
        problems = [] if kinds == {"published": args.n} else [f"outcomes {dict(kinds)}"]
        problems += check(bench, args.warm + args.n)

        rows = rows_of(timer, args.n)
        sums = print_table(rows, timer, args.n)
        print(
            f"{args.n} deliveries in {elapsed:.2f} s wall; {machine['usable_cores']} cores "
            f"usable, load {machine['loadavg_at_start'][0]}; source {source['describe']}"
        )
        document = {
            "benchmark": NAME,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n": args.n,
            "warm": args.warm,
            "database": args.database,
            "machine": machine,
            "source": source,
            "cpu_ms_per_delivery": {k: round(v, 4) for k, v in sums.items()},
            "parts": rows,
            "problems": problems,
        }
        svg = parts_chart(
            f"Herald's CPU per webhook delivery: {sums['total']:.2f} ms "
            f"({sums['herald_own']:.2f} ms its own)",
            f"N={args.n}, {args.database}, serial in one process, exclusive CPU per part, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {source['describe']}",
            rows,
        )
        write_outputs(args.results_dir, NAME, args.database, svg, document)
        return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
