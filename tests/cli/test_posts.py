"""`herald post`: publishing now with live status, and queueing into a channel's slots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
