"""The `herald` command. Thin: parse, call a service, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from herald.core.errors import HeraldError, HeraldException
from herald.core.settings import ConfigurationError, get_settings
from herald.runtime import START_TIMEOUT

app = typer.Typer(
    help="Herald: write once, publish everywhere, reliably.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
channel_app = typer.Typer(help="Manage channels (accounts on platforms).", no_args_is_help=True)
post_app = typer.Typer(help="Write and list posts.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for channel credentials.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(channel_app, name="channel")
app.add_typer(post_app, name="post")
app.add_typer(keys_app, name="keys")

out = Console()


class CliError(HeraldException):
    """A mistake in what the user typed; printed as one line."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- processes --------------------------------------------------------------------


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Listen address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: 8000].")] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show every process's output here instead of in <data dir>/logs/.",
        ),
    ] = False,
    start_timeout: Annotated[
        float,
        typer.Option(min=1, help="Seconds to wait for everything to be healthy before giving up."),
    ] = START_TIMEOUT,
) -> None:
    """Start everything on this machine: API + dashboard, worker, scheduler (and Redis).

    The address and how to sign in are printed once everything is healthy."""
    from herald.runtime.supervisor import run_up

    settings = get_settings()
    code = run_up(
        host or settings.host,
        port or settings.port,
        verbose=verbose,
        start_timeout=start_timeout,
    )
    raise typer.Exit(code)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Serve the API and the dashboard (uvicorn)."""
    import uvicorn

    from herald.app import create_app
    from herald.core import heap
    from herald.core.logging import configure_logging
    from herald.core.proxies import uvicorn_proxy_options

    settings = get_settings()
    configure_logging(settings.log_level)
    application = create_app()
    # Start-up is done (routes, schemas, models): the collector can leave it alone.
    heap.freeze()
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        **uvicorn_proxy_options(settings),
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Processes/threads.")] = None,
    pool: Annotated[str | None, typer.Option(help="prefork, threads or solo.")] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated; default all.")] = None,
) -> None:
    """Run a Celery worker on Herald's queues."""
    from herald.core.logging import configure_logging
    from herald.worker import QUEUES
    from herald.worker import app as celery_app

    settings = get_settings()
    configure_logging(settings.log_level)
    argv = ["worker", "-Q", queues or ",".join(QUEUES), f"--loglevel={settings.log_level}"]
    if concurrency or settings.worker_concurrency:
        argv.append(f"--concurrency={concurrency or settings.worker_concurrency}")
    argv.append(f"--pool={pool or settings.worker_pool}")
    celery_app.worker_main(argv)


@app.command()
def beat() -> None:
    """Run the scheduler (Celery beat with Herald's scheduler). A second one (say, on another
    machine) does no harm: due deliveries and periodic runs are claimed in the database."""
    from herald.core.logging import configure_logging
    from herald.worker import app as celery_app

    settings = get_settings()
    configure_logging(settings.log_level)
    _print_beat_schedule()
    celery_app.start(["beat", f"--loglevel={settings.log_level}"])


def _print_beat_schedule() -> None:
    from herald.scheduling.dispatcher import MAX_SLEEP
    from herald.worker import app as celery_app

    table = Table("periodic job", "task", "schedule", title="Herald's scheduler")
    table.add_row(
        "dispatch-due-deliveries", "(in this process)", f"every tick, at most {MAX_SLEEP:g} s apart"
    )
    for name, entry in celery_app.conf.beat_schedule.items():
        table.add_row(name, entry["task"], str(entry["schedule"]))
    out.print(table)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from herald.core.migrate import upgrade

    upgrade()
    out.print("[green]Database is up to date.[/]")


# --- users ------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="The user's email (their login).")],
    password: Annotated[
        str | None,
        typer.Option(help="At least 8 characters. Unset: one is generated and printed."),
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Make the user a workspace admin.")
    ] = False,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace name; created if missing [default: the first].")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user."""
    from herald.core.db import session_scope
    from herald.users.models import Role
    from herald.users.service import create_user

    with session_scope() as session:
        user, pw = create_user(
            session,
            email=email,
            password=password,
            role=Role.ADMIN if admin else Role.MEMBER,
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
        _print_json(data)
        return
    out.print(f"Created {data['role']} [bold]{data['email']}[/] in workspace {data['workspace']}.")
    if password is None:
        out.print(f"Password (shown once): [bold]{pw}[/]")


@user_app.command("set-password")
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
    from herald.core.db import session_scope
    from herald.users.service import set_password

    password = _read_stdin_password() if password_stdin else _ask_new_password()
    with session_scope() as session:
        result = set_password(session, email=email, password=password)
    if as_json:
        _print_json({"email": result.email, "sessions_signed_out": result.sessions_signed_out})
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
    import click

    from herald.users.schemas import check_password_length

    if not sys.stdin.isatty():
        raise CliError("stdin is not a terminal to ask on; pass the password with --password-stdin")

    def checked(value: str) -> str:
        try:
            return check_password_length(value)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None  # said, then asked again

    password: str = typer.prompt(
        "New password", hide_input=True, confirmation_prompt="Repeat it", value_proc=checked
    )
    return password


# --- channels ---------------------------------------------------------------------


def _principal_for(workspace: str | None) -> Any:
    """The CLI acts as the workspace's first admin (it runs with the server's own access)."""
    from sqlalchemy import select

    from herald.core.db import session_scope
    from herald.users.models import Role, User, Workspace
    from herald.users.service import Principal

    with session_scope() as session:
        query = select(User).join(Workspace).order_by(User.role != Role.ADMIN, User.created_at)
        if workspace:
            query = query.where(Workspace.name == workspace)
        user = session.scalars(query.limit(1)).first()
        if user is None:
            where = f"workspace {workspace!r}" if workspace else "any workspace"
            raise CliError(f"no user in {where}; create one with `herald user create`")
        return Principal(user.id, user.workspace_id, user.email, user.role)


def _load_json_arg(value: str, name: str) -> dict[str, Any]:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"{name} must be a JSON object")
    return data


WorkspaceOpt = Annotated[str | None, typer.Option(help="Workspace name [default: the first].")]


@channel_app.command("list")
def channel_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List channels."""
    from herald.channels.schemas import ChannelRead
    from herald.channels.service import list_channels
    from herald.core.db import session_scope

    principal = _principal_for(workspace)
    with session_scope() as session:
        rows = [
            ChannelRead.model_validate(c).model_dump(mode="json")
            for c in list_channels(session, principal)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "platform", "state")
    for row in rows:
        table.add_row(row["id"], row["name"], row["platform"], row["state"])
    out.print(table)


@channel_app.command("add")
def channel_add(
    platform: Annotated[str, typer.Option(help="Platform key, e.g. webhook or folder.")],
    name: Annotated[str, typer.Option(help="A name for this channel.")],
    credentials: Annotated[
        str, typer.Option(help="JSON object, or @file.json. Encrypted at rest.")
    ],
    settings: Annotated[str, typer.Option(help="JSON object, or @file.json.")] = "{}",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a channel."""
    from herald.channels.schemas import ChannelCreate, ChannelRead
    from herald.channels.service import create_channel
    from herald.core.db import session_scope

    principal = _principal_for(workspace)
    body = ChannelCreate(
        platform=platform,
        name=name,
        credentials=_load_json_arg(credentials, "--credentials"),
        settings=_load_json_arg(settings, "--settings"),
    )
    with session_scope() as session:
        row = ChannelRead.model_validate(create_channel(session, principal, body))
    if as_json:
        _print_json(row.model_dump(mode="json"))
        return
    out.print(f"Added channel [bold]{row.name}[/] ({row.platform}): {row.id}")


@channel_app.command("slots")
def channel_slots(
    channel: Annotated[str, typer.Argument(help="Channel id or name.")],
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone the slot times are in, e.g. Europe/Warsaw.")
    ] = None,
    slot: Annotated[
        list[str] | None,
        typer.Option(
            "--slot",
            help='"mon,wed,fri 09:00" (or "daily 18:30"); repeatable. Replaces all slots.',
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a channel's weekly posting slots, or set them with --slot / --timezone."""
    from datetime import time as clock_time

    from herald.core.db import session_scope
    from herald.scheduling import slots as service

    principal = _principal_for(workspace)
    with session_scope() as session:
        from herald.channels.service import get_channel

        (channel_id,) = _resolve_channels(session, principal, [channel])
        row = get_channel(session, principal, channel_id)
        if slot is not None or timezone is not None:
            current = service.get_config(session, principal, row.id)
            zone = timezone or current.timezone
            try:
                service.load_zone(zone)
            except ValueError as exc:
                raise CliError(f"--timezone: {exc}") from None
            pairs = list(current.slots) if slot is None else []
            for rule in slot or []:
                days, _, at = rule.strip().rpartition(" ")
                try:
                    moment = clock_time.fromisoformat(at)
                    names = service.WEEKDAY_NAMES if days.strip() == "daily" else days.split(",")
                    pairs += [(service.weekday_number(day.strip()), moment) for day in names]
                except ValueError as exc:
                    raise CliError(
                        f"--slot {rule!r}: expected days then HH:MM, e.g. 'mon,wed 09:00' "
                        f"or 'daily 18:30' ({exc})"
                    ) from None
            service.set_config(session, principal, row.id, timezone=zone, slots=pairs)
        config = service.get_config(session, principal, row.id)
        data = {
            "channel": row.name,
            "timezone": config.timezone,
            "slots": [
                f"{service.WEEKDAY_NAMES[day]} {moment.strftime('%H:%M')}"
                for day, moment in config.slots
            ],
        }
    if as_json:
        _print_json(data)
        return
    slots_text = ", ".join(data["slots"]) or "none (set them with --slot)"
    out.print(f"{data['channel']} ({data['timezone']}): {slots_text}")


# --- posts ------------------------------------------------------------------------


@post_app.command("create")
def post_create(
    title: Annotated[str, typer.Option(help="The post's title.")],
    body: Annotated[str | None, typer.Option(help="Markdown body.")] = None,
    body_file: Annotated[
        Path | None, typer.Option(help="Read the Markdown body from a file ('-' for stdin).")
    ] = None,
    excerpt: Annotated[str | None, typer.Option(help="A short summary.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag; repeat for more.")] = None,
    canonical_url: Annotated[str | None, typer.Option(help="The original URL.")] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft post."""
    from pydantic import ValidationError

    from herald.core.db import session_scope
    from herald.posts.schemas import PostCreate, PostRead
    from herald.posts.service import create_post

    if body is not None and body_file is not None:
        raise CliError("give --body or --body-file, not both")
    if body_file is not None:
        text = sys.stdin.read() if str(body_file) == "-" else body_file.read_text("utf-8")
    else:
        text = body or ""
    try:
        payload = PostCreate(
            title=title, body=text, excerpt=excerpt, tags=tag or [], canonical_url=canonical_url
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CliError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    principal = _principal_for(workspace)
    with session_scope() as session:
        row = PostRead.model_validate(create_post(session, principal, payload))
    if as_json:
        _print_json(row.model_dump(mode="json"))
        return
    out.print(f"Created post [bold]{row.title}[/]: {row.id}")


@post_app.command("list")
def post_list(
    state: Annotated[list[str] | None, typer.Option(help="Filter by state; repeatable.")] = None,
    tag: Annotated[str | None, typer.Option(help="Filter by tag.")] = None,
    q: Annotated[str | None, typer.Option(help="Text search.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many.")] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List posts, newest first."""
    from herald.core.db import session_scope
    from herald.posts.models import PostState
    from herald.posts.schemas import PostFilters, PostRead
    from herald.posts.service import list_posts

    try:
        states = [PostState(s) for s in state] if state else None
    except ValueError:
        raise CliError(f"--state must be one of: {', '.join(s.value for s in PostState)}") from None
    principal = _principal_for(workspace)
    with session_scope() as session:
        posts, _ = list_posts(
            session, principal, filters=PostFilters(state=states, tag=tag, q=q), limit=limit
        )
        rows = [PostRead.model_validate(p).model_dump(mode="json") for p in posts]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "title", "state", "tags", "created")
    for row in rows:
        table.add_row(
            row["id"], row["title"], row["state"], ", ".join(row["tags"]), row["created_at"][:16]
        )
    out.print(table)


def _resolve_post_id(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        raise CliError(f"{value!r} is not a post id (a UUID, see `herald post list`)") from None


def _resolve_channels(session: Any, principal: Any, values: list[str]) -> list[Any]:
    """Channel ids or names, in this workspace."""
    import uuid

    from sqlalchemy import select

    from herald.channels.models import Channel

    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value))
            continue
        except ValueError:
            pass
        found = session.scalar(
            select(Channel.id).where(
                Channel.workspace_id == principal.workspace_id, Channel.name == value
            )
        )
        if found is None:
            raise CliError(f"no channel named {value!r}; see `herald channel list`")
        ids.append(found)
    return ids


def _delivery_rows(post_id: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from herald.channels.models import Channel
    from herald.core.db import session_scope
    from herald.publishing.models import Publication

    with session_scope() as session:
        rows = session.execute(
            select(Publication, Channel.name, Channel.platform)
            .join(Channel, Channel.id == Publication.channel_id)
            .where(Publication.post_id == post_id)
            .order_by(Publication.created_at)
        ).all()
        return [
            {
                "publication_id": str(pub.id),
                "task_id": pub.task_id,
                "channel": name,
                "platform": platform,
                "state": str(pub.state),
                "attempt": pub.attempt,
                "external_url": pub.external_url,
                "error": pub.last_error,
            }
            for pub, name, platform in rows
        ]


_STATE_STYLE = {
    "published": "green",
    "failed": "red",
    "unconfirmed": "yellow",
    "cancelled": "dim",
    "retry_wait": "yellow",
    "publishing": "cyan",
}


def _delivery_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("channel", "platform", "state", "attempt", "where / why")
    for row in rows:
        style = _STATE_STYLE.get(row["state"], "")
        table.add_row(
            row["channel"],
            row["platform"],
            f"[{style}]{row['state']}[/]" if style else row["state"],
            str(row["attempt"]),
            row["external_url"] or row["error"] or "",
        )
    return table


@post_app.command("publish")
def post_publish(
    post_id: Annotated[str, typer.Argument(help="The post's id.")],
    to: Annotated[list[str], typer.Option("--to", help="Channel id or name; repeatable.")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Show live progress until all settle.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 300,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a post to channels now (needs a running worker: `herald up`)."""
    import time

    from rich.live import Live

    from herald.core.db import session_scope
    from herald.publishing.models import SETTLED
    from herald.publishing.service import create_publications

    pid = _resolve_post_id(post_id)
    principal = _principal_for(workspace)
    with session_scope() as session:
        create_publications(session, principal, pid, _resolve_channels(session, principal, to))
    settled = {str(s) for s in SETTLED}
    rows = _delivery_rows(pid)
    if wait:
        deadline = time.monotonic() + timeout
        with Live(_delivery_table(rows), console=out, transient=as_json) as live:
            while time.monotonic() < deadline:
                rows = _delivery_rows(pid)
                live.update(_delivery_table(rows))
                if all(row["state"] in settled for row in rows):
                    break
                time.sleep(0.5)
    if as_json:
        _print_json(rows)
    elif not wait:
        out.print(_delivery_table(rows))
    pending = [r for r in rows if r["state"] not in settled]
    if wait and pending:
        raise CliError(
            f"{len(pending)} delivery(ies) still in progress after {timeout:.0f} s; "
            f"see `herald post status {pid}` (is a worker running?)"
        )
    if any(r["state"] in ("failed", "unconfirmed") for r in rows):
        raise typer.Exit(1)


@post_app.command("status")
def post_status(
    post_id: Annotated[str, typer.Argument(help="The post's id.")],
    as_json: JsonOpt = False,
) -> None:
    """Show every delivery of a post."""
    rows = _delivery_rows(_resolve_post_id(post_id))
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("No deliveries yet.")
        return
    out.print(_delivery_table(rows))


@post_app.command("schedule")
def post_schedule(
    post_id: Annotated[str, typer.Argument(help="The post's id.")],
    at: Annotated[
        str,
        typer.Option(help='When: "2026-12-03 10:00 Europe/Warsaw" or ISO 8601 with an offset.'),
    ],
    to: Annotated[list[str], typer.Option("--to", help="Channel id or name; repeatable.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a post to channels at an exact time."""
    from herald.core.db import session_scope
    from herald.scheduling.service import parse_when, schedule

    pid = _resolve_post_id(post_id)
    principal = _principal_for(workspace)
    when = parse_when(at)
    with session_scope() as session:
        schedule(session, principal, pid, _resolve_channels(session, principal, to), when)
    rows = _delivery_rows(pid)
    if as_json:
        _print_json(rows)
        return
    out.print(f"Scheduled for {when.isoformat()} (UTC):")
    out.print(_delivery_table(rows))


@post_app.command("queue")
def post_queue(
    post_id: Annotated[str, typer.Argument(help="The post's id.")],
    to: Annotated[list[str], typer.Option("--to", help="Channel id or name; repeatable.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a post in each channel's next free posting slot (see `herald channel slots`)."""
    from herald.core.db import session_scope
    from herald.scheduling.slots import queue_post

    pid = _resolve_post_id(post_id)
    principal = _principal_for(workspace)
    with session_scope() as session:
        from herald.channels.service import get_channel

        ids = _resolve_channels(session, principal, to)
        queued = queue_post(session, principal, pid, ids)
        names = {cid: get_channel(session, principal, cid).name for cid in ids}
        rows: list[dict[str, Any]] = [
            {
                "channel": names[q.channel_id],
                "channel_id": str(q.channel_id),
                "at": q.at.isoformat(),
                "local_at": q.local_at.isoformat(),
                "timezone": q.timezone,
                "state": str(q.publication.state),
                "already_there": q.existing,
            }
            for q in queued
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("channel", "local time", "zone", "state")
    for row in rows:
        note = " (already there)" if row["already_there"] else ""
        table.add_row(row["channel"], row["local_at"], row["timezone"], row["state"] + note)
    out.print(table)


schedule_app = typer.Typer(help="Scheduled deliveries and periodic jobs.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("list")
def schedule_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Deliveries waiting for their time, soonest first."""
    from sqlalchemy import select

    from herald.channels.models import Channel
    from herald.core.db import session_scope
    from herald.posts.models import Post
    from herald.scheduling.service import upcoming

    principal = _principal_for(workspace)
    with session_scope() as session:
        rows = []
        for pub in upcoming(session, principal):
            title = session.scalar(select(Post.title).where(Post.id == pub.post_id))
            channel = session.scalar(select(Channel.name).where(Channel.id == pub.channel_id))
            rows.append(
                {
                    "due_at": pub.due_at.isoformat() if pub.due_at else None,
                    "post": title,
                    "channel": channel,
                    "state": str(pub.state),
                    "publication_id": str(pub.id),
                }
            )
    if as_json:
        _print_json(rows)
        return
    table = Table("due (UTC)", "post", "channel", "state")
    for row in rows:
        table.add_row((row["due_at"] or "")[:19], row["post"], row["channel"], row["state"])
    out.print(table if rows else "Nothing scheduled.")


# --- keys -------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new encryption key (put it first in HERALD_ENCRYPTION_KEYS to rotate)."""
    from cryptography.fernet import Fernet

    sys.stdout.write(Fernet.generate_key().decode() + "\n")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every channel's credentials with the first (newest) key."""
    from sqlalchemy import select

    from herald.channels.models import Channel
    from herald.core.crypto import rotate
    from herald.core.db import session_scope

    with session_scope() as session:
        channels = list(session.scalars(select(Channel)))
        for channel in channels:
            channel.credentials_encrypted = rotate(channel.credentials_encrypted)
            if channel.session_encrypted:
                channel.session_encrypted = rotate(channel.session_encrypted)
    out.print(f"Re-encrypted the credentials of {len(channels)} channel(s) with the newest key.")


def main() -> None:
    from herald.core.crypto import CredentialsUnreadable

    try:
        code = app(standalone_mode=False)
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
    except HeraldError as exc:
        sys.stderr.write(f"herald: error: {exc.message}\n")
        sys.exit(1)
    except (CliError, ConfigurationError, CredentialsUnreadable, OSError) as exc:
        sys.stderr.write(f"herald: error: {exc}\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
