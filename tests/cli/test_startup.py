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
# and readability stack that measures a post's SEO, and (for posts) every other model, which
# only a flush needs.
LISTINGS = {
    "post": ("fastapi", "celery", "httpx", "markdown_it", "herald.agents.models"),
    "channel": ("fastapi", "celery", "httpx", "markdown_it"),
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
