"""`herald channel` (and the posts a channel is for): adding, listing, refusing bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import ON_SQLITE, given_user, herald

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
