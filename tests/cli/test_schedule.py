"""`herald post schedule` and `herald schedule list`: a delivery at an exact time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import ON_SQLITE, given_folder_channel, given_post, given_user, herald

pytestmark = pytest.mark.integration  # `herald` processes on the real database


@ON_SQLITE
def test_schedule_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    given_user("ann@example.com", admin=True)
    given_folder_channel("site", tmp_path)
    post_id = given_post("Later")
    scheduled = herald(
        "post", "schedule", post_id, "--at", "2099-12-03 10:00 Europe/Warsaw", "--to", "site",
        "--json",
    )  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    assert json.loads(scheduled.stdout)[0]["state"] == "scheduled"
    (row,) = json.loads(herald("schedule", "list", "--json").stdout)
    assert row["due_at"] == "2099-12-03T09:00:00+00:00"
    assert row["post"] == "Later"
    naive = herald("post", "schedule", post_id, "--at", "2099-12-03 10:00", "--to", "site")
    assert naive.returncode == 1
    assert "needs an offset" in naive.stderr
