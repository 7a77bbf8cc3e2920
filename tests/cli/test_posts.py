"""`herald post`: publishing now with live status, and queueing into a channel's slots."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import make_url

from herald.core.db import writer_lock_path
from herald.core.settings import get_settings
from tests.cli.runner import ON_SQLITE, given_folder_channel, given_post, given_user, herald
from tests.workers import running_worker

pytestmark = pytest.mark.integration  # `herald` processes on the real database


@ON_SQLITE
def test_publish_from_the_command_line_with_live_status(
    db_backend: str, tmp_path: Path, redis_broker: str
) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    post_id = given_post("Live")
    unknown = herald("post", "publish", post_id, "--to", "nope")
    assert unknown.returncode == 1
    assert "no channel named 'nope'" in unknown.stderr

    with running_worker():
        published = herald("post", "publish", post_id, "--to", "site", "--json")
    assert published.returncode == 0, published.stderr
    (row,) = json.loads(published.stdout)
    assert row["state"] == "published"
    assert row["channel"] == "site"
    status = json.loads(herald("post", "status", post_id, "--json").stdout)
    assert status == [row]
    assert len(list(tmp_path.glob("*.md"))) == 1


@ON_SQLITE
def test_slots_and_queue_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    post_id = given_post("Queued")

    no_slots = herald("post", "queue", post_id, "--to", "site")
    assert no_slots.returncode == 1
    assert "has no posting slots" in no_slots.stderr

    bad = herald("channel", "slots", "site", "--slot", "someday 25:00")
    assert bad.returncode != 0
    configured = herald(
        "channel", "slots", "site", "--timezone", "Europe/Warsaw",
        "--slot", "mon,wed 09:00", "--slot", "daily 18:30", "--json",
    )  # fmt: skip
    assert configured.returncode == 0, configured.stderr
    config = json.loads(configured.stdout)
    assert config["timezone"] == "Europe/Warsaw"
    assert "mon 09:00" in config["slots"] and "sun 18:30" in config["slots"]
    assert len(config["slots"]) == 9

    queued = herald("post", "queue", post_id, "--to", "site", "--json")
    assert queued.returncode == 0, queued.stderr
    (row,) = json.loads(queued.stdout)
    assert row["state"] == "scheduled"
    assert row["timezone"] == "Europe/Warsaw"
    assert row["local_at"][11:16] in ("09:00", "18:30")
    again = json.loads(herald("post", "queue", post_id, "--to", "site", "--json").stdout)
    assert again[0]["already_there"] is True
    assert again[0]["at"] == row["at"]


@ON_SQLITE
def test_review_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    first, second = given_post("First"), given_post("Second")
    for post_id in (first, second):
        sent = herald("post", "submit", post_id, "--json")
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["state"] == "in_review"
    reviewer = herald("user", "create", "--email", "rita@example.com", "--role", "reviewer")
    assert reviewer.returncode == 0, reviewer.stderr
    assert "Created reviewer" in reviewer.stdout

    waiting = json.loads(herald("post", "review", "--json").stdout)
    assert [(row["title"], row["agent"]) for row in waiting] == [("First", None), ("Second", None)]

    both = herald("post", "approve", first, "--queue", "--at", "2030-01-01T10:00Z")
    assert both.returncode == 1
    assert "give --queue or --at, not both" in both.stderr
    approved = herald(
        "post", "approve", first, "--channel", "site", "--at", "2030-01-07 10:00 Europe/Warsaw",
        "--by", "rita@example.com", "--json",
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    result = json.loads(approved.stdout)
    assert result["post"]["reviewed_by_email"] == "rita@example.com"
    assert result["post"]["review_decision"] == "approved"
    assert result["deliveries"] == [
        {
            "channel": "site",
            "channel_id": result["deliveries"][0]["channel_id"],
            "state": "scheduled",
            "due_at": "2030-01-07T09:00:00+00:00",
        }
    ]
    again = herald("post", "approve", first)
    assert again.returncode == 1
    assert "already approved by rita@example.com" in again.stderr

    no_note = herald("post", "reject", second, "--note", " ")
    assert no_note.returncode == 1
    assert "say why" in no_note.stderr
    rejected = herald("post", "reject", second, "--note", "Needs a source.", "--json")
    assert rejected.returncode == 0, rejected.stderr
    assert json.loads(rejected.stdout)["review_note"] == "Needs a source."
    assert "Nothing waits for review." in herald("post", "review").stdout


@ON_SQLITE
def test_lists_show_whole_ids_and_commands_take_a_unique_prefix(
    db_backend: str, tmp_path: Path
) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    post_id = given_post("A title long enough to have to wrap in a table eighty columns wide")
    other = given_post("Another")
    channel_id = json.loads(herald("channel", "list", "--json").stdout)[0]["id"]

    # Not a terminal: rich draws 80 columns wide, and the ids still fit whole.
    listed = herald("post", "list")
    assert listed.returncode == 0, listed.stderr
    assert post_id in listed.stdout and other in listed.stdout
    assert channel_id in herald("channel", "list").stdout

    status = herald("post", "status", post_id[:8], "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == []
    # The channel by a prefix too: the queue then fails for want of slots, not of a channel.
    queued = herald("post", "queue", post_id[:6], "--to", channel_id[:6])
    assert queued.returncode == 1
    assert "has no posting slots" in queued.stderr

    short = herald("post", "status", post_id[:3])
    assert short.returncode == 1
    assert short.stderr.strip() == (
        f"herald: error: '{post_id[:3]}' is too short to name a post: "
        "give at least 4 characters of its id."
    )
    missing = "ffff" if not post_id.startswith("ffff") and not other.startswith("ffff") else "0000"
    unknown = herald("post", "status", missing)
    assert unknown.returncode == 1
    assert f"No post with an id starting '{missing}'" in unknown.stderr


@ON_SQLITE
def test_listings_answer_while_another_process_holds_the_sqlite_writer_lock(
    db_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    post_id = given_post("Read while a worker writes")
    database = make_url(get_settings().effective_database_url).database
    lock_path = writer_lock_path(database)
    assert lock_path is not None
    # A writer that waits 1 s for the lock, not the default: the point is that a
    # listing does not wait for it at all.
    monkeypatch.setenv("HERALD_DATABASE_WRITE_WAIT_SECONDS", "1")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a worker's write transaction holds it
        listed = herald("post", "list")
        channels = herald("channel", "list", "--json")
        # A command that writes still waits its turn, and says so when it gives up.
        written = herald("post", "create", "--title", "blocked")
    finally:
        os.close(fd)
    assert listed.returncode == 0, listed.stderr
    assert post_id in listed.stdout
    assert channels.returncode == 0, channels.stderr
    assert [c["name"] for c in json.loads(channels.stdout)] == ["site"]
    assert written.returncode == 1
    assert "busy" in written.stderr.lower(), written.stderr
