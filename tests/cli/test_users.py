"""`herald user`: creating users, and setting a password from a script or a terminal."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli.runner import ON_SQLITE, Terminal, given_user, herald, password_works

pytestmark = pytest.mark.integration  # `herald` processes on the real database


def test_user_create_generates_and_prints_a_password(db_backend: str) -> None:
    # On both backends: the one command run as its own process on PostgreSQL too.
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


@ON_SQLITE
def test_user_create_takes_a_role(db_backend: str) -> None:
    reviewer = herald(
        "user", "create", "--email", "rev@example.com", "--role", "reviewer", "--json"
    )
    assert reviewer.returncode == 0, reviewer.stderr
    assert json.loads(reviewer.stdout)["role"] == "reviewer"
    admin = herald("user", "create", "--email", "adm@example.com", "--role", "Admin", "--json")
    assert json.loads(admin.stdout)["role"] == "admin"
    unknown = herald("user", "create", "--email", "boss@example.com", "--role", "boss")
    assert unknown.returncode == 1
    assert unknown.stderr == "herald: error: --role must be one of: admin, member, reviewer\n"
    both = herald("user", "create", "--email", "two@example.com", "--admin", "--role", "reviewer")
    assert both.returncode == 1
    assert "--admin and --role reviewer disagree" in both.stderr


@ON_SQLITE
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


@ON_SQLITE
def test_set_password_from_stdin_for_scripts(db_backend: str) -> None:
    given_user("ann@herald.localhost")

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
    assert password_works("ann@herald.localhost", "a new pass phrase")

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
    assert password_works("ann@herald.localhost", "a new pass phrase")

    # Without a terminal to prompt on, it says how to pass the password instead of hanging.
    no_tty = herald("user", "set-password", "--email", "ann@herald.localhost", stdin="")
    assert no_tty.returncode == 1
    assert "--password-stdin" in no_tty.stderr and no_tty.stderr.count("\n") == 1


@ON_SQLITE
def test_set_password_prompts_twice_without_echo(db_backend: str) -> None:
    given_user("ann@herald.localhost")

    term = Terminal("user", "set-password", "--email", "ann@herald.localhost")
    term.expect(r"New password: ")
    term.type("typed at a terminal\n")
    term.expect(r"Repeat it: ")
    term.type("typed at a terminal\n")
    assert term.finish() == 0, term.output
    assert "Password changed for ann@herald.localhost" in re.sub(r"\x1b\[[\d;]*m", "", term.output)
    assert "typed at a terminal" not in term.output  # never echoed
    assert password_works("ann@herald.localhost", "typed at a terminal")

    mistyped = Terminal("user", "set-password", "--email", "ann@herald.localhost")
    mistyped.expect(r"New password: ")
    mistyped.type("first version!\n")
    mistyped.expect(r"Repeat it: ")
    mistyped.type("second version\n")
    mistyped.expect(r"do not match")
    mistyped.proc.send_signal(2)  # the person gives up with Ctrl-C
    assert mistyped.finish() == 130
    assert password_works("ann@herald.localhost", "typed at a terminal")


@ON_SQLITE
def test_a_short_password_at_the_prompt_is_said_and_asked_again(db_backend: str) -> None:
    given_user("ann@herald.localhost")

    term = Terminal("user", "set-password", "--email", "ann@herald.localhost")
    term.expect(r"New password: ")
    term.type("short\n")
    term.expect(r"at least 8 characters[\s\S]*New password: ")
    term.type("long enough now\n")
    term.expect(r"Repeat it: ")
    term.type("long enough now\n")
    assert term.finish() == 0, term.output
    assert password_works("ann@herald.localhost", "long enough now")
