"""`herald channel` (and the posts a channel is for): adding, listing, refusing bad input."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from herald.channels.models import Channel
from herald.channels.tasks import verify_channel
from herald.core.clock import utcnow
from herald.core.db import session_scope
from tests.cli.runner import ON_SQLITE, given_folder_channel, given_user, herald

pytestmark = pytest.mark.integration  # `herald` processes on the real database


@ON_SQLITE
def test_channels_and_posts_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    given_user("ann@example.com", admin=True)

    added = herald(
        "channel",
        "add",
        "--platform",
        "folder",
        "--name",
        "site",
        "--credentials",
        json.dumps({"path": str(tmp_path)}),
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["platform"] == "folder"
    bad = herald("channel", "add", "--platform", "webhook", "--name", "h", "--credentials", "{")
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr
    invalid = herald(
        "channel",
        "add",
        "--platform",
        "webhook",
        "--name",
        "h",
        "--credentials",
        '{"url": "http://x.example", "secret": "short"}',
    )
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("herald: error: credentials.secret")
    assert "short" not in invalid.stderr  # the rejected value is not echoed

    listed = json.loads(herald("channel", "list", "--json").stdout)
    assert [c["name"] for c in listed] == ["site"]

    created = herald(
        "post",
        "create",
        "--title",
        "From stdin",
        "--body-file",
        "-",
        "--tag",
        "a",
        "--tag",
        "b",
        "--json",
        stdin="# Body\n",
    )
    assert created.returncode == 0, created.stderr
    post = json.loads(created.stdout)
    assert post["body"] == "# Body\n" and post["tags"] == ["a", "b"]

    posts = json.loads(herald("post", "list", "--json", "--tag", "a").stdout)
    assert [p["id"] for p in posts] == [post["id"]]
    wrong_state = herald("post", "list", "--state", "bogus")
    assert wrong_state.returncode == 1 and "--state must be one of" in wrong_state.stderr


@ON_SQLITE
def test_check_all_runs_the_health_pass_and_list_shows_the_last_check(
    db_backend: str, tmp_path: Path, redis_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    with session_scope() as session:
        session.execute(update(Channel).values(next_check_at=utcnow() - timedelta(minutes=1)))
    monkeypatch.setenv("COLUMNS", "200")  # the whole table, unwrapped
    assert "never" in herald("channel", "list").stdout

    ran = herald("channel", "check-all", "--json")

    assert ran.returncode == 0, ran.stderr
    (job_id,) = json.loads(ran.stdout)["jobs"]
    verify_channel(job_id)  # what a worker on the maintenance queue does
    listed = herald("channel", "list")
    assert " ok" in listed.stdout and "never" not in listed.stdout, listed.stdout
    assert json.loads(herald("channel", "check-all", "--json").stdout)["claimed"] == 0

    monkeypatch.setenv("HERALD_CHANNEL_CHECK_HOURS", "0")
    off = herald("channel", "check-all")
    assert off.returncode == 1 and "channel checks are off" in off.stderr
