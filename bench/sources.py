"""Source monitoring: what one round of checks costs, with 1,000 feeds served locally.

    uv run python -m bench.sources --n 1000 --database sqlite

N feed sources (RSS 2.0, 20 items each) are served by one local feed server
(``tests.fakes.feed_server.FeedServer``: ETag, Last-Modified, 304s, counted per path) in
this process. A round makes every source due at once (one UPDATE), then runs the real
path: the monitor's claim (``monitor.monitor_pass`` in its own transaction, at the
scheduler's cadence, its checks sent after commit) and a real ``herald worker`` consuming
the ``sources`` queue, until every source's ``checks`` counter has moved by one.

Rounds, in one run, through one worker:

- **baseline**: every source's first check (a full body each; its items are the baseline);
- then ``--rounds`` times, in alternating order: **half changed** (one new item in every
  other feed: the headline), **all unchanged** (every check a 304) and **all changed**
  (one new item in every feed), so a changed and an unchanged check's costs can be set
  side by side as ratios.

Per round: wall time, the requests the server saw, conditional requests, 304s, body bytes,
the worker's CPU (psutil: the worker and its pool), CPU per source, items stored; after
the last round, how evenly the next checks are spread over the next interval. Every round
is checked (requests, 304s, counters and items as expected); a failed check exits 1.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update
from tests.fakes.feed_server import FeedServer

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
from bench.publish_throughput import herald_stack, worker_facts

NAME = "sources"
ITEMS = 20  # items per feed, as many blogs' feeds keep
POLL_SECONDS = 0.1  # how often the script looks whether every check is recorded
CREATE_BATCH = 250  # sources created per transaction (not timed)
BASELINE, HALF, UNCHANGED, CHANGED = "baseline", "half changed", "all unchanged", "all changed"
MODES = (HALF, UNCHANGED, CHANGED)
# The bars' labels: which feeds changed (the baseline is every source's first check).
SHORT = {BASELINE: "first", HALF: "half", UNCHANGED: "none", CHANGED: "all"}
COLORS = {BASELINE: "#8c8c8c", HALF: "#d9480f", UNCHANGED: "#1971c2", CHANGED: "#2f9e44"}
SPREAD_COLOR = "#ae3ec9"
# Item n of every feed is published at EPOCH + n hours: newer items, later dates.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PARAGRAPH = (
    "Herald's benchmark feeds carry a summary of a few hundred bytes per item, as a blog's "
    "feed does: a paragraph with a link and some <em>inline markup</em> that the reader "
    "sanitises before it stores the item. "
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sources",
        description="One monitoring round of N feed sources served locally: wall time, "
        "requests, bytes and the worker's CPU per source, half of the feeds changed, none "
        "and all.",
    )
    parser.add_argument("--n", type=int, default=1000, help="Feed sources (1000).")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Times the three measured rounds (half changed, all unchanged, all changed) "
        "run, in alternating order; the summary is their median (3).",
    )
    parser.add_argument(
        "--pass-every",
        type=float,
        help="Seconds between the monitor's passes while a round runs (default: the "
        "scheduler's cadence, herald.worker.MONITOR_EVERY_SECONDS); each pass claims at "
        "most monitor.CLAIM_BATCH checks. 0: a pass at every poll.",
    )
    parser.add_argument(
        "--gzip", action="store_true", help="The feed server gzips its answers (as many do)."
    )
    add_stack_arguments(parser, broker_db=11, timeout=1200, workdir_holds="worker log, SQLite file")
    args = parser.parse_args(argv)
    if args.n < 2 or args.rounds < 1:
        parser.error("--n must be at least 2 and --rounds at least 1")
    if args.pass_every is not None and args.pass_every < 0:
        parser.error("--pass-every must not be negative")
    return args


# --- the feeds ------------------------------------------------------------------------------


def item_xml(feed: int, number: int) -> str:
    link = f"https://feed{feed}.example.org/posts/{number}"
    summary = html.escape(
        f'<p>{PARAGRAPH * 2}Read <a href="{link}">post {number}</a>.</p>', quote=False
    )
    published = format_datetime(EPOCH + timedelta(hours=number), usegmt=True)
    return (
        f"<item><title>Feed {feed}, post {number}: a title of a usual length</title>"
        f'<link>{link}</link><guid isPermaLink="false">feed{feed}-post{number}</guid>'
        f"<pubDate>{published}</pubDate><author>writer@feed{feed}.example.org (A Writer)"
        f"</author><category>benchmarks</category><description>{summary}</description></item>"
    )


def feed_document(feed: int, newest: int) -> bytes:
    """Feed ``feed``'s RSS 2.0 document with its ``ITEMS`` newest items, ``newest`` first."""
    items = "".join(item_xml(feed, number) for number in range(newest, newest - ITEMS, -1))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Benchmark feed {feed}</title><link>https://feed{feed}.example.org/</link>"
        f"<description>Feed {feed} of Herald's source benchmark</description>"
        f"<language>en</language>{items}</channel></rss>"
    ).encode()


def feed_path(feed: int) -> str:
    return f"/feeds/{feed}.xml"


@dataclass
class Feeds:
    """The feeds the server serves, and each one's newest item."""

    server: FeedServer
    n: int
    gzip: bool
    newest: list[int] = field(default_factory=list)

    def serve(self) -> None:
        self.newest = [ITEMS] * self.n
        for feed in range(self.n):
            if self.gzip:
                self.server.behave(feed_path(feed), gzip=True)
            self.server.put(feed_path(feed), feed_document(feed, ITEMS))

    def add_item(self, feeds: list[int]) -> None:
        """One new item on top of each of ``feeds`` (the oldest drops off the end)."""
        for feed in feeds:
            self.newest[feed] += 1
            self.server.put(feed_path(feed), feed_document(feed, self.newest[feed]))

    def size(self) -> int:
        return len(feed_document(0, ITEMS))


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    feeds: Feeds
    worker: ManagedProcess | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def wait_seconds(self) -> float:
        n: int = self.args.n
        return max(120.0, n / 2)

    def check_children(self) -> None:
        assert self.worker is not None
        self.worker.check()

    def worker_cpu(self) -> dict[str, float]:
        """CPU seconds so far of the worker's parent and of its pool (psutil)."""
        assert self.worker is not None
        parent = psutil.Process(self.worker.pid)
        used = {"worker": sum(parent.cpu_times()[:2]), "worker pool": 0.0}
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                used["worker pool"] += sum(child.cpu_times()[:2])
        return used


def create_sources(bench: Bench) -> None:
    """A user, and one feed source per feed (not timed)."""
    from herald.core.db import session_scope
    from herald.sources.models import SourceKind
    from herald.sources.schemas import SourceCreate
    from herald.sources.service import create_source
    from herald.users.models import Role
    from herald.users.principal import Principal
    from herald.users.service import create_user

    with session_scope() as session:
        user, _ = create_user(
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="bench"
        )
        principal = Principal(user.id, user.workspace_id, user.email, user.role)
    n = bench.args.n
    for start in range(0, n, CREATE_BATCH):
        with session_scope() as session:
            for feed in range(start, min(n, start + CREATE_BATCH)):
                body = SourceCreate(
                    kind=SourceKind.FEED,
                    name=f"feed {feed}",
                    url=bench.feeds.server.url(feed_path(feed)),
                )
                create_source(session, principal, body)


# --- a round --------------------------------------------------------------------------------


@dataclass
class Totals:
    """The sources table's running totals, summed over every source."""

    checks: int
    not_modified: int
    bytes_fetched: int
    failures: int
    items: int

    @staticmethod
    def read() -> Totals:
        from herald.core.db import read_scope
        from herald.sources.models import Source, SourceItem

        with read_scope() as session:
            checks, not_modified, fetched, failures = session.execute(
                select(
                    func.coalesce(func.sum(Source.checks), 0),
                    func.coalesce(func.sum(Source.not_modified), 0),
                    func.coalesce(func.sum(Source.bytes_fetched), 0),
                    func.coalesce(func.sum(Source.failures), 0),
                )
            ).one()
            items = session.scalar(select(func.count()).select_from(SourceItem)) or 0
        return Totals(int(checks), int(not_modified), int(fetched), int(failures), int(items))


def checks_recorded() -> int:
    from herald.core.db import read_scope
    from herald.sources.models import Source

    with read_scope() as session:
        return int(session.scalar(select(func.coalesce(func.sum(Source.checks), 0))) or 0)


def make_all_due() -> datetime:
    """Every source due now, in one UPDATE; returns that instant."""
    from herald.core.clock import utcnow
    from herald.core.db import session_scope
    from herald.sources.models import Source

    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(Source).values(next_check_at=now).execution_options(synchronize_session=False)
        )
    return now


def monitor_pass() -> tuple[int, float]:
    """One pass of the monitor as the scheduler runs it: the claim in its own transaction,
    the checks sent after its commit. Returns (checks claimed, seconds it took)."""
    from herald.core.db import session_scope
    from herald.sources import monitor

    started = time.perf_counter()
    with session_scope() as session:
        claimed = int(monitor.monitor_pass(session)["claimed"])
    return claimed, time.perf_counter() - started


def check_times(started: float) -> list[float]:
    """Each source's last check, in seconds from ``started`` (when the worker recorded it)."""
    from herald.core.db import read_scope
    from herald.sources.models import Source

    with read_scope() as session:
        stamps = session.scalars(select(Source.last_checked_at)).all()
    return sorted(stamp.timestamp() - started for stamp in stamps if stamp is not None)


@dataclass
class RoundResult:
    mode: str
    round: int
    n: int
    changed: int  # feeds with a new item this round
    seconds: float  # from the first pass to the last check recorded
    passes: list[tuple[int, float]]  # (claimed, seconds) of each pass that claimed some
    requests: int
    conditional: int
    not_modified: int
    body_bytes: int
    worker_cpu: dict[str, float]  # seconds: the worker's parent and its pool
    bench_cpu: float  # seconds: this process (the feed server, the passes, the polling)
    others_cores: float | None
    items_stored: int
    completions: list[float]
    checks: dict[str, int] = field(default_factory=dict)

    @property
    def unchanged(self) -> int:
        return self.n - self.changed

    @property
    def worker_seconds(self) -> float:
        return sum(self.worker_cpu.values())

    @property
    def cpu_ms_per_source(self) -> float:
        return 1000 * self.worker_seconds / self.n

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "round": self.round,
            "n": self.n,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "seconds": round(self.seconds, 4),
            "passes": [{"claimed": c, "seconds": round(s, 4)} for c, s in self.passes],
            "requests": self.requests,
            "conditional": self.conditional,
            "not_modified": self.not_modified,
            "body_bytes": self.body_bytes,
            "worker_cpu_seconds": {k: round(v, 3) for k, v in self.worker_cpu.items()},
            "worker_cpu_ms_per_source": round(self.cpu_ms_per_source, 3),
            "bench_cpu_seconds": round(self.bench_cpu, 3),
            "others_cores": self.others_cores,
            "items_stored": self.items_stored,
            "database_totals": self.checks,
            "completions": [round(t, 4) for t in self.completions],
        }


def run_round(bench: Bench, mode: str, round_: int, changed: list[int]) -> RoundResult:
    """Change ``changed`` feeds (not timed), make every source due, and run the monitor
    and the worker until every source has recorded one more check."""
    n = bench.args.n
    bench.feeds.add_item(changed)
    before = Totals.read()
    served = bench.feeds.server.totals()
    make_all_due()
    assert bench.worker is not None
    meter = CpuMeter(groups={bench.worker.pid})
    me = psutil.Process()
    meter.start()
    cpu_before, bench_before = bench.worker_cpu(), sum(me.cpu_times()[:2])
    started = time.time()
    passes: list[tuple[int, float]] = []
    last_pass = -float("inf")
    target = before.checks + n
    deadline = time.monotonic() + bench.wait_seconds
    while checks_recorded() < target:
        if time.monotonic() - last_pass >= bench.args.pass_every:
            last_pass = time.monotonic()
            claimed, took = monitor_pass()
            if claimed:
                passes.append((claimed, took))
        bench.check_children()
        if time.monotonic() > deadline:
            raise BenchError(f"{mode} round {round_}: not every check recorded in time")
        time.sleep(POLL_SECONDS)
    cpu_after, bench_after = bench.worker_cpu(), sum(me.cpu_times()[:2])
    others = meter.stop().get("others_cores")
    completions = check_times(started)
    after = Totals.read()
    now_served = bench.feeds.server.totals()
    result = RoundResult(
        mode=mode,
        round=round_,
        n=n,
        changed=len(changed),
        seconds=completions[-1] if completions else 0.0,
        passes=passes,
        requests=now_served.requests - served.requests,
        conditional=now_served.conditional - served.conditional,
        not_modified=now_served.not_modified - served.not_modified,
        body_bytes=now_served.body_bytes - served.body_bytes,
        worker_cpu={k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
        bench_cpu=bench_after - bench_before,
        others_cores=others,
        items_stored=after.items - before.items,
        completions=completions,
        checks={
            "checks": after.checks - before.checks,
            "not_modified": after.not_modified - before.not_modified,
            "bytes_fetched": after.bytes_fetched - before.bytes_fetched,
            "failures": after.failures,
        },
    )
    check_round(bench, result)
    return result


def check_round(bench: Bench, r: RoundResult) -> None:
    """What the server saw and what the database recorded must be what the round did."""
    where = f"{r.mode} round {r.round}"
    first = r.mode == BASELINE
    expected = {
        "requests the server saw": (r.requests, r.n),
        "conditional requests": (r.conditional, 0 if first else r.n),
        "304 answers": (r.not_modified, 0 if first else r.unchanged),
        "checks recorded": (r.checks["checks"], r.n),
        "304s recorded": (r.checks["not_modified"], r.not_modified),
        "body bytes recorded (vs the server's)": (r.checks["bytes_fetched"], r.body_bytes),
        "items stored": (r.items_stored, ITEMS * r.n if first else r.changed),
        "sources failing": (r.checks["failures"], 0),
        "checks claimed by the monitor": (sum(c for c, _ in r.passes), r.n),
    }
    for what, (got, wanted) in expected.items():
        if got != wanted:
            bench.problems.append(f"{where}: {what} {got}, expected {wanted}")


# --- the next interval ----------------------------------------------------------------------


def next_checks_spread(after: float, tick: float) -> dict[str, Any]:
    """How the sources' next checks fall over the next interval: the most due in any one
    second and in any one of the monitor's ticks, against the mean."""
    from herald.core.db import read_scope
    from herald.sources.models import Source

    with read_scope() as session:
        rows = session.execute(select(Source.next_check_at, Source.interval_minutes)).all()
    due = sorted(at.timestamp() - after for at, _ in rows)
    interval = max(minutes for _, minutes in rows) * 60
    per_second = Counter(int(t // 1) for t in due)
    per_tick = Counter(int(t // tick) for t in due) if tick > 0 else per_second
    return {
        "interval_seconds": interval,
        "first_seconds": round(due[0], 1),
        "last_seconds": round(due[-1], 1),
        "max_per_second": max(per_second.values()),
        "mean_per_second": round(len(due) / interval, 3),
        "seconds_with_a_check": len(per_second),
        "tick_seconds": tick,
        "max_per_tick": max(per_tick.values()),
        "due": [round(t, 2) for t in due],
    }


# --- reporting ------------------------------------------------------------------------------


def median_of(
    results: list[RoundResult], mode: str, value: Callable[[RoundResult], float]
) -> float:
    return float(statistics.median(value(r) for r in results if r.mode == mode))


def cpu_ratio(results: list[RoundResult]) -> float:
    """A changed check's worker CPU over an unchanged one's: the median of the rounds'."""
    per_round = {(r.round, r.mode): r.cpu_ms_per_source for r in results}
    rounds = sorted({r.round for r in results if r.mode != BASELINE})
    return statistics.median(per_round[i, CHANGED] / per_round[i, UNCHANGED] for i in rounds)


def print_report(
    bench: Bench,
    results: list[RoundResult],
    spread: dict[str, Any],
    machine: dict[str, Any],
    facts: dict[str, Any],
) -> dict[str, float]:
    console = Console(width=160)
    args = bench.args
    table = Table(title=f"Source monitoring, one round: {args.database}, N={args.n}")
    columns = (
        "round", "#", "changed", "wall s", "passes", "requests", "conditional", "304s",
        "body kB", "worker CPU s", "CPU ms/source", "items stored", "others' CPU",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "round" else "right")
    for r in results:
        table.add_row(
            r.mode,
            str(r.round),
            f"{r.changed:,}",
            f"{r.seconds:.2f}",
            str(len(r.passes)),
            f"{r.requests:,}",
            f"{r.conditional:,}",
            f"{r.not_modified:,}",
            f"{r.body_bytes / 1000:,.1f}",
            f"{r.worker_seconds:.2f}",
            f"{r.cpu_ms_per_source:.2f}",
            f"{r.items_stored:,}",
            "?" if r.others_cores is None else f"{r.others_cores:.2f} cores",
        )
    console.print(table)

    changed_ms = median_of(results, CHANGED, lambda r: r.cpu_ms_per_source)
    unchanged_ms = median_of(results, UNCHANGED, lambda r: r.cpu_ms_per_source)
    half_ms = median_of(results, HALF, lambda r: r.cpu_ms_per_source)
    ratio = cpu_ratio(results)
    summary = {
        "changed_cpu_ms_per_source": round(changed_ms, 3),
        "unchanged_cpu_ms_per_source": round(unchanged_ms, 3),
        "half_changed_cpu_ms_per_source": round(half_ms, 3),
        "changed_to_unchanged_cpu": round(ratio, 3),
        "changed_body_bytes_per_source": round(
            median_of(results, CHANGED, lambda r: r.body_bytes / r.n)
        ),
        "unchanged_body_bytes_per_source": round(
            median_of(results, UNCHANGED, lambda r: r.body_bytes / r.n)
        ),
        "half_changed_seconds": round(median_of(results, HALF, lambda r: r.seconds), 3),
    }
    print(
        f"worker CPU per source (median of {args.rounds} round(s)): changed "
        f"{changed_ms:.2f} ms, unchanged (304) {unchanged_ms:.2f} ms, ratio {ratio:.2f}; "
        f"half changed {half_ms:.2f} ms (the mean of the two: "
        f"{(changed_ms + unchanged_ms) / 2:.2f} ms)"
    )
    print(
        f"body bytes per source: changed {summary['changed_body_bytes_per_source']:,}, "
        f"unchanged {summary['unchanged_body_bytes_per_source']:,} (the feed is "
        f"{bench.feeds.size():,} bytes, {ITEMS} items{', gzipped' if args.gzip else ''})"
    )
    print(
        f"next checks (after the last round), over the next {spread['interval_seconds']:,} s "
        f"interval, from {spread['first_seconds']:,.0f} s to {spread['last_seconds']:,.0f} s "
        f"ahead: at most {spread['max_per_second']} due in any one second (mean "
        f"{spread['mean_per_second']:.2f}; {spread['seconds_with_a_check']:,} seconds with "
        f"one), at most {spread['max_per_tick']} in one {spread['tick_seconds']:g} s "
        "monitor tick"
    )
    # Each round's claims per pass ("500+500"), each pattern once.
    passes = ", ".join(sorted({"+".join(str(c) for c, _ in r.passes) for r in results}))
    claim_ms = [1000 * s for r in results for _, s in r.passes]
    print(
        f"monitor: a pass every {args.pass_every:g} s, at most the claim batch per pass "
        f"(claimed per pass in a round: {passes}); a pass (claim + commit + sends) took "
        f"{min(claim_ms):.0f} to {max(claim_ms):.0f} ms"
    )
    bench_ms = median_of(results, HALF, lambda r: 1000 * r.bench_cpu / r.n)
    print(
        f"this script's own CPU (the feed server's threads, the passes, the polling): "
        f"{bench_ms:.2f} ms per source in the half-changed round; not in the worker's column"
    )
    print(
        f"worker: {facts.get('pool', '?')} x {facts.get('concurrency', '?')}, prefetch "
        f"multiplier {facts['prefetch_multiplier']} (prefetch count "
        f"{facts.get('prefetch_count', '?')}), acks_late {facts['acks_late']}; Herald's "
        "defaults unless --pool/--concurrency"
    )
    print(
        f"machine: {machine['usable_cores']} of {machine['cores']} cores usable, "
        f"{machine['cpu']}, Python {machine['python']}, load average at start "
        f"{machine['loadavg_at_start']}"
    )
    print(
        "wall s: from the first pass to the last check recorded (the worker's own stamp); "
        "others' CPU: cores busy outside this script and the worker (noise)"
    )
    return summary


def write_results(
    bench: Bench, results: list[RoundResult], spread: dict[str, Any], document: dict[str, Any]
) -> list[Path]:
    args = bench.args
    machine, facts = document["machine"], document["worker"]
    summary = document["summary"]
    shown = [r for r in results if r.round in (0, 1)]  # the baseline and the first round
    rounds_panel = Panel(
        f"Source monitoring: N={args.n} feeds, one round each; changed/unchanged CPU "
        f"{summary['changed_to_unchanged_cpu']:.2f}x",
        f"{args.database}, {facts.get('pool', '?')} x {facts.get('concurrency', '?')}, "
        f"a monitor pass every {args.pass_every:g} s, {ITEMS}-item RSS feeds of "
        f"{bench.feeds.size():,} bytes, {machine['usable_cores']} cores, curves of round 1, "
        f"bars the median of {args.rounds} round(s), {time.strftime('%Y-%m-%d %H:%M')}",
        [Curve(f"{r.mode}: {r.seconds:.1f} s", r.completions, COLORS[r.mode]) for r in shown],
        [
            Bar(
                SHORT[mode],
                median_of(results, mode, lambda r: r.cpu_ms_per_source),
                COLORS[mode],
                f"{median_of(results, mode, lambda r: r.body_bytes / r.n) / 1000:.1f} kB",
            )
            for mode in (BASELINE, *MODES)
        ],
        unit="checks",
        x_label="seconds from the monitor's first pass",
        bars_label="worker CPU ms per source",
    )
    spread_panel = Panel(
        f"Next checks over the next interval: at most {spread['max_per_second']} in any second",
        f"N={args.n} sources, interval {spread['interval_seconds'] // 60:g} min, each on its "
        f"own phase; mean {spread['mean_per_second']:.2f} per second; at most "
        f"{spread['max_per_tick']} in one {spread['tick_seconds']:g} s monitor tick",
        [Curve("next checks due by then", spread["due"], SPREAD_COLOR)],
        [
            Bar("max / s", spread["max_per_second"], SPREAD_COLOR),
            Bar("mean / s", spread["mean_per_second"], "#8c8c8c"),
            Bar(f"max / {spread['tick_seconds']:g} s", spread["max_per_tick"], "#1971c2"),
        ],
        unit="checks",
        x_label="seconds from the end of the last round (when each next check is due)",
        bars_label="checks due",
    )
    svg = completion_chart_svg(rounds_panel, spread_panel)
    return write_outputs(args.results_dir, NAME, args.database, svg, document)


# --- the run --------------------------------------------------------------------------------


def run_rounds(bench: Bench) -> list[RoundResult]:
    n = bench.args.n
    every, odd = list(range(n)), list(range(0, n, 2))
    changes = {HALF: odd, UNCHANGED: [], CHANGED: every}
    results = [run_round(bench, BASELINE, 0, [])]
    for round_ in range(1, bench.args.rounds + 1):
        for mode in MODES if round_ % 2 else MODES[::-1]:
            results.append(run_round(bench, mode, round_, changes[mode]))
    return results


def run(args: argparse.Namespace) -> list[str]:
    """The whole run; returns its problems (checks that failed)."""
    machine = machine_info()
    source = source_info()
    with contextlib.ExitStack() as stack:
        workdir, _database_url, env = herald_stack(args, stack, "hs-")
        # Herald is importable only now: herald.worker reads the settings set up above.
        from herald.worker import MONITOR_EVERY_SECONDS

        if args.pass_every is None:
            args.pass_every = MONITOR_EVERY_SECONDS
        server = stack.enter_context(FeedServer())
        bench = Bench(args, workdir, Feeds(server, args.n, args.gzip))
        bench.feeds.serve()
        create_sources(bench)
        bench.worker = start_worker(env, workdir / "worker.log")
        stack.callback(bench.worker.stop)
        wait_until(worker_facts_ready, 60, "the worker to answer", check=bench.check_children)
        facts = worker_facts("sources")

        results = run_rounds(bench)
        spread = next_checks_spread(time.time(), MONITOR_EVERY_SECONDS)
        bench.worker.stop()

        summary = print_report(bench, results, spread, machine, facts)
        print(f"source: {source['describe']}")
        document: dict[str, Any] = {
            "benchmark": NAME,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n": args.n,
            "rounds": args.rounds,
            "items_per_feed": ITEMS,
            "feed_bytes": bench.feeds.size(),
            "gzip": args.gzip,
            "pass_every_seconds": args.pass_every,
            "database": args.database,
            "broker_url": args.broker_url,
            "machine": machine,
            "source": source,
            "worker": facts,
            "summary": summary,
            "next_checks": spread,
            "problems": bench.problems,
            "runs": [r.as_json() for r in results],
        }
        write_results(bench, results, spread, document)
        return bench.problems


def worker_facts_ready() -> bool:
    """The worker answers a ping (its pool is up and consuming)."""
    from herald.worker import app

    with contextlib.suppress(Exception):
        return bool(app.control.ping(timeout=1))
    return False


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
