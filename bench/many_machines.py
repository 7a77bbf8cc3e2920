"""Many machines: deliveries per second with one worker host, then two, against a slow
receiver.

    uv run python -m bench.many_machines              # 200 deliveries, receiver 0.2 s
    uv run python -m bench.many_machines --n 400 --hold 0.5 --concurrency 4

Needs root and ``ip`` (worker hosts are network namespaces) and a PostgreSQL that
``--pg-admin-url`` can create a database on. The set-up is the many-machines test's
(``tests/deploy/machines.py``): two worker hosts, each a network namespace with a veth
link to this machine and its own hostname, running ``herald worker``; ``herald beat``,
``herald api``, PostgreSQL (through a forwarder on each link), a private Redis and the
webhook receiver on this machine. The receiver answers every request after ``--hold``
seconds, as a slow platform does: the workers wait on it, not on the CPU.

One host first: only the first host's worker runs, warmed up with 10 deliveries, and N
deliveries (N/5 posts, each scheduled to 5 webhook channels through the API an hour
ahead) are made due at once, and timed from then to the receiver's last hit: the
scheduler queues them and the workers deliver them, the API's pace is left out. Then the
second host's worker starts, 20 deliveries warm both up, and N more are timed the same
way. Each run checks that every delivery ended ``published`` and reached the receiver
under its own key (exit code 2 if not). It prints deliveries/s for 1 and 2 hosts and
their ratio, and writes ``many_machines.svg/.json`` to ``--results-dir``. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._charts import Bar, Curve, Panel, completion_chart_svg
from bench._harness import (
    DEFAULT_PG_ADMIN_URL,
    REPO,
    BenchError,
    clear_settings,
    machine_info,
    new_workdir,
    postgres_database,
    run_main,
    source_info,
    wait_until,
    write_outputs,
)

NAME = "many_machines"
CHANNELS = 5
COLORS = {1: "#8c8c8c", 2: "#1971c2"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.many_machines",
        description="Deliveries/s with one worker host and with two (network namespaces), "
        "against a receiver that answers after --hold seconds.",
    )
    parser.add_argument(
        "--n", type=int, default=200, help=f"Deliveries per run (a multiple of {CHANNELS})."
    )
    parser.add_argument(
        "--hold", type=float, default=0.2, help="Seconds the receiver waits before answering."
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="Pool processes of each host's worker."
    )
    parser.add_argument("--pool", default="prefork", help="Each worker's pool.")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("HERALD_BENCH_PG_URL", DEFAULT_PG_ADMIN_URL),
        help="Where to create (and drop) the fresh PostgreSQL database.",
    )
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="Keep the temporary directory (the processes' logs, the data dir).",
    )
    parser.add_argument("--timeout", type=float, default=600, help="Hard limit for the run (s).")
    args = parser.parse_args(argv)
    if args.n < CHANNELS or args.n % CHANNELS:
        parser.error(f"--n must be a positive multiple of {CHANNELS}")
    if args.hold < 0 or args.concurrency < 1:
        parser.error("--hold must be at least 0 and --concurrency at least 1")
    return args


@dataclass
class Run:
    hosts: int
    n: int
    seconds: float  # made due -> the receiver's last hit
    completions: list[float]  # seconds from the first request, sorted
    by_host: dict[str, int]

    @property
    def per_second(self) -> float:
        return self.n / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "hosts": self.hosts,
            "n": self.n,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 2),
            "by_host": self.by_host,
            "completions": [round(t, 3) for t in self.completions],
        }


def prepare_environment(workdir: Path) -> None:
    """Herald's settings for this process (and, through it, the children's data dir):
    only these HERALD_* variables, set before Herald is imported."""
    clear_settings()
    os.environ["HERALD_DATA_DIR"] = str(workdir / "data")


def published(cluster: Any, ids: list[str], limit: float) -> None:
    from tests.deploy.machines import states

    def settled() -> bool:
        return all(s == "published" for s, *_ in states(cluster.database_url, ids).values())

    wait_until(settled, limit, "every delivery published", interval=0.2)


def warm_up(cluster: Any, token: str, channels: list[str]) -> None:
    """Two posts per worker host (10 deliveries each), untimed: every pool process has
    imported and connected what a delivery needs before the timing starts."""
    burst = cluster.publish_burst(token, channels, 2 * len(cluster.workers))
    published(cluster, burst.ids, 120.0)


def measure(cluster: Any, receiver: Any, token: str, channels: list[str], args: Any) -> Run:
    """``args.n`` deliveries scheduled through the API (untimed), then made due at once and
    timed to the last receiver hit; raises BenchError when a delivery did not end
    published, once, at the receiver."""
    from tests.deploy.machines import states

    ids = cluster.schedule_burst(token, channels, args.n // CHANNELS)
    with receiver.lock:
        before = len(receiver.received)
    started = cluster.release(ids)
    published(cluster, ids, max(120.0, 4 * args.n * args.hold))
    final = states(cluster.database_url, ids)
    keys = {key for _, _, key, _ in final.values()}
    with receiver.lock:
        hits = [
            item
            for item in receiver.received[before:]
            if item.headers.get("idempotency-key") in keys
        ]
    got = Counter(item.headers["idempotency-key"] for item in hits)
    if set(got) != keys or len(final) != args.n:
        raise BenchError(f"the receiver got {len(got)} of {args.n} deliveries")
    times = sorted(item.at - started for item in hits)
    return Run(
        hosts=len(cluster.workers),
        n=args.n,
        seconds=times[-1],
        completions=times,
        by_host=dict(Counter(item.peer for item in hits)),
    )


def report(runs: list[Run], args: argparse.Namespace, machine: dict[str, Any]) -> float:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Many machines: {args.n} deliveries, receiver answering after "
                  f"{args.hold:g} s")  # fmt: skip
    for column in ("worker hosts", "deliveries", "seconds", "deliveries/s", "vs 1"):
        table.add_column(column, justify="right")
    base = runs[0].per_second
    for run in runs:
        table.add_row(
            str(run.hosts),
            str(run.n),
            f"{run.seconds:.1f}",
            f"{run.per_second:.1f}",
            f"{run.per_second / base:.2f}x",
        )
    Console(width=120).print(table)
    ratio = runs[-1].per_second / base
    ceiling = args.concurrency / args.hold if args.hold else float("inf")
    print(f"2 hosts / 1 host = {ratio:.2f}x")
    print(
        f"ceiling per host: {args.concurrency} pool processes / {args.hold:g} s = "
        f"{ceiling:.1f} deliveries/s ({args.pool} pool)"
    )
    print(f"deliveries by sender: {', '.join(f'{r.hosts} host(s) {r.by_host}' for r in runs)}")
    print(
        f"machine: {machine['usable_cores']} cores usable, {machine['cpu']}, load at start "
        f"{machine['loadavg_at_start']}"
    )
    return ratio


def write_results(args: argparse.Namespace, runs: list[Run], ratio: float, doc: Any) -> None:
    curves = [
        Curve(f"{r.hosts} host{'s' * (r.hosts > 1)}: {r.per_second:.1f}/s", r.completions,
              COLORS[r.hosts])
        for r in runs
    ]  # fmt: skip
    bars = [
        Bar(f"{r.hosts} host{'s' * (r.hosts > 1)}", r.per_second, COLORS[r.hosts],
            f"{r.per_second / runs[0].per_second:.2f}x")
        for r in runs
    ]  # fmt: skip
    svg = completion_chart_svg(
        Panel(
            f"Many machines: 2 worker hosts {ratio:.2f}x one",
            f"N={args.n} per run, receiver answering after {args.hold:g} s, {args.pool} x "
            f"{args.concurrency} per host, network namespaces on "
            f"{doc['machine']['usable_cores']} cores, PostgreSQL, "
            f"{time.strftime('%Y-%m-%d %H:%M')}",
            curves,
            bars,
            unit="deliveries",
            x_label="seconds from the moment they fell due",
        )
    )
    write_outputs(args.results_dir, NAME, "postgresql", svg, doc)


def run(args: argparse.Namespace) -> list[str]:
    machine = machine_info()
    source = source_info()
    workdir = new_workdir("hm-")
    prepare_environment(workdir)
    # Herald reads its settings when first imported: only now.
    from tests.deploy.machines import Cluster, namespaces_unavailable

    from herald.core.migrate import upgrade

    if reason := namespaces_unavailable():
        raise BenchError(reason)
    with contextlib.ExitStack() as stack:
        if args.keep_workdir:
            stack.callback(print, f"kept {workdir}")
        else:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        database_url = stack.enter_context(postgres_database(args.pg_admin_url))
        upgrade(database_url)
        cluster = stack.enter_context(
            Cluster(database_url, workdir, hosts=2, concurrency=args.concurrency, pool=args.pool)
        )
        receiver = cluster.receiver(args.hold).start()
        stack.callback(receiver.stop)
        runs = []
        for hosts in (1, 2):
            try:
                cluster.start(hosts=hosts)
            except (RuntimeError, TimeoutError) as exc:
                raise BenchError(f"{exc}\n{cluster.logs()}") from exc
            if hosts == 1:
                token = cluster.account()
                channels = cluster.channels(token, receiver, CHANNELS)
            warm_up(cluster, token, channels)
            runs.append(measure(cluster, receiver, token, channels, args))
        ratio = report(runs, args, machine)
        print(f"source: {source['describe']}")
        problems = [] if receiver.bad_signatures == 0 else ["the receiver saw bad signatures"]
        document = {
            "benchmark": NAME,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n": args.n,
            "hold_seconds": args.hold,
            "concurrency_per_host": args.concurrency,
            "pool": args.pool,
            "machine": machine,
            "source": source,
            "ratio_two_to_one": round(ratio, 4),
            "problems": problems,
            "runs": [r.as_json() for r in runs],
        }
        write_results(args, runs, ratio, document)
        return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
