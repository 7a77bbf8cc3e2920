"""Metrics scrape cost: how long /metrics's collector takes to read a database holding
``--publications`` deliveries (each with one attempt and its job), on SQLite or PostgreSQL.

    uv run python -m bench.metrics_scrape                           # SQLite, 1,000 and 10,000
    uv run python -m bench.metrics_scrape --database postgresql --publications 10000 50000

Why: every value at /metrics is read from the database when Prometheus scrapes (so it is
right across prefork children and hosts); a scrape must stay cheap as the tables grow.
The collector runs grouped aggregates (a few rows per platform and state come back
whatever the table's size). For each size in ``--publications`` (ascending; the tables
grow from one size to the next), this times ``--scrapes`` runs of the collector and
prints the median and the worst; the plot (``bench/results/metrics_scrape.svg``) shows
both per size. Rows are inserted in bulk, not through the API: only the reads are
measured (the database's part of a scrape; Redis's part is a few commands whatever the
tables hold). Each scrape is checked to report every delivery inserted so far.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._charts import PartBar, parts_chart_svg
from bench._harness import (
    add_stack_arguments,
    machine_info,
    run_main,
    source_info,
    write_outputs,
)
from bench.publish_throughput import herald_stack

NAME = "metrics_scrape"
INSERT_BATCH = 2000  # rows per table per transaction
STATES = ["published"] * 8 + ["failed", "scheduled"]
MEDIAN_COLOR, WORST_COLOR = "#1971c2", "#d9480f"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics_scrape",
        description="What one /metrics scrape costs as the delivery tables grow.",
    )
    parser.add_argument(
        "--publications",
        type=int,
        nargs="+",
        default=[1000, 10_000],
        metavar="N",
        help="Table sizes to scrape at, in deliveries (1000 10000).",
    )
    parser.add_argument("--scrapes", type=int, default=20, help="Scrapes timed per size (20).")
    add_stack_arguments(
        parser, broker_db=13, timeout=900, workdir_holds="SQLite file", worker=False
    )
    args = parser.parse_args(argv)
    if args.scrapes < 1 or any(n < 1 for n in args.publications):
        parser.error("--scrapes and every --publications must be at least 1")
    args.publications = sorted(set(args.publications))
    return args


def fixtures() -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A workspace, a webhook channel and a post (not timed): workspace, channel, post ids."""
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
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="b"
        )
        who = Principal(user.id, user.workspace_id, user.email, user.role)
        channel = create_channel(
            session,
            who,
            ChannelCreate(
                platform="webhook",
                name="bench",
                credentials={"url": "http://127.0.0.1:9/hook", "secret": "s" * 32},
            ),
        )
        post = create_post(session, who, PostCreate(title="Bench", body="Hi"))
        return user.workspace_id, channel.id, post.id


def insert_rows(ids: tuple[uuid.UUID, uuid.UUID, uuid.UUID], start: int, stop: int) -> None:
    """Deliveries ``start`` to ``stop`` (8 in 10 published, 1 failed, 1 scheduled), each
    with its job and, unless scheduled, one attempt; in bulk, not timed."""
    from sqlalchemy import insert

    from herald.core.clock import utcnow
    from herald.core.db import session_scope
    from herald.jobs.models import Job
    from herald.publishing.models import Publication, PublicationAttempt

    workspace, channel_id, post_id = ids
    now = utcnow()
    for first in range(start, stop, INSERT_BATCH):
        jobs, pubs, attempts = [], [], []
        for i in range(first, min(stop, first + INSERT_BATCH)):
            job_id, pub_id = uuid.uuid4().hex, uuid.uuid4()
            due = now - timedelta(minutes=i % 1000)
            state = STATES[i % len(STATES)]
            jobs.append(_job(job_id, workspace, due))
            pubs.append(
                {
                    "id": pub_id,
                    "workspace_id": workspace,
                    "post_id": post_id,
                    "channel_id": channel_id,
                    "task_id": job_id,
                    "state": state,
                    "idempotency_key": job_id,
                    "attempt": 1,
                    "max_attempts": 4,
                    "due_at": due,
                    "cancel_requested": False,
                    "published_at": due + timedelta(seconds=(i % 7) / 3)
                    if state == "published"
                    else None,
                    "error_kind": "permanent" if state == "failed" else None,
                    "created_at": due,
                    "updated_at": due,
                }
            )
            if state != "scheduled":
                attempts.append(
                    {
                        "id": uuid.uuid4(),
                        "publication_id": pub_id,
                        "number": 1,
                        "started_at": due,
                        "finished_at": due + timedelta(seconds=0.4),
                        "outcome": state,
                    }
                )
        with session_scope() as session:
            session.execute(insert(Job), jobs)
            session.execute(insert(Publication), pubs)
            session.execute(insert(PublicationAttempt), attempts)


def _job(job_id: str, workspace: uuid.UUID, due: datetime) -> dict[str, Any]:
    return {
        "id": job_id,
        "workspace_id": workspace,
        "kind": "publish",
        "params": {},
        "state": "SUCCESS",
        "created_at": due,
        "updated_at": due,
    }


def scrape(scrapes: int, expected: int, problems: list[str]) -> dict[str, Any]:
    """``scrapes`` timed runs of the collector; checks that the first reports ``expected``
    deliveries in herald_deliveries (every state summed)."""
    from herald.core.db import read_scope
    from herald.metrics.collector import RedisView, collect_from

    took: list[float] = []
    families: list[Any] = []
    for _ in range(scrapes):
        started = time.perf_counter()
        with read_scope() as session:
            families = list(collect_from(session, RedisView()))
        took.append(time.perf_counter() - started)
    counted = sum(
        sample.value
        for family in families
        if family.name == "herald_deliveries"
        for sample in family.samples
    )
    if counted != expected:
        problems.append(f"{expected:,} deliveries inserted, herald_deliveries sums {counted:g}")
    return {
        "publications": expected,
        "families": len(families),
        "samples": sum(len(family.samples) for family in families),
        "median_ms": round(statistics.median(took) * 1000, 2),
        "max_ms": round(max(took) * 1000, 2),
        "scrapes_ms": [round(t * 1000, 2) for t in took],
    }


def print_table(sizes: list[dict[str, Any]], database: str, scrapes: int) -> None:
    print(f"Metrics scrape cost ({database}, {scrapes} scrapes per size)")
    print(f"{'deliveries':>11} {'families':>8} {'samples':>8} {'median ms':>10} {'max ms':>8}")
    for size in sizes:
        print(
            f"{size['publications']:>11,} {size['families']:>8} {size['samples']:>8} "
            f"{size['median_ms']:>10.1f} {size['max_ms']:>8.1f}"
        )


def plot(sizes: list[dict[str, Any]], database: str, machine: str, scrapes: int) -> str:
    """Per size, the median and the worst scrape, as two bars."""
    parts = []
    for size in sizes:
        label = f"{size['publications']:,} deliveries"
        parts.append(PartBar(f"{label}, median", size["median_ms"], MEDIAN_COLOR))
        parts.append(PartBar(f"{label}, worst", size["max_ms"], WORST_COLOR))
    largest = sizes[-1]
    title = (
        f"One /metrics scrape: {largest['median_ms']:.1f} ms median at "
        f"{largest['publications']:,} deliveries ({database})"
    )
    subtitle = (
        f"the collector's database reads (grouped aggregates), {scrapes} scrapes per size; "
        f"{machine}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    legend = [(f"median of {scrapes}", MEDIAN_COLOR), ("worst", WORST_COLOR)]
    return parts_chart_svg(
        title, subtitle, parts, legend, x_label="ms per scrape", value_format="{:.1f} ms"
    )


def run(args: argparse.Namespace) -> list[str]:
    """The whole run; returns its problems (checks that failed)."""
    machine, source = machine_info(), source_info()
    problems: list[str] = []
    sizes: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        herald_stack(args, stack, "ms-")
        ids = fixtures()
        inserted = 0
        for n in args.publications:
            print(f"inserting up to {n:,} deliveries (not timed)", flush=True)
            insert_rows(ids, inserted, n)
            inserted = n
            sizes.append(scrape(args.scrapes, n, problems))
    print_table(sizes, args.database, args.scrapes)
    cores = f"{machine['usable_cores']} cores, load {machine['loadavg_at_start'][0]}"
    print(f"machine: {cores}, {machine['cpu']}; source: {source['describe']}")
    svg = plot(sizes, args.database, cores, args.scrapes)
    document = {
        "benchmark": NAME,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "database": args.database,
        "options": {"publications": args.publications, "scrapes": args.scrapes},
        "machine": machine,
        "source": source,
        "sizes": sizes,
        "problems": problems,
    }
    write_outputs(args.results_dir, NAME, args.database, svg, document)
    return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
