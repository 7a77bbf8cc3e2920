"""Start-up guards: what `herald --help` and a simple command import. A new import at
the top of a command module that drags in the web stack, the ORM or Celery fails here
(start-up time itself is measured in bench/cli_startup.py, never asserted in a test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.core
from typer.testing import CliRunner

from herald.cli import GROUPS, app, app_for, build_app

HEAVY = ("fastapi", "starlette", "sqlalchemy", "celery", "kombu", "redis", "httpx", "uvicorn")


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after ``statement``."""
    probe = (
        f"import json, sys; {statement}; "
        f"print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_command_line_loads_no_server_stack_to_show_its_help() -> None:
    # `herald` is `herald.cli:main`: importing the package is what --help costs.
    heavy = (*HEAVY, "pydantic", "pydantic_settings", "cryptography", "herald.core.settings")
    assert loaded_after("import herald.cli", heavy) == []


def test_the_probe_sees_an_import() -> None:
    # The guard above can fail: the same probe finds what a statement did import.
    assert loaded_after("import herald.core.errors", ("sqlalchemy", "fastapi")) == ["sqlalchemy"]


@pytest.mark.parametrize("statement", ["import herald.models", "import herald.posts.service"])
def test_a_database_command_loads_no_web_app_nor_celery(statement: str) -> None:
    # What `herald post list` needs (the ORM, the post service) leaves FastAPI and Celery
    # to the processes that serve and work.
    assert loaded_after(statement, ("fastapi", "celery", "kombu", "uvicorn", "herald.worker")) == []


# What a listing must not load: the web app, Celery, the guarded HTTP client, the Markdown
# and readability stack that measures a post's SEO, (for posts) every other model, which
# only a flush needs, and what only writes need: users' passwords and email checks
# (argon2, email-validator: users.principal has whom a command acts as), Pillow (an
# upload's check), and for channels their service (adapters, credentials, jobs, webhooks:
# channels.reads lists them).
WRITES_ONLY = ("herald.users.service", "argon2", "email_validator", "PIL")
LISTINGS = {
    "post": ("fastapi", "celery", "httpx", "markdown_it", "herald.agents.models", *WRITES_ONLY),
    "channel": (
        "fastapi",
        "celery",
        "httpx",
        "markdown_it",
        "herald.channels.service",
        "herald.jobs.service",
        "herald.adapters.registry",
        "herald.core.crypto",
        *WRITES_ONLY,
    ),
}


@pytest.mark.parametrize("group", sorted(LISTINGS))
def test_a_listing_command_loads_only_what_it_reads(tmp_path: Path, group: str) -> None:
    # `herald <group> list` against a real (SQLite) database, in a fresh interpreter.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATA_DIR"] = str(tmp_path)
    herald = [sys.executable, "-c", "from herald.cli import main; main()"]
    for args in (["migrate"], ["user", "create", "--email", "a@example.com", "--admin"]):
        subprocess.run([*herald, *args], env=env, capture_output=True, timeout=120, check=True)
    unwanted = LISTINGS[group]
    probe = (
        f"import json, sys; sys.argv = ['herald', {group!r}, 'list', '--json']; "
        "from herald.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {list(unwanted)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "[]", done.stdout  # the (empty) listing itself
    assert json.loads(lines[-1]) == [], done.stdout


def _answers(app: typer.Typer, args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, prog_name="herald")
    return result.exit_code, result.output


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_group_alone_answers_as_under_the_whole_command(group: str) -> None:
    # `herald <group> ...` runs an app holding that group alone (build_app): its help,
    # usage lines and errors must be what the whole `herald` says.
    alone = build_app(group)
    whole = typer.main.get_command(app)
    assert isinstance(whole, typer.core.TyperGroup)
    commands = whole.commands[group]
    assert isinstance(commands, typer.core.TyperGroup)
    cases = [[group], [group, "--help"], [group, "no-such-command"]]
    cases += [[group, name, "--help"] for name in commands.commands]
    cases += [[group, name, "--no-such-option"] for name in commands.commands]
    for args in cases:
        assert _answers(alone, args) == _answers(app, args), args
    assert len(_answers(app, [group, "--help"])[1].splitlines()) > 3  # a real help page


def _command_names(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return set(group.commands)


def test_only_a_named_group_is_built_alone() -> None:
    assert _command_names(app_for(["post", "list"])) == {"post"}
    assert _command_names(app_for(["channel"])) == {"channel"}
    # Anything else gets every command: the help, a server command, an option, a typo.
    for args in ([], ["--help"], ["api", "--port", "1"], ["pots", "list"], ["--post"]):
        assert app_for(args) is app, args
    assert {"api", "up", "research", "usage", *GROUPS} <= _command_names(app)
