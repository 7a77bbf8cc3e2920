"""The `herald` entry point: help on every level, and every error as one line on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.runner import ON_SQLITE, herald

pytestmark = pytest.mark.integration  # `herald` processes on the real database


@ON_SQLITE
def test_errors_are_one_line_on_stderr(db_backend: str) -> None:
    bad_email = herald("user", "create", "--email", "nope")
    assert bad_email.returncode == 1
    assert bad_email.stderr.count("\n") == 1
    assert "not a valid email" in bad_email.stderr

    missing_option = herald("user", "create")
    assert missing_option.returncode == 2
    assert missing_option.stderr.count("\n") == 1
    assert "--email" in missing_option.stderr

    no_user = herald("channel", "list")
    assert no_user.returncode == 1
    assert "herald user create" in no_user.stderr


@pytest.mark.parametrize(
    "command", [[], ["user"], ["user", "set-password"], ["post", "list"], ["up"]]
)
def test_help_everywhere(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "herald", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_a_database_without_tables_is_one_line_that_says_what_to_run(tmp_path: Path) -> None:
    env = {**os.environ, "HERALD_DATA_DIR": str(tmp_path), "HERALD_DATABASE_URL": ""}
    env.pop("HERALD_DATABASE_URL")
    never_migrated = subprocess.run(
        [sys.executable, "-m", "herald", "channel", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert never_migrated.returncode == 1
    assert never_migrated.stderr.count("\n") == 1, never_migrated.stderr
    assert never_migrated.stderr.startswith("herald: error: the database has no tables yet")
    assert "herald migrate" in never_migrated.stderr
