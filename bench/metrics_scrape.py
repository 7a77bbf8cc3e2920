"""Metrics scrape cost: how long /metrics's collector takes to read a database holding
``--publications`` deliveries (each with one attempt and its job), on SQLite or PostgreSQL.

    uv run python -m bench.metrics_scrape                           # SQLite, 10,000
    uv run python -m bench.metrics_scrape --database-url postgresql+psycopg://.../db

Why: every value at /metrics is read from the database when Prometheus scrapes (so it is
right across prefork children and hosts); a scrape must stay cheap as the tables grow.
The collector runs grouped aggregates (a few rows per platform and state come back
whatever the table's size); this prints the median and the worst of ``--scrapes``.
Rows are inserted in bulk, not through the API: only the reads are measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publications", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-metrics-"))
    os.environ["HERALD_DATA_DIR"] = str(workdir)
    os.environ["HERALD_DATABASE_URL"] = args.database_url or f"sqlite:///{workdir / 'b.db'}"
    os.environ.setdefault("HERALD_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")

    from sqlalchemy import insert

    from herald.channels.schemas import ChannelCreate
    from herald.channels.service import create_channel
    from herald.core.clock import utcnow
    from herald.core.db import read_scope, session_scope
    from herald.core.migrate import upgrade
    from herald.jobs.models import Job
    from herald.metrics.collector import RedisView, collect_from
    from herald.posts.schemas import PostCreate
    from herald.posts.service import create_post
    from herald.publishing.models import Publication, PublicationAttempt
    from herald.users.models import Role
    from herald.users.service import Principal, create_user

    upgrade()
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
        workspace, channel_id, post_id = user.workspace_id, channel.id, post.id
    now = utcnow()
    states = ["published"] * 8 + ["failed", "scheduled"]
    for start in range(0, args.publications, 2000):
        jobs, pubs, attempts = [], [], []
        for i in range(start, min(args.publications, start + 2000)):
            job_id, pub_id = uuid.uuid4().hex, uuid.uuid4()
            due = now - timedelta(minutes=i % 1000)
            state = states[i % len(states)]
            jobs.append(
                {
                    "id": job_id,
                    "workspace_id": workspace,
                    "kind": "publish",
                    "params": {},
                    "state": "SUCCESS",
                    "created_at": due,
                    "updated_at": due,
                }
            )
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

    took: list[float] = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        with read_scope() as session:
            families = list(collect_from(session, RedisView()))
        took.append(time.perf_counter() - started)
    samples = sum(len(f.samples) for f in families)
    backend = os.environ["HERALD_DATABASE_URL"].split(":", 1)[0]
    print(
        f"{backend}: {args.publications} publications, {len(families)} families, {samples} "
        f"samples; scrape median {statistics.median(took) * 1000:.1f} ms, "
        f"max {max(took) * 1000:.1f} ms over {args.scrapes}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
