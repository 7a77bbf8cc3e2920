"""`herald research`: starts the job through the service, follows it by polling its row
until it is done, then shows the results; --no-wait prints the task id; every mistake is
one line on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from herald.cli._common import CliError
from herald.cli.research import parse_since
from herald.core.db import session_scope
from herald.jobs.models import Job
from herald.sources.research_tasks import research as research_task
from tests.cli.runner import given_user, herald, herald_env
from tests.fakes.discourse import FakeDiscourse
from tests.workers import wait_for


def test_since_is_a_span_back_from_now_or_a_date() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since(" 2W ", now) == now - timedelta(weeks=2)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T10:00+02:00", now) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    with pytest.raises(CliError, match="--since 'last tuesday': give 7d"):
        parse_since("last tuesday", now)


def research_jobs() -> list[Job]:
    with session_scope() as session:
        found = list(session.scalars(select(Job).where(Job.kind == "research")))
        session.expunge_all()
        return found


# What is typed is checked before the database matters: one backend is enough.
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_no_wait_prints_the_task_id_and_mistakes_are_one_line(
    db_backend: str, redis_broker: str
) -> None:
    given_user("ann@example.com", admin=True)
    mistake = herald("research", "asyncio", "--site", "myspace", "--no-wait")
    assert mistake.returncode == 1
    assert mistake.stderr.count("\n") == 1 and "'myspace' is not a site" in mistake.stderr
    assert research_jobs() == []

    started = herald(
        "research", "asyncio", "--site", "hackernews", "--discourse", "https://Forum.Example.org/",
        "--since", "7d", "--limit", "20", "--no-wait", "--json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    answer = json.loads(started.stdout)
    (job,) = research_jobs()
    assert answer == {"task_id": job.id, "status": "pending"}
    assert job.params["sites"] == [
        {"site": "hackernews", "url": None},
        {"site": "discourse", "url": "https://forum.example.org"},
    ]
    assert job.params["limit"] == 20
    since = datetime.fromisoformat(job.params["since"])
    assert timedelta(days=6, hours=23) < datetime.now(UTC) - since < timedelta(days=7, hours=1)


# The command is a thin reader of the job row; research itself runs on both databases in
# tests/sources/test_research.py.
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_it_follows_the_job_until_done_then_shows_the_results(
    db_backend: str, redis_broker: str
) -> None:
    given_user("ann@example.com", admin=True)
    with FakeDiscourse() as forum:
        forum.add_topics(12, word="asyncio")
        forum.add_topics(3, word="other")
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "herald",
                "research",
                "asyncio",
                "--discourse",
                forum.base_url,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=herald_env(),
        )
        try:
            # The command waits on the job's row; run its task here, as a worker would.
            (job,) = wait_for(research_jobs, 30, 0.05, "the research job")
            research_task(job.id)
            stdout, stderr = command.communicate(timeout=60)
        finally:
            command.kill()
    assert command.returncode == 0, stderr
    read = json.loads(stdout)
    assert read["task_id"] == job.id and read["status"] == "SUCCESS"
    assert read["item_count"] == 12 and len(read["items"]) == 12
    (digest,) = read["sites"]
    assert digest["label"] == f"127.0.0.1:{forum.port}" and digest["items"] == 12
    assert all("Asyncio" in item["title"] for item in read["items"])
