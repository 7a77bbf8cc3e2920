"""`herald source` as a user runs it: real processes, a local feed.

The commands that start a job (`check`, `test`) follow its row until it is done; the test
runs the job's task body in-process as a worker would (tests/bench/test_sources.py runs
source checks through a real `herald worker`). On SQLite only: the command line is a thin
layer over the sources service, whose every path is tested on both databases in
tests/sources/."""

from __future__ import annotations

import json

import pytest

from herald.sources.tasks import check_source_job, probe_source_job
from tests.cli.runner import follow, given_user, herald
from tests.fakes.feed_server import FeedServer
from tests.sources.documents import items, rss

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


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

    baseline = follow("source.check", check_source_job, "source", "check", "News", "--json")
    assert baseline.returncode == 0, baseline.stderr
    assert json.loads(baseline.stdout)["new_items"] == []  # the baseline is not new

    feed_server.put("/feed", rss(items(1, 2, 3)))
    checked = follow("source.check", check_source_job, "source", "check", source["id"][:8])
    assert checked.returncode == 0, checked.stderr
    assert "News: 1 new, 0 updated, 0 drafts." in checked.stdout
    assert "Post number 3" in checked.stdout

    tested = follow("source.test", probe_source_job, "source", "test", "News", "--json")
    assert tested.returncode == 0, tested.stderr
    assert json.loads(tested.stdout)["result"]["item_count"] == 3

    listed = json.loads(herald("source", "items", "News", "--json").stdout)
    assert [i["title"] for i in listed] == ["Post number 3", "Post number 2", "Post number 1"]
    table = herald("source", "list")
    assert "News" in table.stdout and "ok" in table.stdout

    removed = herald("source", "remove", "News")
    assert removed.returncode == 0 and "Removed 'News'" in removed.stdout
