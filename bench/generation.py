"""Agent generations: drafts per second and CPU per draft with the digest, and what the
provider path adds to a model's own latency.

    uv run python -m bench.generation                        # N=200 digests, SQLite
    uv run python -m bench.generation --database postgresql
    uv run python -m bench.generation --n 50 --profile       # where a digest run's time goes

A fresh stack (``herald_stack``: a migrated database, Herald's settings, the broker's
database flushed), a user, a feed source whose items are stored directly
(``sources.items.store_entries``: deterministic multi-sentence texts, as a feed's
summaries read), and two agents drawing on it with no quota: one with the built-in
digest (no provider configured, a fresh install's default) and one with an ``openai``
provider pointing at the local fake (``tests.fakes.openai.OpenAIServer``, in this
process) whose every answer waits ``--latency-ms``.

Each generation takes the real path, one after another from one thread: the request's
part (``generate.start_run`` in its own ``session_scope()`` transaction; the job's
message goes to the broker after commit, as a request sends it), then the task body,
``herald.agents.tasks.generate_post(job_id)``, called in this process: there is no
worker, so no broker hop; the message stays in the queue, counted at the end. Wall time
(``perf_counter``) and this process's CPU (``process_time``) are taken per draft and per
phase (the runner's three steps and the SEO metrics, timed by wrappers around
``generate.prepare``, ``generate.call``, ``generate.record`` and ``generate.measure``,
which runs inside the call step); the provider's own time is the ledger's ``latency_ms``.

The first draft is timed on its own and left out: its SEO metrics load textstat's
dictionaries (about 1.6 s). Every run is checked (succeeded, one ledger row, a draft
with SEO metrics, its items, a message on the broker); a failed check exits 1.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import math
import pstats
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from tests.fakes.openai import OpenAIServer

from bench._charts import PartBar, parts_chart_svg
from bench._harness import (
    add_stack_arguments,
    machine_info,
    run_main,
    source_info,
    write_outputs,
)
from bench.publish_throughput import herald_stack

NAME = "generation"
DIGEST, OPENAI = "digest", "openai"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
HERALD_COLOR, PROVIDER_COLOR = "#1971c2", "#d9480f"
PHASES = ("request", "prepare", "call", "record", "seo", "runner")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generation",
        description="N digest generations (drafts/s, CPU per draft, where the time goes) and "
        "M generations through the openai provider against a local fake with a set latency "
        "(Herald's overhead over the model's own time).",
    )
    parser.add_argument("--n", type=int, default=200, help="Digest generations measured (200).")
    parser.add_argument(
        "--openai-n",
        type=int,
        default=50,
        help="Generations through the openai provider against the fake (50).",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=200.0,
        help="How long the fake waits before each answer, in ms (200).",
    )
    parser.add_argument("--items", type=int, default=5, help="Items per draft (5).")
    parser.add_argument("--words", type=int, default=600, help="The agents' target words (600).")
    parser.add_argument(
        "--item-ids",
        action="store_true",
        help="Each run names its items (item_ids), instead of the agent drawing its sources' "
        "newest unused ones as a scheduled run does. Implied by --items other than "
        "generate.ITEMS_PER_RUN.",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Run the measured digest generations under cProfile and print the top "
        "functions (the timings then include the profiler's overhead).",
    )
    add_stack_arguments(
        parser, broker_db=12, timeout=1200, workdir_holds="SQLite file", worker=False
    )
    args = parser.parse_args(argv)
    if args.n < 2 or args.openai_n < 0 or args.items < 1 or args.latency_ms < 0:
        parser.error(
            "--n must be at least 2, --openai-n and --latency-ms not negative, --items at least 1"
        )
    if not 50 <= args.words <= 5000:
        parser.error("--words must be between 50 and 5000 (an agent's target length)")
    return args


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


# --- the items ----------------------------------------------------------------------------

SUBJECTS = (
    "The release",
    "The new scheduler",
    "The maintainers",
    "The storage engine",
    "The team behind the project",
    "The compiler",
    "The standard library",
    "The query planner",
    "Early adopters",
    "The benchmark suite",
    "The security audit",
    "The package index",
)
VERBS = (
    "cuts memory use by",
    "speeds up cold starts by",
    "reduces build times by",
    "brings latency down by",
    "lowers the error rate by",
    "improves throughput by",
)
CLAUSES = (
    "according to the release notes published on Tuesday",
    "on the workloads the authors measured",
    "which users had asked for since the last major version",
    "although the change needs a configuration flag for now",
    "and the old behaviour stays available for a year",
    "while keeping every public interface compatible",
    "in tests run on commodity hardware",
    "after a review that took most of the spring",
)
FOLLOW_UPS = (
    "Developers can try it today with a single command.",
    "The documentation explains how to migrate existing deployments step by step.",
    "Several large companies already run it in production.",
    "Critics point out that the gains shrink on small machines.",
    "A longer write-up with graphs and raw numbers is linked from the announcement.",
    "The next release, planned for the autumn, will turn the feature on by default.",
    "Questions from the community are collected in a public discussion thread.",
    "Support for older operating systems ends with this version.",
)
TOPICS = (
    "databases",
    "compilers",
    "web frameworks",
    "observability",
    "package managers",
    "container runtimes",
)


def item_text(number: int) -> tuple[str, str]:
    """Item ``number``'s title and summary: 8 to 12 sentences (about 150 to 250 words),
    the same for the same number on every run."""
    rng = random.Random(number)  # noqa: S311 (made-up texts, not secrets)
    topic = TOPICS[number % len(TOPICS)]
    title = f"{rng.choice(SUBJECTS)[4:].strip().capitalize()} in {topic}: update {number}"
    sentences = []
    for _ in range(rng.randint(8, 12)):
        if rng.random() < 0.6:
            percent = rng.randint(5, 60)
            sentences.append(
                f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {percent} percent "
                f"for {topic}, {rng.choice(CLAUSES)}."
            )
        else:
            sentences.append(rng.choice(FOLLOW_UPS))
    return title, " ".join(sentences)


def store_items(workspace_id: uuid.UUID, source_id: uuid.UUID, count: int) -> None:
    """``count`` items from the source (one read, as a feed check stores them), item n
    published at EPOCH + n minutes: the newest have the highest numbers (not timed)."""
    from herald.core.db import session_scope
    from herald.sources.entries import Entry, sanitise
    from herald.sources.items import store_entries

    entries = []
    for number in range(count):
        title, text = item_text(number)
        link = f"https://news.example.org/{number}"
        summary_html, summary_text = sanitise(f"<p>{text}</p>")
        entries.append(
            Entry(
                site="feed",
                title=title,
                guid=f"bench-item-{number}",
                link=link,
                summary_html=summary_html,
                summary_text=summary_text,
                author="A Writer",
                published_at=EPOCH + timedelta(minutes=number),
            )
        )
    with session_scope() as session:
        store_entries(session, workspace_id=workspace_id, entries=entries, source_id=source_id)


# --- the fake model server -------------------------------------------------------------------


class TimedOpenAIServer(OpenAIServer):
    """The fake, recording how long it took over each answer on its own side: the wall
    time and its thread's CPU from the request's body read to the answer's body built
    (its set latency included; the HTTP parsing and writing around it are not)."""

    def __init__(self) -> None:
        super().__init__()
        self.own: list[tuple[float, float]] = []  # (wall s, CPU s) per answer

    def _complete(self, body: Any, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        wall, cpu = time.perf_counter(), time.thread_time()
        answer = super()._complete(body, headers)
        took = (time.perf_counter() - wall, time.thread_time() - cpu)
        with self._lock:
            self.own.append(took)
        return answer


# --- the fixtures -------------------------------------------------------------------------


@dataclass
class Fixtures:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    source_id: uuid.UUID
    agents: dict[str, uuid.UUID]
    item_ids: list[uuid.UUID]  # newest first


def create_fixtures(args: argparse.Namespace, fake: OpenAIServer, runs: int) -> Fixtures:
    """A user, a feed source with enough items for every run, a digest agent and an openai
    agent drawing on it, no quota (not timed)."""
    from sqlalchemy import select

    from herald.agents.models import ProviderKind
    from herald.agents.provider_schemas import ProviderCreate
    from herald.agents.provider_service import create_provider
    from herald.agents.schemas import AgentCreate
    from herald.agents.service import create_agent
    from herald.core.db import session_scope
    from herald.sources.models import SourceItem, SourceKind
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
        source = create_source(
            session,
            principal,
            SourceCreate(
                kind=SourceKind.FEED, name="Tech news", url="https://news.example.org/feed.xml"
            ),
        )
        source_id = source.id
    store_items(principal.workspace_id, source_id, runs * args.items)
    with session_scope() as session:
        provider = create_provider(
            session,
            principal,
            ProviderCreate(
                kind=ProviderKind.OPENAI,
                name="fake",
                base_url=fake.base_url,
                model="gpt-4o-mini",
                api_key="sk-bench",
                input_price_per_million=0.15,
                output_price_per_million=0.60,
            ),
        )
        agents = {}
        for kind, provider_id in ((DIGEST, None), (OPENAI, provider.id)):
            agent = create_agent(
                session,
                principal,
                AgentCreate(
                    name=f"{kind} agent",
                    topic="This week in software",
                    keywords=["release", "performance"],
                    target_words=args.words,
                    source_ids=[source_id],
                    provider_id=provider_id,
                ),
            )
            agents[kind] = agent.id
        item_ids = list(
            session.scalars(
                select(SourceItem.id)
                .where(SourceItem.source_id == source_id)
                .order_by(SourceItem.sort_at.desc())
            )
        )
    return Fixtures(principal.workspace_id, principal.user_id, source_id, agents, item_ids)


# --- one generation -----------------------------------------------------------------------


@dataclass
class Clock:
    """Wall and CPU seconds per phase of the generation being timed."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu


@contextlib.contextmanager
def phases_timed(clock: list[Clock]) -> Iterator[None]:
    """Wrap the run's steps (module attributes, looked up when the task body runs) so each
    one's time lands on ``clock[0]``; the originals are back afterwards."""
    from herald.agents import generate

    names = {"prepare": "prepare", "call": "call", "record": "record", "measure": "seo"}
    originals = {attr: getattr(generate, attr) for attr in names}

    def timed(attr: str) -> Callable[..., Any]:
        original = originals[attr]

        def wrapper(*a: Any, **k: Any) -> Any:
            with clock[0].phase(names[attr]):
                return original(*a, **k)

        return wrapper

    for attr in names:
        setattr(generate, attr, timed(attr))
    try:
        yield
    finally:
        for attr, original in originals.items():
            setattr(generate, attr, original)


@dataclass
class Draft:
    """One generation's numbers (seconds) and what it returned."""

    wall: float
    cpu: float
    phases_wall: dict[str, float]
    phases_cpu: dict[str, float]
    job_id: str
    run_id: str
    result: dict[str, Any]
    provider_ms: int = 0  # the ledger's latency_ms
    fake_wall: float | None = None  # the fake's own time (the openai path)
    fake_cpu: float | None = None


def generate_one(
    fixtures: Fixtures, kind: str, clock: list[Clock], item_ids: list[uuid.UUID] | None
) -> Draft:
    """One generation, as a request then a worker make it: start_run in its own
    transaction (its job sent to the broker after commit), then the task body here."""
    from herald.agents import generate
    from herald.agents.models import Agent, RunTrigger
    from herald.agents.tasks import generate_post
    from herald.core.db import session_scope

    clock[0] = Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    with clock[0].phase("request"), session_scope() as session:
        agent = session.get_one(Agent, fixtures.agents[kind])
        run = generate.start_run(
            session,
            agent,
            trigger=RunTrigger.MANUAL,
            owner_id=fixtures.user_id,
            item_ids=item_ids,
        )
        job_id, run_id = str(run.job_id), str(run.id)
    with clock[0].phase("job"):
        result = generate_post(job_id)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    phases_wall, phases_cpu = dict(clock[0].wall), dict(clock[0].cpu)
    # The runner: the job's claim and finish, and both transactions' commits.
    for phases in (phases_wall, phases_cpu):
        job = phases.pop("job")
        phases["call"] -= phases.get("seo", 0.0)  # measured inside the call step
        phases["runner"] = job - sum(phases[p] for p in ("prepare", "call", "record", "seo"))
    return Draft(wall, cpu, phases_wall, phases_cpu, job_id, run_id, result)


@dataclass
class PathRun:
    """One path's drafts: the first (cold) one and the measured ones."""

    kind: str
    cold: Draft
    drafts: list[Draft]
    seconds: float  # wall time of the measured drafts, first request to last record
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return len(self.drafts) / self.seconds if self.seconds else 0.0


def item_ids_for(args: argparse.Namespace, fixtures: Fixtures, number: int) -> list[uuid.UUID]:
    """Run ``number``'s items when runs name them: the next ``--items`` of the newest."""
    return fixtures.item_ids[number * args.items : (number + 1) * args.items]


def run_path(
    args: argparse.Namespace,
    fixtures: Fixtures,
    kind: str,
    count: int,
    fake: TimedOpenAIServer | None,
    profiler: cProfile.Profile | None = None,
) -> PathRun:
    clock = [Clock()]
    by_ids = uses_item_ids(args)
    drafts: list[Draft] = []
    with phases_timed(clock):
        first = item_ids_for(args, fixtures, 0) if by_ids else None
        cold = generate_one(fixtures, kind, clock, first)
        if fake is not None:
            cold.fake_wall, cold.fake_cpu = fake.own[-1]
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        for number in range(1, count + 1):
            ids = item_ids_for(args, fixtures, number) if by_ids else None
            draft = generate_one(fixtures, kind, clock, ids)
            if fake is not None:
                draft.fake_wall, draft.fake_cpu = fake.own[-1]
            drafts.append(draft)
        if profiler is not None:
            profiler.disable()
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    return PathRun(kind, cold, drafts, seconds, cpu_seconds)


def uses_item_ids(args: argparse.Namespace) -> bool:
    from herald.agents.generate import ITEMS_PER_RUN

    return bool(args.item_ids or args.items != ITEMS_PER_RUN)


# --- checks -------------------------------------------------------------------------------


def check(
    args: argparse.Namespace,
    paths: list[PathRun],
    fake: TimedOpenAIServer,
    problems: list[str],
) -> None:
    """Every run succeeded with one ledger row, a draft with SEO metrics and its items;
    every job's message reached the broker; the fake answered each openai run once.
    Fills in each draft's provider latency from the ledger."""
    from sqlalchemy import func, select

    from herald.agents.models import AgentRun, LedgerEntry, RunItem, RunState
    from herald.core.db import read_scope
    from herald.posts.models import Post

    drafts = [d for p in paths for d in (p.cold, *p.drafts)]
    runs = {uuid.UUID(d.run_id): d for d in drafts}
    with read_scope() as session:
        ledger = {
            run_id: (outcome, latency)
            for run_id, outcome, latency in session.execute(
                select(LedgerEntry.run_id, LedgerEntry.outcome, LedgerEntry.latency_ms).where(
                    LedgerEntry.run_id.in_(runs)
                )
            )
        }
        states = dict(session.execute(select(AgentRun.id, AgentRun.state)).all())
        counted = select(RunItem.run_id, func.count()).group_by(RunItem.run_id)
        items = dict(session.execute(counted).all())
        posts: dict[uuid.UUID | None, dict[str, Any] | None] = dict(
            session.execute(
                select(Post.agent_run_id, Post.seo).where(Post.agent_run_id.in_(runs))
            ).all()
        )
        ledger_rows = session.scalar(select(func.count()).select_from(LedgerEntry))
    for run_id, draft in runs.items():
        if not draft.result.get("success"):
            problems.append(f"run {run_id} did not succeed: {draft.result}")
            continue
        if states.get(run_id) != RunState.SUCCEEDED:
            problems.append(f"run {run_id} is {states.get(run_id)}, not succeeded")
        outcome, latency = ledger.get(run_id, (None, 0))
        if outcome != "ok":
            problems.append(f"run {run_id} has no ledger row with outcome ok")
        draft.provider_ms = latency
        if not (posts.get(run_id) or {}).get("word_count"):
            problems.append(f"run {run_id} has no draft with SEO metrics")
        if items.get(run_id) != args.items:
            problems.append(f"run {run_id} used {items.get(run_id, 0)} items, not {args.items}")
    if ledger_rows != len(runs):
        problems.append(f"{ledger_rows} ledger rows for {len(runs)} runs")
    queued = redis.Redis.from_url(args.broker_url).llen("generation")
    if queued != len(runs):
        problems.append(f"{len(runs)} runs started but {queued} messages in the generation queue")
    openai_runs = sum(1 + len(p.drafts) for p in paths if p.kind == OPENAI)
    if fake.calls != openai_runs:
        problems.append(f"the fake answered {fake.calls} requests for {openai_runs} openai runs")


# --- the report ---------------------------------------------------------------------------


def ms(seconds: float) -> float:
    return 1000 * seconds


def summarise(path: PathRun) -> dict[str, Any]:
    drafts = path.drafts
    walls = [ms(d.wall) for d in drafts]
    cpus = [ms(d.cpu) for d in drafts]
    summary: dict[str, Any] = {
        "drafts": len(drafts),
        "seconds": round(path.seconds, 4),
        "drafts_per_second": round(path.per_second, 3),
        "wall_ms": {
            "mean": round(ms(path.seconds) / len(drafts), 3),
            "median": round(statistics.median(walls), 3),
            "p95": round(percentile(walls, 0.95), 3),
        },
        "cpu_ms": {
            "mean": round(ms(path.cpu_seconds) / len(drafts), 3),
            "median": round(statistics.median(cpus), 3),
            "p95": round(percentile(cpus, 0.95), 3),
        },
        "phases_wall_ms": {
            p: round(statistics.median(ms(d.phases_wall.get(p, 0.0)) for d in drafts), 3)
            for p in PHASES
        },
        "phases_cpu_ms": {
            p: round(statistics.median(ms(d.phases_cpu.get(p, 0.0)) for d in drafts), 3)
            for p in PHASES
        },
        "provider_ms_ledger_median": statistics.median(d.provider_ms for d in drafts),
        "words_median": statistics.median(d.result.get("word_count") or 0 for d in drafts),
        "cold": {
            "wall_ms": round(ms(path.cold.wall), 3),
            "cpu_ms": round(ms(path.cold.cpu), 3),
            "seo_wall_ms": round(ms(path.cold.phases_wall.get("seo", 0.0)), 3),
            "provider_ms_ledger": path.cold.provider_ms,
        },
    }
    if drafts and drafts[0].fake_wall is not None:
        fake_walls = [ms(d.fake_wall or 0.0) for d in drafts]
        fake_cpus = [ms(d.fake_cpu or 0.0) for d in drafts]
        over = [w - f for w, f in zip(walls, fake_walls, strict=True)]
        summary["fake"] = {
            "own_wall_ms_median": round(statistics.median(fake_walls), 3),
            "own_cpu_ms_median": round(statistics.median(fake_cpus), 3),
            "overhead_ms_median": round(statistics.median(over), 3),
            "overhead_ms_p95": round(percentile(over, 0.95), 3),
            "ratio_to_own_time": round(statistics.median(walls) / statistics.median(fake_walls), 4),
            # process_time counts every thread, the fake's included: Herald's CPU is the rest.
            "herald_cpu_ms_median": round(
                statistics.median(c - f for c, f in zip(cpus, fake_cpus, strict=True)), 3
            ),
        }
    return summary


PHASE_NAMES = {
    "request": "request: reserve, run + job rows, commit, send",
    "prepare": "prepare: claim the run and its items, read the provider",
    "call": "provider call",
    "record": "record: ledger, draft, item uses, settle",
    "seo": "SEO metrics (textstat)",
    "runner": "job runner: claim, finish, two commits",
}


def print_report(
    args: argparse.Namespace, digest: dict[str, Any], openai: dict[str, Any] | None, by_ids: bool
) -> None:
    print(
        f"\nAgent generations: {args.database}, {args.items} items and {args.words} words a draft"
    )
    how = "named by each run (item_ids)" if by_ids else "the agent's newest unused (as scheduled)"
    print(f"items: {how}; the task body runs in this process (no worker, no broker hop)\n")
    header = (
        f"{'path':<8} {'drafts':>6} {'drafts/s':>9} {'wall ms':>8} {'wall p95':>9} "
        f"{'CPU ms':>7} {'CPU p95':>8} {'provider':>9} {'words':>6}"
    )
    print(header)
    print("-" * len(header))
    for kind, summary in ((DIGEST, digest), (OPENAI, openai)):
        if summary is None:
            continue
        print(
            f"{kind:<8} {summary['drafts']:>6} {summary['drafts_per_second']:>9.2f} "
            f"{summary['wall_ms']['median']:>8.2f} {summary['wall_ms']['p95']:>9.2f} "
            f"{summary['cpu_ms']['median']:>7.2f} {summary['cpu_ms']['p95']:>8.2f} "
            f"{summary['provider_ms_ledger_median']:>9} {summary['words_median']:>6}"
        )
    print("(wall and CPU: medians per draft; provider: the ledger's latency_ms, median)\n")
    print("Where a draft's time goes (median ms per draft):")
    paths = [(DIGEST, digest)] + ([(OPENAI, openai)] if openai is not None else [])
    heads = "".join(f" {kind + ' wall':>12} {kind + ' CPU':>11}" for kind, _ in paths)
    print(f"  {'phase':<58}{heads}")
    for phase in PHASES:
        cells = "".join(
            f" {summary['phases_wall_ms'][phase]:>12.2f} {summary['phases_cpu_ms'][phase]:>11.2f}"
            for _, summary in paths
        )
        print(f"  {PHASE_NAMES[phase]:<58}{cells}")
    herald = sum(v for p, v in digest["phases_wall_ms"].items() if p != "call")
    print(
        f"  the digest itself (ledger): {digest['provider_ms_ledger_median']} ms; Herald's "
        f"machinery around it: {herald:.2f} ms wall"
    )
    cold = digest["cold"]
    print(
        f"\nfirst draft (cold, not counted): {cold['wall_ms']:.1f} ms wall, of which SEO "
        f"metrics {cold['seo_wall_ms']:.1f} ms (textstat loads its dictionaries)"
    )
    if openai is not None:
        fake = openai["fake"]
        print(f"\nThe openai path against the fake, latency {args.latency_ms:g} ms:")
        print(
            f"  wall per draft {openai['wall_ms']['median']:.2f} ms (median); the fake's own time "
            f"{fake['own_wall_ms_median']:.2f} ms; ratio wall / fake's time "
            f"{fake['ratio_to_own_time']:.3f}"
        )
        print(
            f"  Herald's overhead: {fake['overhead_ms_median']:.2f} ms per draft (median, p95 "
            f"{fake['overhead_ms_p95']:.2f}); Herald's CPU {fake['herald_cpu_ms_median']:.2f} ms "
            f"(the fake's {fake['own_cpu_ms_median']:.2f} ms left out)"
        )
        if args.latency_ms:
            ratio = openai["wall_ms"]["median"] / args.latency_ms
            print(f"  ratio wall / set latency: {ratio:.3f}")
        print(
            f"  first openai draft (not counted): {openai['cold']['wall_ms']:.1f} ms "
            "(a new connection to the fake)"
        )


def print_profile(profiler: cProfile.Profile, count: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler)
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]  # typeshed omits Stats.stats
        key=lambda item: item[1][2],
        reverse=True,
    )[:15]
    print(f"\nProfile of the {count} measured digest drafts, by own time (ms per draft):")
    top = []
    for (filename, line, name), row in rows:
        where = filename
        for marker in ("site-packages/", "/src/", "/lib/python"):
            if marker in filename:
                where = filename.split(marker, 1)[1]
                break
        entry = {
            "function": f"{where}:{line}({name})",
            "calls_per_draft": round(row[1] / count, 1),
            "tottime_ms": round(1000 * row[2] / count, 3),
            "cumtime_ms": round(1000 * row[3] / count, 3),
        }
        top.append(entry)
        print(
            f"  {entry['tottime_ms']:>8.3f} own {entry['cumtime_ms']:>8.3f} cum "
            f"{entry['calls_per_draft']:>7} calls  {entry['function']}"
        )
    print("(profiled run: the timings above include cProfile's overhead)")
    return top


def chart(
    args: argparse.Namespace, digest: dict[str, Any], openai: dict[str, Any] | None, title: str
) -> str:
    parts = [
        PartBar(
            f"digest: {PHASE_NAMES[p].split(':')[0]}",
            digest["phases_wall_ms"][p],
            PROVIDER_COLOR if p == "call" else HERALD_COLOR,
        )
        for p in PHASES
    ]
    if openai is not None:
        fake = openai["fake"]
        parts += [
            PartBar("openai: the fake's own time", fake["own_wall_ms_median"], PROVIDER_COLOR),
            PartBar("openai: Herald's overhead", fake["overhead_ms_median"], HERALD_COLOR),
        ]
    subtitle = (
        f"median wall ms per draft; {digest['drafts']} digest drafts at "
        f"{digest['drafts_per_second']:.1f}/s, {digest['cpu_ms']['median']:.1f} CPU ms each"
    )
    if openai is not None:
        subtitle += (
            f"; {openai['drafts']} openai drafts, latency {args.latency_ms:g} ms, wall / fake's "
            f"time {openai['fake']['ratio_to_own_time']:.3f}"
        )
    return parts_chart_svg(
        title,
        subtitle + f". {title.split(': ', 1)[1]}",
        parts,
        [("Herald", HERALD_COLOR), ("provider", PROVIDER_COLOR)],
        x_label="wall ms per draft",
        value_format="{:.2f} ms",
    )


def run(args: argparse.Namespace) -> list[str]:
    machine, source = machine_info(), source_info()
    problems: list[str] = []
    profiler = cProfile.Profile() if args.profile else None
    with contextlib.ExitStack() as stack:
        herald_stack(args, stack, "gen-")  # before any import of herald reads its settings
        by_ids = uses_item_ids(args)
        fake = stack.enter_context(TimedOpenAIServer())
        fake.latency = args.latency_ms / 1000
        fixtures = create_fixtures(args, fake, 1 + max(args.n, args.openai_n))
        paths = [run_path(args, fixtures, DIGEST, args.n, None, profiler)]
        if args.openai_n:
            paths.append(run_path(args, fixtures, OPENAI, args.openai_n, fake))
        check(args, paths, fake, problems)
    digest = summarise(paths[0])
    openai = summarise(paths[1]) if len(paths) > 1 else None
    print_report(args, digest, openai, by_ids)
    when = time.strftime("%Y-%m-%d %H:%M")
    print(
        f"\n{args.database}; {machine['usable_cores']} cores, load "
        f"{machine['loadavg_at_start'][0]}; source {source['describe']}; {when}"
    )
    document: dict[str, Any] = {
        "options": {
            "n": args.n,
            "openai_n": args.openai_n,
            "latency_ms": args.latency_ms,
            "items": args.items,
            "words": args.words,
            "item_ids": by_ids,
            "database": args.database,
            "profiled": args.profile,
        },
        "digest": digest,
        "openai": openai,
        "per_draft": {
            p.kind: [
                {
                    "wall_ms": round(ms(d.wall), 3),
                    "cpu_ms": round(ms(d.cpu), 3),
                    "provider_ms": d.provider_ms,
                    **({"fake_ms": round(ms(d.fake_wall), 3)} if d.fake_wall is not None else {}),
                }
                for d in p.drafts
            ]
            for p in paths
        },
        "problems": problems,
        "machine": machine,
        "source": source,
    }
    if profiler is not None:
        document["profile"] = print_profile(profiler, args.n)
    title = f"Agent generations: {args.database}, {when}, {source['describe']}"
    svg = chart(args, digest, openai, title)
    write_outputs(args.results_dir, NAME, args.database, svg, document)
    return problems


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
