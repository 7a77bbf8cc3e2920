"""The `herald` entry point: help on every level, and every error as one line on stderr."""

from __future__ import annotations

import subprocess
import sys

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
