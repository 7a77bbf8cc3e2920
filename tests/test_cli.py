"""The `herald` command as a user runs it: a real process against the test database."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest


def herald_env() -> dict[str, str]:
    from herald.core.settings import get_settings

    settings = get_settings()
    return {
        **os.environ,
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.effective_database_url,
    }


def herald(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        capture_output=True,
        text=True,
        env=herald_env(),
        input=stdin,
        timeout=60,
        check=False,
    )


def test_user_create_generates_and_prints_a_password(db_backend: str) -> None:
    created = herald("user", "create", "--email", "Ann@Example.com", "--admin", "--json")
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert data["email"] == "ann@example.com"
    assert data["role"] == "admin"
    assert data["workspace"] == "default"
    assert len(data["password"]) >= 16

    again = herald("user", "create", "--email", "ann@example.com")
    assert again.returncode == 1
    assert again.stderr == "herald: error: A user with email ann@example.com already exists.\n"

    other = herald(
        "user",
        "create",
        "--email",
        "bob@example.com",
        "--workspace",
        "team-b",
        "--password",
        "long enough pw",
    )
    assert other.returncode == 0
    assert "team-b" in other.stdout and "long enough pw" not in other.stdout


def test_user_create_accepts_the_names_herald_itself_uses(db_backend: str) -> None:
    created = herald("user", "create", "--email", "second@herald.localhost", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["email"] == "second@herald.localhost"

    malformed = herald("user", "create", "--email", "second@@herald.localhost")
    assert malformed.returncode == 1
    assert malformed.stderr.startswith(
        "herald: error: 'second@@herald.localhost' is not a valid email address: "
    )
    assert malformed.stderr.count("\n") == 1
    short = herald("user", "create", "--email", "third@herald.localhost", "--password", "short")
    assert short.returncode == 1
    assert short.stderr == "herald: error: The password must be at least 8 characters.\n"


def _password_works(email: str, password: str) -> bool:
    from sqlalchemy import select

    from herald.core.db import session_scope
    from herald.core.security import verify_password
    from herald.users.models import User

    with session_scope() as session:
        stored = session.scalar(select(User.password_hash).where(User.email == email))
    return verify_password(password, stored)


def test_set_password_from_stdin_for_scripts(db_backend: str) -> None:
    assert herald("user", "create", "--email", "ann@herald.localhost").returncode == 0

    changed = herald(
        "user", "set-password", "--email", "Ann@herald.localhost", "--password-stdin", "--json",
        stdin="a new pass phrase\n",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "email": "ann@herald.localhost",
        "sessions_signed_out": 0,
    }
    # Only the line ending is dropped: spaces are part of a password.
    assert _password_works("ann@herald.localhost", "a new pass phrase")

    for args, stdin, message in [
        (["--email", "ghost@herald.localhost"], "long enough\n", "No user with email"),
        (["--email", "ann@herald.localhost"], "short\n", "at least 8 characters"),
        (["--email", "ann@herald.localhost"], "", "no password on stdin"),
    ]:
        refused = herald("user", "set-password", *args, "--password-stdin", stdin=stdin)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith("herald: error: ") and message in refused.stderr
        assert refused.stderr.count("\n") == 1
        assert refused.stdout == ""
    assert _password_works("ann@herald.localhost", "a new pass phrase")

    # Without a terminal to prompt on, it says how to pass the password instead of hanging.
    no_tty = herald("user", "set-password", "--email", "ann@herald.localhost", stdin="")
    assert no_tty.returncode == 1
    assert "--password-stdin" in no_tty.stderr and no_tty.stderr.count("\n") == 1


class Terminal:
    """A command on a pseudo-terminal of its own, as when a person types at it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()

        def take_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # /dev/tty is this pty, as getpass expects

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "herald", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=herald_env(),
            preexec_fn=take_terminal,  # noqa: PLW1509 - the test process forks nothing else
        )
        os.close(slave)
        self.output = ""

    def expect(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.output!r}"
            if select.select([self.master], [], [], left)[0]:
                self.output += self._read()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        while select.select([self.master], [], [], 0)[0] and (chunk := self._read()):
            self.output += chunk
        os.close(self.master)
        return code

    def _read(self) -> str:
        try:
            return os.read(self.master, 4096).decode(errors="replace")
        except OSError:  # EIO: the other side is closed
            return ""


def test_set_password_prompts_twice_without_echo(db_backend: str) -> None:
    assert herald("user", "create", "--email", "ann@herald.localhost").returncode == 0

    term = Terminal("user", "set-password", "--email", "ann@herald.localhost")
    term.expect(r"New password: ")
    term.type("typed at a terminal\n")
    term.expect(r"Repeat it: ")
    term.type("typed at a terminal\n")
    assert term.finish() == 0, term.output
    assert "Password changed for ann@herald.localhost" in re.sub(r"\x1b\[[\d;]*m", "", term.output)
    assert "typed at a terminal" not in term.output  # never echoed
    assert _password_works("ann@herald.localhost", "typed at a terminal")

    mistyped = Terminal("user", "set-password", "--email", "ann@herald.localhost")
    mistyped.expect(r"New password: ")
    mistyped.type("first version!\n")
    mistyped.expect(r"Repeat it: ")
    mistyped.type("second version\n")
    mistyped.expect(r"do not match")
    mistyped.proc.send_signal(2)  # the person gives up with Ctrl-C
    assert mistyped.finish() == 130
    assert _password_works("ann@herald.localhost", "typed at a terminal")


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


def test_channels_and_posts_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    assert herald("user", "create", "--email", "ann@example.com", "--admin").returncode == 0

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


@pytest.mark.integration
def test_publish_from_the_command_line_with_live_status(
    db_backend: str, tmp_path: Path, redis_broker: str
) -> None:
    from tests.workers import running_worker

    assert herald("user", "create", "--email", "ann@example.com", "--admin").returncode == 0
    herald(
        "channel",
        "add",
        "--platform",
        "folder",
        "--name",
        "site",
        "--credentials",
        json.dumps({"path": str(tmp_path)}),
    )
    post = json.loads(herald("post", "create", "--title", "Live", "--json").stdout)
    unknown = herald("post", "publish", post["id"], "--to", "nope")
    assert unknown.returncode == 1
    assert "no channel named 'nope'" in unknown.stderr

    with running_worker():
        published = herald("post", "publish", post["id"], "--to", "site", "--json")
    assert published.returncode == 0, published.stderr
    (row,) = json.loads(published.stdout)
    assert row["state"] == "published"
    assert row["channel"] == "site"
    status = json.loads(herald("post", "status", post["id"], "--json").stdout)
    assert status == [row]
    assert len(list(tmp_path.glob("*.md"))) == 1


def test_schedule_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    assert herald("user", "create", "--email", "ann@example.com", "--admin").returncode == 0
    herald(
        "channel", "add", "--platform", "folder", "--name", "site",
        "--credentials", json.dumps({"path": str(tmp_path)}),
    )  # fmt: skip
    post = json.loads(herald("post", "create", "--title", "Later", "--json").stdout)
    scheduled = herald(
        "post", "schedule", post["id"], "--at", "2099-12-03 10:00 Europe/Warsaw", "--to", "site",
        "--json",
    )  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    assert json.loads(scheduled.stdout)[0]["state"] == "scheduled"
    (row,) = json.loads(herald("schedule", "list", "--json").stdout)
    assert row["due_at"] == "2099-12-03T09:00:00+00:00"
    assert row["post"] == "Later"
    naive = herald("post", "schedule", post["id"], "--at", "2099-12-03 10:00", "--to", "site")
    assert naive.returncode == 1
    assert "needs an offset" in naive.stderr


def test_slots_and_queue_from_the_command_line(db_backend: str, tmp_path: Path) -> None:
    assert herald("user", "create", "--email", "ann@example.com", "--admin").returncode == 0
    herald(
        "channel", "add", "--platform", "folder", "--name", "site",
        "--credentials", json.dumps({"path": str(tmp_path)}),
    )  # fmt: skip
    post = json.loads(herald("post", "create", "--title", "Queued", "--json").stdout)

    no_slots = herald("post", "queue", post["id"], "--to", "site")
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

    queued = herald("post", "queue", post["id"], "--to", "site", "--json")
    assert queued.returncode == 0, queued.stderr
    (row,) = json.loads(queued.stdout)
    assert row["state"] == "scheduled"
    assert row["timezone"] == "Europe/Warsaw"
    assert row["local_at"][11:16] in ("09:00", "18:30")
    again = json.loads(herald("post", "queue", post["id"], "--to", "site", "--json").stdout)
    assert again[0]["already_there"] is True
    assert again[0]["at"] == row["at"]
