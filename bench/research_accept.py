"""Research accept: how long ``POST /api/v1/research`` takes to answer 202 with its task
id (issue 18: under 100 ms, the median of 20).

    uv run python -m bench.research_accept                       # SQLite, 20 requests
    uv run python -m bench.research_accept --database postgresql --requests 50

Each request is what a client sends (a query, Reddit, Hacker News and a Discourse forum),
through the whole app in process (FastAPI's TestClient: routing, auth by token, body
validation, the job row's commit, then the task sent to the broker, Redis): everything
but the socket. No worker runs: the job is only accepted, which is what is measured.
A few requests first warm the app up (not counted). The table shows each request's
milliseconds, then the median and the 90th percentile; the plot
(``bench/results/research_accept-<database>.png``) shows every request with both lines
and the 100 ms target. The script checks that every answer was 202 with a task id, and
that every job row and broker message exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import redis
from matplotlib.ticker import MaxNLocator

from bench._harness import (
    add_stack_arguments,
    machine_info,
    run_main,
    source_info,
)
from bench.publish_throughput import herald_stack

NAME = "research_accept"
TARGET_MS = 100.0
BODY = {
    "query": "asyncio",
    "sources": ["reddit", "hackernews", {"discourse": "https://forum.example.org"}],
    "limit": 100,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.research_accept",
        description="Time to accept a research job: POST /api/v1/research → 202.",
    )
    parser.add_argument("--requests", type=int, default=20, help="Requests measured.")
    parser.add_argument("--warmup", type=int, default=3, help="Requests first, not measured.")
    add_stack_arguments(parser, broker_db=7, timeout=300, workdir_holds="SQLite file", worker=False)
    args = parser.parse_args(argv)
    if args.requests < 2 or args.warmup < 0:
        parser.error("--requests must be at least 2 and --warmup at least 0")
    return args


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


def app_client() -> Any:
    """The app, with the research router in it (included here if app.py does not yet)."""
    from fastapi.testclient import TestClient

    from herald.app import create_app

    return TestClient(create_app())


def token() -> str:
    """A user and an API token for it (not timed)."""
    from herald.core.db import session_scope
    from herald.users.models import Role, TokenKind
    from herald.users.service import create_user, issue_token

    with session_scope() as session:
        user, _ = create_user(
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="bench"
        )
        return issue_token(
            session, user, kind=TokenKind.PERSONAL, name="bench", expires_at=None
        ).token


def measure(args: argparse.Namespace, problems: list[str]) -> list[float]:
    headers = {"Authorization": f"Bearer {token()}"}
    timings: list[float] = []
    task_ids: list[str] = []
    with app_client() as client:
        for n in range(args.warmup + args.requests):
            started = time.perf_counter()
            answer = client.post("/api/v1/research", json=BODY, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 202 or not answer.json().get("task_id"):
                problems.append(f"request {n} answered {answer.status_code}: {answer.text[:200]}")
                continue
            task_ids.append(answer.json()["task_id"])
            if n >= args.warmup:
                timings.append(elapsed)
    check(args, task_ids, problems)
    return timings


def check(args: argparse.Namespace, task_ids: list[str], problems: list[str]) -> None:
    """Every accepted job has its row, and its message waits in the sources queue."""
    from sqlalchemy import func, select

    from herald.core.db import session_scope
    from herald.jobs.models import Job

    with session_scope() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.id.in_(task_ids), Job.kind == "research")
        )
    queued = redis.Redis.from_url(args.broker_url).llen("sources")
    if rows != len(task_ids):
        problems.append(f"{len(task_ids)} jobs accepted but {rows} job rows")
    if queued != len(task_ids):
        problems.append(f"{len(task_ids)} jobs accepted but {queued} messages in the sources queue")


def print_table(timings: list[float]) -> dict[str, float]:
    print(f"{'request':>7} {'ms':>8}")
    for n, value in enumerate(timings, 1):
        print(f"{n:>7} {value:8.1f}")
    summary = {
        "median_ms": statistics.median(timings),
        "p90_ms": percentile(timings, 0.9),
        "min_ms": min(timings),
        "max_ms": max(timings),
    }
    print(f"{'median':>7} {summary['median_ms']:8.1f}")
    print(f"{'p90':>7} {summary['p90_ms']:8.1f}")
    verdict = "under" if summary["median_ms"] < TARGET_MS else "OVER"
    print(f"the median is {verdict} the {TARGET_MS:.0f} ms target")
    return summary


def plot(timings: list[float], summary: dict[str, float], title: str, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(9.6, 4.4))
    positions = range(1, len(timings) + 1)
    axes.bar(positions, timings, color="#4c78a8", label="one request")
    for value, label, style in (
        (summary["median_ms"], f"median {summary['median_ms']:.1f} ms", "-"),
        (summary["p90_ms"], f"p90 {summary['p90_ms']:.1f} ms", "--"),
        (TARGET_MS, f"target {TARGET_MS:.0f} ms", ":"),
    ):
        axes.axhline(
            value, linestyle=style, color="#333333" if style != ":" else "#d62728", label=label
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("request (after the warm-up)")
    axes.set_ylabel("ms to the 202 answer")
    axes.set_ylim(bottom=0, top=max(TARGET_MS, *timings) * 1.15)
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper right", frameon=False)
    axes.grid(axis="y", color="#eeeeee")
    axes.set_axisbelow(True)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> list[str]:
    machine, source = machine_info(), source_info()
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        herald_stack(args, stack, "ra-")
        timings = measure(args, problems)
    if not timings:
        return problems or ["no request was measured"]
    summary = print_table(timings)
    when = time.strftime("%Y-%m-%d %H:%M")
    print(
        f"{args.database}; {machine['usable_cores']} cores, load {machine['loadavg_at_start'][0]}; "
        f"source {source['describe']}; {when}"
    )
    title = (
        f"POST /api/v1/research → 202, {len(timings)} requests, {args.database}, {when}, "
        f"{source['describe']}"
    )
    plot(timings, summary, title, args.results_dir / f"{NAME}-{args.database}.png")
    document = {"summary": summary, "timings_ms": timings, "machine": machine, "source": source}
    json_path = args.results_dir / f"{NAME}-{args.database}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {json_path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
