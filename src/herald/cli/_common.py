"""What every command group shares: the console, JSON output, the options most commands
take, and the one error a command raises for a mistake in what was typed.

Start-up: `herald --help` imports every group module, so a group imports at its top only
what is cheap (typer, rich, pydantic). Services, models and schemas (they load the ORM),
Celery, the web app and uvicorn are imported inside the command that uses them, each
marked `# noqa: PLC0415` with "start-up": at the top they took `herald --help` from 0.8 s
to 2.0 s of CPU (1.6 s with the services alone; best of 5, byte-code cached).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column

from herald.core.exceptions import HeraldException

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from herald.users.principal import Principal

out = Console()


class CliError(HeraldException):
    """A mistake in what the user typed; printed as one line."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WorkspaceOpt = Annotated[str | None, typer.Option(help="Workspace name [default: the first].")]
ChannelsOpt = Annotated[
    list[str], typer.Option("--to", help="Channel name, id or unique id prefix; repeatable.")
]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def load_json_arg(value: str, name: str) -> dict[str, Any]:
    """A JSON object given inline, or as @path to a file holding it."""
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"{name} must be a JSON object")
    return data


def id_column(*, fold: bool = False) -> Column:
    """A table's id column: always whole, so an id can be copied from any list; any unique
    prefix of it is accepted back (see :func:`resolve_post_id`). On one line, the other
    columns wrapping; with ``fold`` (a table of many columns, whose rows are named by
    name anyway), folded over lines where 80 columns leave it too little room."""
    if fold:
        return Column("id", overflow="fold")
    return Column("id", no_wrap=True, min_width=36)


def resolve_post_id(ref: str, workspace: str | None) -> uuid.UUID:
    """The id of the workspace's post that ``ref`` names: its whole id or a unique prefix
    of it, git-style (:func:`herald.core.db.resolve_id`)."""
    from herald.core.db import resolve_id  # noqa: PLC0415 - start-up (see above)
    from herald.posts.models import Post  # noqa: PLC0415 - start-up (see above)

    with workspace_session(workspace) as (session, principal):
        return resolve_id(session, Post, principal.workspace_id, ref, "post")


@contextmanager
def workspace_session(
    workspace: str | None, *, reads_only: bool = False
) -> Iterator[tuple[Session, Principal]]:
    """One transaction, acting as the workspace's default user (its first admin, see
    `default_principal`): the command line has no login and runs with the server's own
    access. ``reads_only``: a read transaction (``core.db.read_scope``), for a command
    that only reads: on SQLite it neither takes nor waits for the one writer's lock, so a
    listing answers while a worker writes."""
    from sqlalchemy import event  # noqa: PLC0415 - start-up (see above)

    from herald.core.db import read_scope, session_scope  # noqa: PLC0415 - start-up
    from herald.users.principal import default_principal  # noqa: PLC0415 - start-up (see above)

    with read_scope() if reads_only else session_scope() as session:
        # A flush needs every model, so that every foreign key resolves (posts.agent_id
        # names agents, which a posts command does not import otherwise); a command that
        # only reads never flushes, and skips importing them (a fifth of `post list`).
        event.listen(session, "before_flush", _import_every_model)
        yield session, default_principal(session, workspace)


def _import_every_model(*_: object) -> None:
    import herald.models  # noqa: F401, PLC0415 - start-up (see workspace_session)
