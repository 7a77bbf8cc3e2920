"""Does each piece of Herald's performance machinery pay? CPU per delivery with it and
with the plain alternative, side by side in one process, one database, one receiver.

    uv run python -m bench.machinery_cost --n 100 --rounds 8

Each round runs every variant on ``--n`` fresh posts (request, then delivery, serially, as
``bench.delivery_cost`` does), in an order that alternates between rounds (an even number
of rounds gives every variant the same average place); the table shows the median over
rounds of each variant's CPU per delivery, and the median of its per-round ratio to
``baseline`` (the code as it is) in the same round. A variant swaps one piece of
machinery for the plain alternative:

- ``public SQL``: ``herald.core.direct.execute`` runs ``connection.execute(statement,
  params)`` (SQLAlchemy's compiled cache, execution context, ``Result``).
- ``events unpipelined``: each live event is the same Lua append, sent with redis-py's
  ``Script`` and its answer waited for (no hand-written pipelining).
- ``no gc.freeze``: the process's start-up objects are not frozen (``herald.core.heap``);
  the baseline has them frozen, as the API and the worker do (and as
  ``publish_throughput.create_fixtures`` leaves this process). Full collections are rare
  (a few per thousand deliveries), so their count and CPU are shown apart, and a
  forked child's copied memory after one full collection, frozen or not.
- ``no writer lock file``: SQLite writers go straight to ``BEGIN IMMEDIATE`` (SQLite's
  own busy wait) instead of queueing on ``<database>-writer.lock`` first
  (``herald.core.db.WriterLockedConnection``). Serial, so this is what the lock costs
  when nobody contends, not what it is for (a bounded wait, a visible holder).

Every delivery is checked to be ``published`` and seen once by the receiver.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from redis.commands.core import Script
from sqlalchemy import Connection, Executable

from bench._harness import add_stack_arguments, machine_info, run_main, source_info
from bench.delivery_cost import DELIVERY, REQUEST, PartTimer, check, deliver_all, patched
from bench.publish_throughput import Bench, create_fixtures, set_up
from herald.core import direct, heap
from herald.core.db import WriterLockedConnection
from herald.core.settings import get_settings
from herald.events import service as events

NAME = "machinery_cost"
EVENT_PART = "live event to Redis (after commit)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.machinery_cost",
        description="CPU per delivery with each piece of performance machinery and without.",
    )
    parser.add_argument("--n", type=int, default=100, help="Deliveries per variant per round.")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument(
        "--warm", type=int, default=10, help="Untimed deliveries per variant per round."
    )
    add_stack_arguments(
        parser, broker_db=8, timeout=1800, workdir_holds="receiver log, SQLite file", worker=False
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="Comma-separated, baseline included (default: all).",
    )
    args = parser.parse_args(argv)
    args.variants = [name.strip() for name in args.variants.split(",")]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown or "baseline" not in args.variants:
        parser.error(f"--variants: need baseline, and only names from {list(VARIANTS)}")
    if args.n < 1 or args.rounds < 1 or args.warm < 0:
        parser.error("--n and --rounds must be at least 1, --warm not negative")
    return args


# --- the variants: each swaps one piece of machinery for the plain alternative ------------


def public_execute(
    connection: Connection,
    statement: Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Sequence[Any]:
    """What ``direct.execute`` does with SQLAlchemy's public API only."""
    result = connection.execute(statement, params)
    return result.all() if result.returns_rows else []


@contextlib.contextmanager
def public_sql() -> Iterator[None]:
    fast = direct.execute
    direct.execute = public_execute  # type: ignore[assignment]  # the bench's swap, undone below
    try:
        yield
    finally:
        direct.execute = fast


@contextlib.contextmanager
def events_unpipelined() -> Iterator[None]:
    url = events.redis_url(get_settings().effective_broker_url)
    assert url is not None, "the bench's broker is Redis"
    client = redis.Redis.from_url(url)
    append: Script = client.register_script(events._APPEND)

    def send(workspace_id: uuid.UUID, fields: events.Fields) -> None:
        append(
            keys=[events.stream_key(workspace_id)],
            args=[events._RETENTION_MS, events.MAX_EVENTS, fields["kind"], fields["data"]],
        )

    pipelined = events._send
    events._send = send
    try:
        yield
    finally:
        events._send = pipelined
        client.close()


@contextlib.contextmanager
def unfrozen_heap() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        heap.freeze()  # as the fixtures left it


@contextlib.contextmanager
def no_writer_lock_file() -> Iterator[None]:
    locked = WriterLockedConnection
    acquire, release = locked.acquire_writer_lock, locked.release_writer_lock
    locked.acquire_writer_lock = lambda self, wait: None  # type: ignore[method-assign]  # bench swap
    locked.release_writer_lock = lambda self: None  # type: ignore[method-assign]  # bench swap
    try:
        yield
    finally:
        locked.acquire_writer_lock = acquire  # type: ignore[method-assign]  # undo the swap
        locked.release_writer_lock = release  # type: ignore[method-assign]  # undo the swap


VARIANTS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "baseline": contextlib.nullcontext,
    # The same code again: how far apart two runs of one thing come out (the noise).
    "baseline again": contextlib.nullcontext,
    "public SQL": public_sql,
    "events unpipelined": events_unpipelined,
    "no gc.freeze": unfrozen_heap,
    "no writer lock file": no_writer_lock_file,
}


class FullCollections:
    """Counts the cyclic collector's full (generation 2) collections and their CPU."""

    def __init__(self) -> None:
        self.count = 0
        self.cpu = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.count += 1
            self.cpu += time.thread_time() - self._started


def _private_dirty_mb() -> float:
    with open("/proc/self/smaps_rollup") as smaps:
        line = next(line for line in smaps if line.startswith("Private_Dirty"))
    return int(line.split()[1]) / 1024


def copied_by_a_full_collection(frozen: bool) -> tuple[float, float]:
    """The memory (MB) a forked child copies from its parent by one full collection, and
    the collection's CPU ms, with the parent's objects frozen or not."""
    if not frozen:
        gc.unfreeze()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: collect, report, leave without any clean-up of the parent's
        before = _private_dirty_mb()
        started = time.thread_time()
        gc.collect()
        cpu_ms = 1000 * (time.thread_time() - started)
        os.write(write, f"{_private_dirty_mb() - before:.1f} {cpu_ms:.1f}".encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 100).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    heap.freeze()  # frozen again, as the fixtures left it
    return float(answer[0]), float(answer[1])


# --- the run ------------------------------------------------------------------------------


def run_variant(bench: Bench, name: str, post_ids: list[uuid.UUID], warm: int) -> dict[str, float]:
    """One variant on ``post_ids`` (the first ``warm`` untimed); CPU and wall ms per
    delivery, whole and the live-event part."""
    timer = PartTimer()
    full = FullCollections()
    with VARIANTS[name](), patched(timer):
        events.flush_events()
        deliver_all(bench, timer, post_ids[:warm])
        timer.counting = True
        gc.callbacks.append(full)
        try:
            deliver_all(bench, timer, post_ids[warm:])
        finally:
            gc.callbacks.remove(full)
        events.flush_events()  # the pipelined answers are read inside the timed sends
    n = len(post_ids) - warm
    totals = [timer.totals[side] for side in (REQUEST, DELIVERY)]
    event = timer.parts.get((REQUEST, EVENT_PART)), timer.parts.get((DELIVERY, EVENT_PART))
    return {
        "cpu_ms": 1000 * sum(t.cpu for t in totals) / n,
        "wall_ms": 1000 * sum(t.wall for t in totals) / n,
        "event_cpu_ms": 1000 * sum(p.cpu for p in event if p) / n,
        "event_wall_ms": 1000 * sum(p.wall for p in event if p) / n,
        "full_collections": full.count,
        "full_collection_cpu_ms": 1000 * full.cpu / n,
    }


def run(args: argparse.Namespace) -> list[str]:
    names = args.variants
    per_variant = args.warm + args.n
    machine, source = machine_info(), source_info()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        total = per_variant * len(names) * args.rounds
        workdir, database_url, _env, receiver, _capacity = set_up(args, stack, "hm-", total)
        bench = Bench(args, workdir, database_url, receiver)
        post_ids = iter(create_fixtures(bench, total))
        for round_number in range(args.rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                batch = [next(post_ids) for _ in range(per_variant)]
                results[name].append(run_variant(bench, name, batch, args.warm))
        problems = check(bench, total)
        # The worker's state at a fork: Herald's app built, its deliveries' objects alive.
        copied = {frozen: copied_by_a_full_collection(frozen) for frozen in (False, True)}

    base = results["baseline"]
    print(f"CPU per delivery (request + delivery), median of {args.rounds} rounds, N={args.n}")
    print(
        f"{'variant':<20} {'CPU ms':>8} {'ratio':>7} {'wall ms':>8} {'event CPU':>10} "
        f"{'event wall':>10} {'full GCs':>8} {'their CPU':>10}"
    )
    for name in names:
        runs = results[name]
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        ratio = statistics.median(
            r["cpu_ms"] / b["cpu_ms"] for r, b in zip(runs, base, strict=True)
        )
        print(
            f"{name:<20} {cpu:8.3f} {ratio:7.3f} "
            f"{statistics.median(r['wall_ms'] for r in runs):8.3f} "
            f"{statistics.median(r['event_cpu_ms'] for r in runs):10.3f} "
            f"{statistics.median(r['event_wall_ms'] for r in runs):10.3f} "
            f"{sum(int(r['full_collections']) for r in runs):8d} "
            f"{statistics.median(r['full_collection_cpu_ms'] for r in runs):10.3f}"
        )
    for name in names:
        print(f"  {name}: rounds {[round(r['cpu_ms'], 3) for r in results[name]]} CPU ms")
    for frozen, (mb, ms) in copied.items():
        print(
            f"a forked child's full collection, parent {'frozen' if frozen else 'not frozen'}: "
            f"{ms:.1f} ms CPU, {mb:.1f} MB of the parent's memory copied by it"
        )
    print(
        f"{args.database}; {machine['usable_cores']} cores, load {machine['loadavg_at_start'][0]}; "
        f"source {source['describe']}; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
