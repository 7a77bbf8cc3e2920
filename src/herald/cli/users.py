"""`herald user`: create users and set their passwords."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from herald.cli._common import CliError, JsonOpt, out, print_json

app = typer.Typer(help="Manage users.", no_args_is_help=True)


@app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="The user's email (their login).")],
    password: Annotated[
        str | None,
        typer.Option(help="At least 8 characters. Unset: one is generated and printed."),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Make the user a workspace admin (--role admin).")
    ] = False,
    role: Annotated[
        str | None,
        typer.Option(
            help="admin, member or reviewer (reads everything and approves or rejects "
            "drafts, but manages no channels, sources or agents) [default: member]."
        ),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace name; created if missing [default: the first].")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user."""
    from herald.core.db import session_scope  # noqa: PLC0415 - start-up (see _common)
    from herald.users.models import Role  # noqa: PLC0415 - start-up (see _common)
    from herald.users.service import create_user  # noqa: PLC0415 - start-up (see _common)

    try:
        chosen = Role(role.strip().lower()) if role is not None else None
    except ValueError:
        raise CliError(f"--role must be one of: {', '.join(r.value for r in Role)}") from None
    if admin and chosen not in (None, Role.ADMIN):
        raise CliError(f"--admin and --role {chosen} disagree; give one of them")
    with session_scope() as session:
        user, pw = create_user(
            session,
            email=email,
            password=password,
            role=chosen or (Role.ADMIN if admin else Role.MEMBER),
            workspace_name=workspace,
        )
        data = {
            "id": str(user.id),
            "email": user.email,
            "role": str(user.role),
            "workspace": user.workspace.name,
        }
    if password is None:
        data["password"] = pw
    if as_json:
        print_json(data)
        return
    out.print(f"Created {data['role']} [bold]{data['email']}[/] in workspace {data['workspace']}.")
    if password is None:
        out.print(f"Password (shown once): [bold]{pw}[/]")


@app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Option(help="The user's email (their login).")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of stdin (for scripts); "
            "otherwise it is asked for twice, without echo.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Give a user a new password. Signs out every login of theirs; their personal API
    tokens keep working."""
    from herald.core.db import session_scope  # noqa: PLC0415 - start-up (see _common)
    from herald.users.service import set_password  # noqa: PLC0415 - start-up (see _common)

    password = _read_stdin_password() if password_stdin else _ask_new_password()
    with session_scope() as session:
        result = set_password(session, email=email, password=password)
    if as_json:
        print_json({"email": result.email, "sessions_signed_out": result.sessions_signed_out})
        return
    out.print(
        f"Password changed for [bold]{result.email}[/]; signed out "
        f"{result.sessions_signed_out} login(s). Their personal API tokens still work."
    )


def _read_stdin_password() -> str:
    # Only the line ending goes: spaces may be part of a password.
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise CliError("no password on stdin (--password-stdin reads its first line)")
    return password


def _ask_new_password() -> str:
    from herald.users.schemas import check_password_length  # noqa: PLC0415 - start-up (see _common)

    if not sys.stdin.isatty():
        raise CliError("stdin is not a terminal to ask on; pass the password with --password-stdin")

    def checked(value: str) -> str:
        try:
            return check_password_length(value)
        except ValueError as exc:
            # For hidden input the prompt only says "invalid" (the value might be in the
            # message); ours holds no value, so say why. Typer's own error (it carries its
            # own click, whose errors the prompt does not catch) makes it ask again.
            typer.echo(f"Error: {exc}", err=True)
            raise typer.BadParameter(str(exc)) from None

    password: str = typer.prompt(
        "New password", hide_input=True, confirmation_prompt="Repeat it", value_proc=checked
    )
    return password
