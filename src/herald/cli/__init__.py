"""The `herald` command. Thin: parse, call a service, print.

One module per command group (`users`, `channels`, `posts`, `schedule`, `keys`, `sources`,
`providers`, `agents`, `usage`), the processes in `server`, and what they share in `_common`.

Start-up: importing this package (what `herald --help` does) must not load FastAPI,
SQLAlchemy, Celery or the settings (tests/cli/test_startup.py checks): :func:`main`
tells the errors a command may raise apart by looking them up in ``sys.modules``, since
an exception of a class whose module was never imported cannot have been raised.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from herald.cli import (
    agents,
    backup,
    channels,
    keys,
    posts,
    providers,
    research,
    schedule,
    server,
    sources,
    usage,
    users,
    webhooks,
)
from herald.cli._common import CliError

# The command groups, by the name typed after `herald`.
GROUPS: dict[str, typer.Typer] = {
    "user": users.app,
    "channel": channels.app,
    "post": posts.app,
    "keys": keys.app,
    "backup": backup.app,
    "schedule": schedule.app,
    "source": sources.app,
    "provider": providers.app,
    "agent": agents.app,
    "webhook": webhooks.app,
}


def build_app(group: str | None = None) -> typer.Typer:
    """The `herald` command: every command, or (``group``) only that group's.

    Typer turns a command into a click command when the app is called, reading every
    parameter's annotations, for every command the app holds: ~50 of them, a fifth of
    `herald post list`'s start-up. A command line that names a group needs that group
    alone, and its help, its usage lines and its errors are the same under either app."""
    app = typer.Typer(
        help="Herald: write once, publish everywhere, reliably.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    if group is not None:
        app.add_typer(GROUPS[group], name=group)
        return app
    for command in server.COMMANDS:
        app.command()(command)
    for name in ("user", "channel", "post", "keys", "backup", "schedule", "source", "provider"):
        app.add_typer(GROUPS[name], name=name)
    app.command("research")(research.research)
    app.add_typer(GROUPS["agent"], name="agent")
    app.command("usage")(usage.usage)
    app.add_typer(GROUPS["webhook"], name="webhook")
    return app


app = build_app()


def app_for(args: list[str]) -> typer.Typer:
    """The app that runs ``args`` (what follows `herald`): the group they name alone, or
    every command (no group named: help, a server command, a typo)."""
    return build_app(args[0]) if args and args[0] in GROUPS else app


def main() -> None:
    try:
        code = app_for(sys.argv[1:])(standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("herald: aborted\n")
        sys.exit(130)
    except typer.TyperException as exc:
        # Typer's own usage errors (a missing option, a bad value), as one line.
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        code = int(getattr(exc, "exit_code", 2))
        hint = " (see --help)" if code == 2 else ""
        sys.stderr.write(f"herald: error: {message}{hint}\n")
        sys.exit(code)
    except CliError as exc:
        sys.stderr.write(f"herald: error: {exc}\n")
        sys.exit(1)
    except Exception as exc:
        problem = one_line_problem(exc)
        if problem is None:
            raise  # a bug: its traceback is what a report needs
        sys.stderr.write(f"herald: error: {problem}\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# The errors a command reports in one line: (module, class name) → how to say it.
_ONE_LINE: tuple[tuple[str, str], ...] = (
    ("herald.core.errors", "HeraldError"),
    ("herald.core.settings", "ConfigurationError"),
    ("herald.core.crypto", "CredentialsUnreadable"),
)


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """The class if its module has been imported; None otherwise (nothing can have raised
    it then), so telling errors apart imports nothing."""
    found: Any = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def one_line_problem(exc: BaseException) -> str | None:
    """What a person can act on, in one line; None for a bug (its traceback is shown)."""
    for module, name in _ONE_LINE:
        cls = _loaded(module, name)
        if cls is not None and isinstance(exc, cls):
            return str(getattr(exc, "message", None) or exc)
    if isinstance(exc, OSError):
        return str(exc)
    return database_problem(exc)


def database_problem(exc: BaseException) -> str | None:
    """A database the command could not use, in one line; None for anything else."""
    dbapi_error = _loaded("sqlalchemy.exc", "DBAPIError")
    if dbapi_error is None or not isinstance(exc, dbapi_error):
        return None
    orig = getattr(exc, "orig", None)
    lines = str(orig).strip().splitlines() or [type(orig).__name__]
    detail = lines[0]
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        return (
            f"the database has no tables yet ({detail}); run `herald migrate` "
            "(`herald up` migrates by itself)"
        )
    return f"the database could not be used: {detail}"
