"""`herald post`: write and list posts, publish them now, at a time or in the next free
slot, and follow their deliveries."""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from herald.cli._common import (
    ChannelsOpt,
    CliError,
    JsonOpt,
    WorkspaceOpt,
    id_column,
    out,
    print_json,
    resolve_post_id,
    workspace_session,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from herald.publishing.reads import Delivery
    from herald.users.principal import Principal

app = typer.Typer(help="Write and list posts.", no_args_is_help=True)

PostIdArg = Annotated[str, typer.Argument(help="The post's id, or a unique prefix of it.")]


@app.command("create")
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
    from pydantic import ValidationError  # noqa: PLC0415 - start-up (see _common)

    from herald.posts.schemas import PostCreate, PostRead  # noqa: PLC0415 - start-up (see _common)
    from herald.posts.service import create_post  # noqa: PLC0415 - start-up (see _common)

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
    with workspace_session(workspace) as (session, principal):
        row = PostRead.model_validate(create_post(session, principal, payload))
    if as_json:
        print_json(row.model_dump(mode="json"))
        return
    out.print(f"Created post [bold]{row.title}[/]: {row.id}")


@app.command("list")
def post_list(
    state: Annotated[list[str] | None, typer.Option(help="Filter by state; repeatable.")] = None,
    tag: Annotated[str | None, typer.Option(help="Filter by tag.")] = None,
    q: Annotated[str | None, typer.Option(help="Text search.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many.")] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List posts, newest first."""
    from herald.posts.models import PostState  # noqa: PLC0415 - start-up (see _common)
    from herald.posts.schemas import PostFilters, PostRead  # noqa: PLC0415 - start-up (see _common)
    from herald.posts.service import list_post_reads  # noqa: PLC0415 - start-up (see _common)

    try:
        states = [PostState(s) for s in state] if state else None
    except ValueError:
        raise CliError(f"--state must be one of: {', '.join(s.value for s in PostState)}") from None
    with workspace_session(workspace, reads_only=True) as (session, principal):
        posts, _ = list_post_reads(
            session, principal, filters=PostFilters(state=states, tag=tag, q=q), limit=limit
        )
        rows = [PostRead.model_validate(p).model_dump(mode="json") for p in posts]
    if as_json:
        print_json(rows)
        return
    table = Table(id_column(), "title", "state", "tags", "created")
    for row in rows:
        table.add_row(
            row["id"], row["title"], row["state"], ", ".join(row["tags"]), row["created_at"][:16]
        )
    out.print(table)


# --- deliveries ---------------------------------------------------------------------


def _deliveries(post_id: uuid.UUID) -> list[Delivery]:
    from herald.core.db import session_scope  # noqa: PLC0415 - start-up (see _common)
    from herald.publishing.reads import deliveries_of_post  # noqa: PLC0415 - start-up (see _common)

    with session_scope() as session:
        return deliveries_of_post(session, post_id)


def _as_json(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(delivery) for delivery in deliveries]


_STATE_STYLE = {
    "published": "green",
    "failed": "red",
    "unconfirmed": "yellow",
    "cancelled": "dim",
    "retry_wait": "yellow",
    "publishing": "cyan",
}


def _delivery_table(deliveries: list[Delivery]) -> Table:
    table = Table("channel", "platform", "state", "attempt", "where / why")
    for delivery in deliveries:
        style = _STATE_STYLE.get(delivery.state, "")
        table.add_row(
            delivery.channel,
            delivery.platform,
            f"[{style}]{delivery.state}[/]" if style else str(delivery.state),
            str(delivery.attempt),
            delivery.external_url or delivery.error or "",
        )
    return table


def _watch(post_id: uuid.UUID, timeout: float, *, transient: bool) -> list[Delivery]:
    """Redraw the post's deliveries until all have settled or the time is up."""
    from rich.live import Live  # noqa: PLC0415 - start-up (see _common)

    from herald.publishing.models import SETTLED  # noqa: PLC0415 - start-up (see _common)

    deliveries = _deliveries(post_id)
    deadline = time.monotonic() + timeout
    with Live(_delivery_table(deliveries), console=out, transient=transient) as live:
        while time.monotonic() < deadline:
            deliveries = _deliveries(post_id)
            live.update(_delivery_table(deliveries))
            if all(delivery.state in SETTLED for delivery in deliveries):
                break
            time.sleep(0.5)
    return deliveries


@app.command("publish")
def post_publish(
    post_id: PostIdArg,
    to: ChannelsOpt,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Show live progress until all settle.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 300,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a post to channels now (needs a running worker: `herald up`)."""
    from herald.channels.service import resolve_channel_ids  # noqa: PLC0415 - start-up (see _common)
    from herald.publishing.actions import publish  # noqa: PLC0415 - start-up (see _common)
    from herald.publishing.models import (  # noqa: PLC0415 - start-up (see _common)
        SETTLED,
        PublicationState,
    )

    pid = resolve_post_id(post_id, workspace)
    with workspace_session(workspace) as (session, principal):
        publish(session, principal, pid, resolve_channel_ids(session, principal, to))
    deliveries = _watch(pid, timeout, transient=as_json) if wait else _deliveries(pid)
    if as_json:
        print_json(_as_json(deliveries))
    elif not wait:
        out.print(_delivery_table(deliveries))
    pending = [delivery for delivery in deliveries if delivery.state not in SETTLED]
    if wait and pending:
        raise CliError(
            f"{len(pending)} delivery(ies) still in progress after {timeout:.0f} s; "
            f"see `herald post status {pid}` (is a worker running?)"
        )
    failed = {PublicationState.FAILED, PublicationState.UNCONFIRMED}
    if any(delivery.state in failed for delivery in deliveries):
        raise typer.Exit(1)


@app.command("status")
def post_status(
    post_id: PostIdArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Show every delivery of a post."""
    deliveries = _deliveries(resolve_post_id(post_id, workspace))
    if as_json:
        print_json(_as_json(deliveries))
        return
    if not deliveries:
        out.print("No deliveries yet.")
        return
    out.print(_delivery_table(deliveries))


@app.command("schedule")
def post_schedule(
    post_id: PostIdArg,
    at: Annotated[
        str,
        typer.Option(help='When: "2026-12-03 10:00 Europe/Warsaw" or ISO 8601 with an offset.'),
    ],
    to: ChannelsOpt,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a post to channels at an exact time."""
    from herald.channels.service import resolve_channel_ids  # noqa: PLC0415 - start-up (see _common)
    from herald.scheduling.service import parse_when, schedule  # noqa: PLC0415 - start-up (see _common)

    pid = resolve_post_id(post_id, workspace)
    with workspace_session(workspace) as (session, principal):
        when = parse_when(at)
        schedule(session, principal, pid, resolve_channel_ids(session, principal, to), when)
    deliveries = _deliveries(pid)
    if as_json:
        print_json(_as_json(deliveries))
        return
    out.print(f"Scheduled for {when.isoformat()} (UTC):")
    out.print(_delivery_table(deliveries))


@app.command("queue")
def post_queue(
    post_id: PostIdArg,
    to: ChannelsOpt,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a post in each channel's next free posting slot (see `herald channel slots`)."""
    from herald.channels.service import (  # noqa: PLC0415 - start-up (see _common)
        get_channel,
        resolve_channel_ids,
    )
    from herald.scheduling.slots import queue_post  # noqa: PLC0415 - start-up (see _common)

    pid = resolve_post_id(post_id, workspace)
    with workspace_session(workspace) as (session, principal):
        ids = resolve_channel_ids(session, principal, to)
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
        print_json(rows)
        return
    table = Table("channel", "local time", "zone", "state")
    for row in rows:
        note = " (already there)" if row["already_there"] else ""
        table.add_row(row["channel"], row["local_at"], row["timezone"], row["state"] + note)
    out.print(table)


# --- review -------------------------------------------------------------------------


ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        help="The reviewer's email, recorded as who decided [default: the workspace's "
        "first admin].",
    ),
]


@contextmanager
def _reviewer_session(workspace: str | None, by: str | None) -> Iterator[tuple[Session, Principal]]:
    """One transaction acting as ``by`` (any role, reviewers included), else as the
    workspace's default user."""
    from sqlalchemy import select  # noqa: PLC0415 - start-up (see _common)

    from herald.users.models import User  # noqa: PLC0415 - start-up (see _common)
    from herald.users.principal import Principal  # noqa: PLC0415 - start-up (see _common)
    from herald.users.service import normalize_email  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace) as (session, default):
        if by is None:
            yield session, default
            return
        user = session.scalars(select(User).where(User.email == normalize_email(by))).first()
        if user is None or (workspace is not None and user.workspace.name != workspace):
            raise CliError(f"no user {by!r}; see `herald user create`")
        yield session, Principal(user.id, user.workspace_id, user.email, user.role)


@app.command("review")
def post_review(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many.")] = 100,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the posts waiting for review, oldest first."""
    from herald.agents.models import Agent  # noqa: PLC0415 - start-up (see _common)
    from herald.review.service import review_queue  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace) as (session, principal):
        posts = review_queue(session, principal, limit)
        agents = {
            post.agent_id: agent.name
            for post in posts
            if post.agent_id is not None
            and (agent := session.get(Agent, post.agent_id)) is not None
        }
        rows: list[dict[str, Any]] = [
            {
                "id": str(post.id),
                "title": post.title,
                "agent": agents.get(post.agent_id) if post.agent_id else None,
                "agent_id": str(post.agent_id) if post.agent_id else None,
                "created_at": post.created_at.isoformat(),
            }
            for post in posts
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("Nothing waits for review.")
        return
    table = Table(id_column(), "title", "agent", "created")
    for row in rows:
        table.add_row(row["id"], row["title"], row["agent"] or "-", row["created_at"][:16])
    out.print(table)


@app.command("approve")
def post_approve(
    post_id: PostIdArg,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            "--to",
            help="Channel id or name; repeatable. Unset: the agent's channels, if any.",
        ),
    ] = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="Into each channel's next free posting slot.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(help='When: "2026-12-03 10:00 Europe/Warsaw" or ISO 8601 with an offset.'),
    ] = None,
    by: ByOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a post waiting for review and deliver it: now, --at a time, or --queue."""
    from herald.channels.service import (  # noqa: PLC0415 - start-up (see _common)
        get_channel,
        resolve_channel_ids,
    )
    from herald.posts.schemas import PostRead  # noqa: PLC0415 - start-up (see _common)
    from herald.review.service import Schedule, approve  # noqa: PLC0415 - start-up (see _common)
    from herald.scheduling.service import parse_when  # noqa: PLC0415 - start-up (see _common)

    if queue and at is not None:
        raise CliError("give --queue or --at, not both")
    pid = resolve_post_id(post_id, workspace)
    with _reviewer_session(workspace, by) as (session, principal):
        schedule: Schedule = "queue" if queue else parse_when(at) if at is not None else None
        ids = resolve_channel_ids(session, principal, channel) if channel else None
        result = approve(session, principal, pid, ids, schedule)
        post = PostRead.model_validate(result.post).model_dump(mode="json")
        rows = [
            {
                "channel": get_channel(session, principal, p.channel_id).name,
                "channel_id": str(p.channel_id),
                "state": str(p.state),
                "due_at": p.due_at.isoformat() if p.due_at else None,
            }
            for p in result.publications
        ]
    if as_json:
        print_json({"post": post, "deliveries": rows})
        return
    out.print(f"Approved [bold]{post['title']}[/] as {post['reviewed_by_email']}.")
    if not rows:
        out.print("No deliveries made; publish, schedule or queue it when you want.")
        return
    table = Table("channel", "state", "due (UTC)")
    for row in rows:
        table.add_row(row["channel"], row["state"], row["due_at"] or "-")
    out.print(table)


@app.command("reject")
def post_reject(
    post_id: PostIdArg,
    note: Annotated[str, typer.Option(help="Why: its author reads this to fix the post.")],
    by: ByOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a post waiting for review, saying why."""
    from herald.posts.schemas import PostRead  # noqa: PLC0415 - start-up (see _common)
    from herald.review.service import reject  # noqa: PLC0415 - start-up (see _common)

    pid = resolve_post_id(post_id, workspace)
    with _reviewer_session(workspace, by) as (session, principal):
        post = PostRead.model_validate(reject(session, principal, pid, note)).model_dump(
            mode="json"
        )
    if as_json:
        print_json(post)
        return
    out.print(f"Rejected [bold]{post['title']}[/]; send it back with `herald post submit {pid}`.")


@app.command("submit")
def post_submit(
    post_id: PostIdArg, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Send a rejected post (or a draft) for review."""
    from herald.posts.schemas import PostRead  # noqa: PLC0415 - start-up (see _common)
    from herald.review.service import submit  # noqa: PLC0415 - start-up (see _common)

    pid = resolve_post_id(post_id, workspace)
    with workspace_session(workspace) as (session, principal):
        post = PostRead.model_validate(submit(session, principal, pid)).model_dump(mode="json")
    if as_json:
        print_json(post)
        return
    out.print(f"[bold]{post['title']}[/] waits for review.")
