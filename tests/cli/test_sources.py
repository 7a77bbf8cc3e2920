"""`herald source` as a user runs it: real processes, a local feed.

The commands that start a job (`check`, `test`) follow its row until it is done; the test
runs the job's task body in-process as a worker would (tests/bench/test_sources.py runs
source checks through a real `herald worker`). On SQLite only: the command line is a thin
layer over the sources service, whose every path is tested on both databases in
tests/sources/."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from herald.core.db import session_scope
from herald.jobs.models import Job, JobState
from herald.sources.tasks import check_source_job, probe_source_job
from tests.cli.runner import given_user, herald, herald_env
from tests.fakes.feed_server import FeedServer
from tests.sources.documents import items, rss
from tests.workers import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


def _pending(kind: str) -> str | None:
    with session_scope() as session:
        query = select(Job.id).where(Job.kind == kind, Job.state == JobState.PENDING)
        return session.scalars(query).first()


def _follow(kind: str, task: Callable[[str], Any], *args: str) -> subprocess.CompletedProcess[str]:
    """``herald <args>`` starts a job of ``kind`` and follows it; run the job meanwhile."""
    command = subprocess.Popen(
        [sys.executable, "-m", "herald", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=herald_env(),
    )
    try:
        job_id = wait_for(lambda: _pending(kind), 30, 0.05, f"a {kind} job")
        assert job_id is not None
        task(job_id)
        stdout, stderr = command.communicate(timeout=60)
    finally:
        command.kill()
        command.wait()
    return subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)


def test_add_check_read_and_remove_a_feed_from_the_command_line(
    db_backend: str, redis_broker: str, feed_server: FeedServer
) -> None:
    given_user("ann@example.com", admin=True)
    feed_server.put("/feed", rss(items(1, 2)))
    url = feed_server.url("/feed")

    bad = herald("source", "add", "--kind", "feed", "--name", "Bad", "--url", "feed.xml")
    assert bad.returncode == 1
    assert bad.stderr.startswith("herald: error: url must be an absolute")
    assert bad.stderr.count("\n") == 1

    added = herald("source", "add", "--kind", "feed", "--name", "News", "--url", url, "--json")
    assert added.returncode == 0, added.stderr
    source = json.loads(added.stdout)
    assert source["url"] == url and source["interval_minutes"] == 30

    baseline = _follow("source.check", check_source_job, "source", "check", "News", "--json")
    assert baseline.returncode == 0, baseline.stderr
    assert json.loads(baseline.stdout)["new_items"] == []  # the baseline is not new

    feed_server.put("/feed", rss(items(1, 2, 3)))
    checked = _follow("source.check", check_source_job, "source", "check", source["id"][:8])
    assert checked.returncode == 0, checked.stderr
    assert "News: 1 new, 0 updated, 0 drafts." in checked.stdout
    assert "Post number 3" in checked.stdout

    tested = _follow("source.test", probe_source_job, "source", "test", "News", "--json")
    assert tested.returncode == 0, tested.stderr
    assert json.loads(tested.stdout)["result"]["item_count"] == 3

    listed = json.loads(herald("source", "items", "News", "--json").stdout)
    assert [i["title"] for i in listed] == ["Post number 3", "Post number 2", "Post number 1"]
    table = herald("source", "list")
    assert "News" in table.stdout and "ok" in table.stdout

    removed = herald("source", "remove", "News")
    assert removed.returncode == 0 and "Removed 'News'" in removed.stdout
