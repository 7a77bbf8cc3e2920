"""Rate limits: N posts to one channel of each rate-limited platform's fake, all queued
at once, drained by a real worker and ``herald beat``: how many 429s the platform
answered (target 0) and how long the drain took next to what the documented limit
allows (target ≤ 1.1 x).

    uv run python -m bench.rate_limits                      # N=1,000, 30 s per platform
    uv run python -m bench.rate_limits --target-seconds 60 --platforms mastodon,x

Scaling: a documented limit drains 1,000 posts in hours (Mastodon's 300 statuses per
3 h: 7 h). Each platform runs on its own with every period divided by a factor chosen
so that its limit-bound drain takes about ``--target-seconds``: the worker and the
scheduler get ``HERALD_RATE_LIMIT_SCALE`` and the fake ``rate_scale``, the same factor;
the table states it. The fakes (``tests.fakes``, in this process) enforce the platforms'
documented limits and answer 429 past them, as the platforms do.

The ideal drain time is the limit's own: for each of the channel's buckets (Herald's
declared, documented limits), ``max(0, N x cost - capacity) ÷ refill rate``; the largest
is the limit-bound drain. A platform whose limit lets N posts out at once (Bluesky:
1,000 posts cost 3,000 of 5,000 points) is not limit-bound and shows no ratio.
Measured: from the commit that queued the N deliveries to the fake's N-th post, every
delivery checked ``published``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table
from tests.fakes.base import FakePlatform
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.discord import FakeDiscord
from tests.fakes.mastodon import TOKEN as MASTODON_TOKEN
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.telegram import FakeTelegram
from tests.fakes.x import FakeX

from bench._charts import Bar, Curve, Panel, completion_chart_svg
from bench._harness import (
    BenchError,
    BenchTimeout,
    ManagedProcess,
    add_stack_arguments,
    machine_info,
    run_main,
    source_info,
    start_worker,
    wait_until,
    write_outputs,
)
from bench.publish_throughput import herald_stack

NAME = "rate_limits"
TARGET_RATIO = 1.1
COLORS = {
    "mastodon": "#6364ff",
    "x": "#000000",
    "telegram": "#229ed9",
    "discord": "#5865f2",
    "bluesky": "#1185fe",
}


@dataclass
class Platform:
    key: str
    fake: Callable[[], FakePlatform]
    credentials: Callable[[Any], dict[str, Any]]
    sent: Callable[[Any], int]  # posts the fake holds


PLATFORMS = {
    "mastodon": Platform(
        "mastodon",
        FakeMastodon,
        lambda f: {"instance_url": f.base_url, "access_token": MASTODON_TOKEN},
        lambda f: len(f.statuses),
    ),
    "x": Platform("x", FakeX, lambda f: f.credentials(), lambda f: len(f.posts)),
    "telegram": Platform(
        "telegram", FakeTelegram, lambda f: f.credentials(), lambda f: len(f.messages)
    ),
    "discord": Platform(
        "discord", FakeDiscord, lambda f: {"webhook_url": f.webhook_url}, lambda f: len(f.messages)
    ),
    "bluesky": Platform(
        "bluesky", FakeBluesky, lambda f: f.credentials(), lambda f: len(f.posts())
    ),
}


@dataclass
class Result:
    platform: str
    n: int
    scale: float
    ideal_seconds: float  # limit-bound drain, scaled (0: not limit-bound)
    binding: str  # the bucket that binds
    drain_seconds: float = 0.0
    too_many: int = 0
    too_many_by: dict[str, int] = field(default_factory=dict)
    completions: list[float] = field(default_factory=list)
    queued_seconds: float = 0.0  # from the commit to the last message on the broker
    # Each request a fake's limit matched: seconds from the commit, the limit it was over.
    judged: list[tuple[float, str | None]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.drain_seconds / self.ideal_seconds if self.ideal_seconds > 1 else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rate_limits",
        description="N posts to one channel of each rate-limited fake: 429s and drain time "
        "next to what the (scaled) documented limit allows.",
    )
    parser.add_argument("--n", type=int, default=1000, help="Posts per platform (1,000).")
    parser.add_argument(
        "--platforms", default=",".join(PLATFORMS), help="Comma-separated (all five)."
    )
    parser.add_argument(
        "--target-seconds",
        type=float,
        default=30.0,
        help="The limit-bound drain each platform is scaled to (30 s).",
    )
    add_stack_arguments(
        parser, broker_db=13, timeout=1800, workdir_holds="the data dir and the logs"
    )
    return parser.parse_args(argv)


def ideal_unscaled(adapter: Any, n: int) -> tuple[float, str]:
    """The documented limits' drain time for N one-part posts, and the binding bucket."""
    worst, name = 0.0, "none"
    for bucket in adapter.limits.buckets:
        cost = n * bucket.cost_of(1, 0)
        seconds = max(0, cost - bucket.capacity) * bucket.period_seconds / bucket.capacity
        if seconds > worst:
            worst, name = seconds, bucket.name
    return worst, name


def create_channel(principal: Any, platform: str, credentials: dict[str, Any]) -> uuid.UUID:
    from herald.channels.schemas import ChannelCreate
    from herald.channels.service import create_channel as create
    from herald.core.db import session_scope

    with session_scope() as session:
        channel = create(
            session,
            principal,
            ChannelCreate(platform=platform, name=platform, credentials=credentials),
        )
        return channel.id


def create_posts(principal: Any, n: int, label: str) -> list[uuid.UUID]:
    from herald.core.db import session_scope
    from herald.posts.schemas import PostCreate
    from herald.posts.service import create_post

    with session_scope() as session:
        return [
            create_post(
                session, principal, PostCreate(title=f"{label} {i}", body=f"Post {i} of {n}.")
            ).id
            for i in range(n)
        ]


def publish_all(
    principal: Any, channel_id: uuid.UUID, post_ids: list[uuid.UUID]
) -> tuple[tuple[float, float], float]:
    """Queue every delivery in one transaction (sent after its commit): the commit's time
    (monotonic, and the wall clock the fakes judge by), and when the last message went
    to the broker (monotonic)."""
    from herald.core.db import session_scope
    from herald.publishing import actions

    with session_scope() as session:
        for post_id in post_ids:
            actions.publish(session, principal, post_id, [channel_id])
        session.flush()
        # The clock starts at the commit (a few ms from here), not once the N messages
        # are on the broker: they go after it (a second or two for 1,000), and the worker
        # starts on the first.
        committed = time.monotonic(), time.time()
    return committed, time.monotonic()


def states(channel_id: uuid.UUID) -> dict[str, int]:
    from sqlalchemy import func, select

    from herald.core.db import read_scope
    from herald.publishing.models import Publication

    with read_scope() as session:
        rows = session.execute(
            select(Publication.state, func.count())
            .where(Publication.channel_id == channel_id)
            .group_by(Publication.state)
        )
        return {str(state): int(count) for state, count in rows}


def run_platform(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, principal: Any, key: str
) -> Result:
    from herald.adapters.registry import get_adapter_class

    spec = PLATFORMS[key]
    with spec.fake() as fake:
        credentials = spec.credentials(fake)
        adapter = get_adapter_class(key).build(credentials)
        unscaled, binding = ideal_unscaled(adapter, args.n)
        scale = max(1.0, unscaled / args.target_seconds)
        fake.rate_scale = scale
        result = Result(key, args.n, scale, unscaled / scale, binding)
        channel_id = create_channel(principal, key, credentials)
        post_ids = create_posts(principal, args.n, key)
        child = {**env, "HERALD_RATE_LIMIT_SCALE": repr(scale)}
        os.environ["HERALD_RATE_LIMIT_SCALE"] = repr(scale)
        worker = start_worker(child, workdir / f"worker-{key}.log")
        beat = ManagedProcess(
            "beat", [sys.executable, "-m", "herald", "beat"], workdir / f"beat-{key}.log", child
        ).start()
        try:
            wait_until(worker_ready, 120, "the worker", interval=0.5, check=worker.check)
            print(f"{key}: {args.n:,} posts, periods ÷ {scale:,.1f}", flush=True)
            (start, start_wall), queued = publish_all(principal, channel_id, post_ids)
            result.queued_seconds = queued - start
            seen = 0
            deadline = 20 * max(result.ideal_seconds, 30)

            def drained() -> bool:
                nonlocal seen
                now = int(spec.sent(fake))
                if now > seen:
                    result.completions += [time.monotonic() - start] * (now - seen)
                    seen = now
                return bool(now >= int(args.n))

            def alive() -> None:
                worker.check()
                beat.check()

            try:
                wait_until(drained, deadline, f"{key}'s {args.n} posts", interval=0.05, check=alive)
            except BenchTimeout as exc:
                # Say what the deliveries are doing: a fake that answers 500 (say) looks
                # like a slow drain otherwise.
                raise BenchTimeout(
                    f"{exc}; {key}: {seen} of {args.n} posts at the fake; {stuck(channel_id)}"
                ) from exc
            result.drain_seconds = result.completions[-1]
            result.too_many = fake.rate_limited
            result.too_many_by = dict(fake.rate_limited_by)
            result.judged = [(at - start_wall, over) for at, over in fake.judged]
            wait_until(
                lambda: states(channel_id).get("published", 0) == args.n,
                30,
                f"{key}'s deliveries to be recorded",
                interval=0.1,
            )
            result.states = states(channel_id)
        finally:
            beat.stop()
            worker.stop()
    return result


def stuck(channel_id: uuid.UUID) -> str:
    """The channel's deliveries by state, and their most frequent last error."""
    from sqlalchemy import func, select

    from herald.core.db import read_scope
    from herald.publishing.models import Publication

    with read_scope() as session:
        error = session.execute(
            select(Publication.last_error, func.count())
            .where(Publication.channel_id == channel_id, Publication.last_error.is_not(None))
            .group_by(Publication.last_error)
            .order_by(func.count().desc())
            .limit(1)
        ).first()
    said = f"; last error (of {error[1]}): {error[0]}" if error else ""
    return f"deliveries {states(channel_id)}{said}"


def worker_ready() -> bool:
    """Whether a worker answers a ping (so the drain does not time its start)."""
    from herald.worker import app

    return bool(app.control.ping(timeout=0.5))


def set_up_principal() -> Any:
    from herald.core.db import session_scope
    from herald.users.models import Role
    from herald.users.principal import Principal
    from herald.users.service import create_user

    with session_scope() as session:
        user, _ = create_user(
            session, email="bench@example.com", role=Role.ADMIN, workspace_name="bench"
        )
        return Principal(user.id, user.workspace_id, user.email, user.role)


def report(results: list[Result], args: argparse.Namespace) -> list[str]:
    console = Console(width=120)
    table = Table(title=f"Rate limits — {args.database}, N={args.n:,} posts per platform")
    for column in (
        "platform",
        "binding limit (documented)",
        "periods ÷",
        "limit allows (s)",
        "drain (s)",
        "drain / limit",
        "429s",
        "published",
    ):
        table.add_column(
            column, justify="left" if column.startswith(("platform", "b")) else "right"
        )
    problems = []
    for result in results:
        ratio = result.ratio
        table.add_row(
            result.platform,
            result.binding if result.ideal_seconds > 1 else "none (N fits the bucket)",
            f"{result.scale:,.1f}",
            f"{result.ideal_seconds:,.1f}",
            f"{result.drain_seconds:,.1f}",
            "—" if ratio is None else f"{ratio:.2f}",
            str(result.too_many)
            + (
                f" ({', '.join(f'{k} {v}' for k, v in result.too_many_by.items())})"
                if result.too_many
                else ""
            ),
            f"{result.states.get('published', 0):,}",
        )
        if result.too_many:
            problems.append(f"{result.platform}: the fake answered {result.too_many} 429s")
        if ratio is not None and ratio > TARGET_RATIO:
            problems.append(
                f"{result.platform}: the drain took {ratio:.2f} x what the limit allows "
                f"(target ≤ {TARGET_RATIO})"
            )
    console.print(table)
    print(f"targets: 0 answers of 429; drain ≤ {TARGET_RATIO} x the limit's own time")
    for result in results:
        first = next((at for at, _ in result.judged), None)
        print(
            f"{result.platform}: the {result.n:,} messages were on the broker "
            f"{result.queued_seconds:.2f} s after the commit; the first request reached the "
            "fake " + ("never" if first is None else f"{first:.2f} s after it")
        )
    return problems


def chart(results: list[Result], args: argparse.Namespace) -> str:
    panels = [
        Panel(
            title=f"Rate limits: {r.platform}, periods ÷ {r.scale:,.1f}",
            subtitle=f"N={args.n:,}, {args.database}; {r.too_many} x 429; the limit allows "
            f"{r.ideal_seconds:,.1f} s",
            curves=[Curve(r.platform, r.completions, COLORS.get(r.platform, "#d9480f"))],
            bars=[
                Bar("limit allows", r.ideal_seconds, "#8c8c8c"),
                Bar("drain", r.drain_seconds, COLORS.get(r.platform, "#d9480f")),
            ],
            unit="posts",
            x_label="seconds from the commit that queued them",
            bars_label="seconds",
        )
        for r in results
    ]
    return completion_chart_svg(*panels)


def run(args: argparse.Namespace) -> list[str]:
    keys = [k.strip() for k in args.platforms.split(",") if k.strip()]
    unknown = [k for k in keys if k not in PLATFORMS]
    if unknown:
        raise BenchError(f"unknown platform(s): {', '.join(unknown)}")
    machine, source = machine_info(), source_info()
    results = []
    with contextlib.ExitStack() as stack:
        workdir, _, env = herald_stack(args, stack, "rl-")
        principal = set_up_principal()
        for key in keys:
            results.append(run_platform(args, env, workdir, principal, key))
    problems = report(results, args)
    document = {
        "benchmark": NAME,
        "database": args.database,
        "n": args.n,
        "target_seconds": args.target_seconds,
        "machine": machine,
        "source": source,
        "problems": problems,
        "results": [
            {
                "platform": r.platform,
                "scale": r.scale,
                "binding": r.binding,
                "ideal_seconds": r.ideal_seconds,
                "drain_seconds": r.drain_seconds,
                "ratio": r.ratio,
                "too_many": r.too_many,
                "too_many_by": r.too_many_by,
                "states": r.states,
                "completions": r.completions,
                "queued_seconds": r.queued_seconds,
                "judged": r.judged,
            }
            for r in results
        ],
    }
    write_outputs(args.results_dir, NAME, args.database, chart(results, args), document)
    return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
