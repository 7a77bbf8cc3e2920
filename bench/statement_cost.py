"""Statement cost: the CPU of each hot-path statement run through ``herald.core.direct``
against SQLAlchemy's public API, side by side in one process on one database.

    uv run python -m bench.statement_cost                  # SQLite
    uv run python -m bench.statement_cost --database postgresql

For every statement of :mod:`herald.publishing.statements` a delivery runs, three ways:

- ``direct``: ``direct.execute(connection, statement, params)`` (the code as it is);
- ``public``: ``connection.execute(statement, params)`` then ``.all()`` for rows
  (SQLAlchemy's compiled cache, execution context, events, ``Result``);
- ``public, built``: the same with the statement built on every call, as code without
  ``functools.cache`` in ``statements`` would (so its cache key is computed each time).

Calls alternate between the three in blocks, inside one transaction rolled back at the
end; the table shows the median CPU µs per call over the blocks, and the plot
(``bench/results/statement_cost-<database>.png``) the same as bars.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from sqlalchemy import Connection, Executable

from bench._harness import add_stack_arguments, machine_info, run_main, source_info
from bench.publish_throughput import Bench, create_fixtures, set_up
from herald.core import direct
from herald.core.clock import utcnow
from herald.core.db import get_engine
from herald.publishing import statements

NAME = "statement_cost"
WAYS = ("direct", "public", "public, built")
# How often one delivery (its request and its attempt) runs each statement; insert_jobs
# stands in for the other two single-row inserts (insert_publications, start_attempt).
PER_DELIVERY = {
    "post_in_workspace": 1,
    "has_live_publications": 1,
    "insert_jobs": 3,
    "claim": 1,
    "sync_job": 2,
    "delivery_content": 1,
    "tags": 1,
    "settle": 1,
    "finish_attempt": 1,
    "post_state": 2,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.statement_cost",
        description="CPU per statement: herald.core.direct against SQLAlchemy's public API.",
    )
    parser.add_argument("--calls", type=int, default=3000, help="Calls per statement per way.")
    parser.add_argument("--block", type=int, default=100, help="Calls in a row of one way.")
    add_stack_arguments(parser, broker_db=8, timeout=900, workdir_holds="SQLite file", worker=False)
    args = parser.parse_args(argv)
    if args.calls < args.block or args.block < 1:
        parser.error("--block must be at least 1 and at most --calls")
    return args


@dataclass(frozen=True)
class Case:
    """One statement: how to build it, and the parameters of the n-th call."""

    name: str
    build: Callable[[], Executable]
    params: Callable[[int], dict[str, Any]]


def cases(workspace_id: uuid.UUID, post_id: uuid.UUID, channel_id: uuid.UUID) -> list[Case]:
    """The statements of one delivery, with parameters like a delivery's. Compare-and-set
    statements name a delivery that is not there (no row changes, the same work); rows
    inserted are new each call."""
    publication_id = uuid.uuid4()
    now = utcnow()
    s = statements
    return [
        Case("post_in_workspace", s.post_in_workspace.__wrapped__,
             lambda _: {"p_id": post_id, "p_workspace_id": workspace_id}),
        Case("has_live_publications", s.has_live_publications.__wrapped__,
             lambda _: {"p_post_id": post_id}),
        Case("insert_jobs", s.insert_jobs.__wrapped__, lambda _: {
            "id": str(uuid.uuid4()), "workspace_id": workspace_id, "owner_id": None,
            "kind": "publish", "params": {"post_id": str(post_id)}, "state": "pending",
            "created_at": now, "updated_at": now}),
        Case("claim", s.claim.__wrapped__, lambda _: {
            "p_id": publication_id, "p_updated_at": now, "p_lease_until": now}),
        Case("sync_job", lambda: s.sync_job.__wrapped__(True, False), lambda _: {
            "p_id": "none", "p_state": "started", "p_updated_at": now, "p_started_at": now}),
        Case("delivery_content", s.delivery_content.__wrapped__,
             lambda _: {"p_post_id": post_id, "p_channel_id": channel_id}),
        Case("tags", s.tags.__wrapped__, lambda _: {"p_post_id": post_id}),
        Case("settle", lambda: s.settle.__wrapped__(("external_id", "published_at")),
             lambda _: {"p_id": publication_id, "p_attempt": 1, "p_state": "published",
                        "p_updated_at": now, "p_external_id": "x", "p_published_at": now}),
        Case("finish_attempt", s.finish_attempt.__wrapped__, lambda n: {
            "p_publication_id": publication_id, "p_number": n, "p_finished_at": now,
            "p_outcome": "published", "p_error": None, "p_retry_at": None,
            "p_external_id": "x", "p_external_url": None}),
        Case("post_state", s.post_state.__wrapped__, lambda _: {"p_post_id": post_id}),
    ]  # fmt: skip


def run_way(
    way: str, connection: Connection, case: Case, kept: Executable, first: int, n: int
) -> float:
    """CPU seconds of ``n`` calls of ``case`` one ``way``."""
    started = time.thread_time()
    for i in range(first, first + n):
        params = case.params(i)
        if way == "direct":
            direct.execute(connection, kept, params)
        else:
            statement = kept if way == "public" else case.build()
            result = connection.execute(statement, params)
            if result.returns_rows:
                result.all()
    return time.thread_time() - started - _params_cost(case, first, n)


def _params_cost(case: Case, first: int, n: int) -> float:
    """What making the parameters took, so only the statement is counted."""
    started = time.thread_time()
    for i in range(first, first + n):
        case.params(i)
    return time.thread_time() - started


def measure(
    args: argparse.Namespace, bench: Bench, post_id: uuid.UUID
) -> dict[str, dict[str, float]]:
    """Median µs per call, per statement and way."""
    assert bench.channel_id is not None
    found: dict[str, dict[str, list[float]]] = {}
    with get_engine().begin() as connection:
        for case in cases(bench.principal.workspace_id, post_id, bench.channel_id):
            kept = case.build()
            samples = found.setdefault(case.name, {way: [] for way in WAYS})
            for way in WAYS:  # warm: compile, fill SQLAlchemy's cache and direct's plans
                run_way(way, connection, case, kept, 0, 5)
            for block in range(args.calls // args.block):
                order = WAYS if block % 2 == 0 else WAYS[::-1]
                for way in order:
                    first = 10 + (block * len(WAYS) + WAYS.index(way)) * args.block
                    seconds = run_way(way, connection, case, kept, first, args.block)
                    samples[way].append(1e6 * seconds / args.block)
        connection.rollback()
    return {
        name: {way: statistics.median(values) for way, values in ways.items()}
        for name, ways in found.items()
    }


def print_table(results: dict[str, dict[str, float]]) -> None:
    heading = " ".join(f"{way + ' µs':>17}" for way in WAYS)
    print(f"{'statement':<22} {heading}  public/direct")
    for name, ways in results.items():
        print(
            f"{name:<22} "
            + " ".join(f"{ways[way]:17.1f}" for way in WAYS)
            + f"  {ways['public'] / ways['direct']:13.2f}"
        )
    sums = {way: sum(PER_DELIVERY[name] * results[name][way] for name in results) for way in WAYS}
    print(
        f"{'one delivery (14)':<22} "
        + " ".join(f"{sums[way]:17.1f}" for way in WAYS)
        + f"  {sums['public'] / sums['direct']:13.2f}"
    )
    print(
        f"the public API costs {sums['public'] - sums['direct']:.0f} µs of CPU more per "
        "delivery; compare with CPU per delivery from bench.delivery_cost"
    )


def plot(results: dict[str, dict[str, float]], title: str, path: Path) -> None:
    names = list(results)
    figure, axes = plt.subplots(figsize=(10, 0.5 * len(names) + 1.5))
    height = 0.8 / len(WAYS)
    for index, way in enumerate(WAYS):
        axes.barh(
            [row + index * height for row in range(len(names))],
            [results[name][way] for name in names],
            height=height,
            label=way,
        )
    axes.set_yticks([row + height for row in range(len(names))], names)
    axes.invert_yaxis()
    axes.set_xlabel("CPU µs per call (median of blocks)")
    axes.set_title(title, fontsize=10)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> list[str]:
    machine, source = machine_info(), source_info()
    with contextlib.ExitStack() as stack:
        workdir, database_url, _env, receiver, _capacity = set_up(args, stack, "hs-", 1)
        bench = Bench(args, workdir, database_url, receiver)
        (post_id,) = create_fixtures(bench, 1)
        results = measure(args, bench, post_id)
    print_table(results)
    when = time.strftime("%Y-%m-%d %H:%M")
    print(
        f"{args.database}; {machine['usable_cores']} cores, load {machine['loadavg_at_start'][0]}; "
        f"source {source['describe']}; {when}"
    )
    plot(
        results,
        f"CPU per statement, {args.database}, {when}, {source['describe']}",
        args.results_dir / f"{NAME}-{args.database}.png",
    )
    return []


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
