"""`herald source`: add, list, check, test and remove sources; read their items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from herald.cli._common import (
    CliError,
    JsonOpt,
    WorkspaceOpt,
    id_column,
    load_json_arg,
    out,
    print_json,
)
from herald.cli._common import workspace_session as session_for
from herald.cli._jobs import wait_for_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from herald.sources.models import Source
    from herald.users.principal import Principal

app = typer.Typer(help="Manage sources (feeds and community sites).", no_args_is_help=True)

SourceArg = Annotated[str, typer.Argument(help="Source id, a unique id prefix, or its name.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait at most.")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the job and show it.")]


def _find(session: Session, principal: Principal, ref: str) -> Source:
    from herald.sources.service import resolve_source  # noqa: PLC0415 - start-up (see _common)

    return resolve_source(session, principal, ref)


def _row(source: Source) -> dict[str, Any]:
    from herald.sources.service import read_source  # noqa: PLC0415 - start-up (see _common)

    return read_source(source).model_dump(mode="json")


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


@app.command("add")
def source_add(
    kind: Annotated[str, typer.Option(help="feed, reddit, hackernews or discourse.")],
    name: Annotated[str, typer.Option(help="A name for this source.")],
    url: Annotated[
        str | None, typer.Option(help="feed: the feed or a page; discourse: the forum.")
    ] = None,
    query: Annotated[
        str | None, typer.Option(help="reddit: r/<sub> or words; others: words.")
    ] = None,
    interval: Annotated[int, typer.Option(help="Minutes between checks.")] = 30,
    settings: Annotated[str, typer.Option(help="JSON object, or @file.json.")] = "{}",
    auto_generate: Annotated[bool, typer.Option(help="Draft posts from new items.")] = False,
    backfill: Annotated[int, typer.Option(help="New items to take from the first check.")] = 0,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a source; its first check (the baseline) runs as soon as a worker can."""
    from pydantic import ValidationError  # noqa: PLC0415 - start-up (see _common)

    from herald.core.errors import InvalidInput  # noqa: PLC0415 - start-up (see _common)
    from herald.sources.schemas import SourceCreate  # noqa: PLC0415 - start-up (see _common)
    from herald.sources.service import create_source  # noqa: PLC0415 - start-up (see _common)

    try:
        body = SourceCreate(
            kind=kind,  # validated here, with a clear message
            name=name,
            url=url,
            query=query,
            interval_minutes=interval,
            settings=load_json_arg(settings, "--settings"),
            auto_generate=auto_generate,
            backfill=backfill,
        )
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, prefix="source") from None
    with session_for(workspace) as (session, principal):
        row = _row(create_source(session, principal, body))
    if as_json:
        print_json(row)
        return
    out.print(f"Added {row['kind']} source {row['name']!r} ({row['id']}); first check soon.")


@app.command("list")
def source_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List sources with their last check."""
    from herald.sources.service import list_sources  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        rows = [_row(s) for s in list_sources(session, principal)]
    if as_json:
        print_json(rows)
        return
    table = Table(
        id_column(fold=True), "name", "kind", "every", "last check", "status", "next check"
    )
    for r in rows:
        state = r["last_error"] or ("ok" if r["last_success_at"] else "not checked yet")
        if not r["enabled"]:
            state = f"disabled: {r['disabled_reason']}"
        table.add_row(
            r["id"],
            r["name"],
            r["kind"],
            f"{r['interval_minutes']} min",
            _when(r["last_checked_at"]),
            state,
            _when(r["next_check_at"]) if r["enabled"] else "-",
        )
    out.print(table)


def _items_table(items: list[dict[str, Any]]) -> Table:
    table = Table("published", "title", "link", "score")
    for i in items:
        score = "" if i["score"] is None else str(i["score"])
        table.add_row(_when(i["published_at"]), i["title"], i["link"] or "", score)
    return table


@app.command("check")
def source_check(
    source: SourceArg,
    auto_generate: Annotated[
        bool | None,
        typer.Option("--auto-generate/--no-auto-generate", help="Draft posts from new items."),
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 120,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a source now (needs a running worker: `herald up`); then its new items."""
    from herald.sources.service import start_check  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, source)
        job_id, name = start_check(session, principal, found.id, auto_generate).id, found.name
    if not wait:
        print_json({"task_id": job_id}) if as_json else out.print(f"Checking; task {job_id}")
        return
    job = wait_for_job(job_id, description=f"checking {name}", timeout=timeout, quiet=as_json)
    result = job["result"] or {}
    new = _items_by_id(workspace, result.get("new", []))
    if as_json:
        print_json({**job, "new_items": new})
    elif job["state"] == "SUCCESS":
        if result.get("not_modified"):
            out.print(f"{name}: not modified since the last check.")
        else:
            updated = len(result.get("updated", []))
            out.print(f"{name}: {len(new)} new, {updated} updated, {len(result['drafts'])} drafts.")
        if new:
            out.print(_items_table(new))
    if job["state"] != "SUCCESS":
        raise CliError(f"the check of {name} failed: {job['error']}")


def _items_by_id(workspace: str | None, ids: list[str]) -> list[dict[str, Any]]:
    import uuid  # noqa: PLC0415 - start-up (see _common)

    from herald.sources.service import items_by_id  # noqa: PLC0415 - start-up (see _common)

    if not ids:
        return []
    with session_for(workspace) as (session, principal):
        found = items_by_id(session, principal, [uuid.UUID(i) for i in ids])
        return [i.model_dump(mode="json") for i in found]


@app.command("test")
def source_test(
    source: SourceArg,
    timeout: TimeoutOpt = 60,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Test a source's connection: what it answers and what it is (stores nothing)."""
    from herald.sources.service import start_test  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, source)
        job_id, name = start_test(session, principal, found.id).id, found.name
    job = wait_for_job(job_id, description=f"testing {name}", timeout=timeout, quiet=as_json)
    result = job["result"] or {}
    if as_json:
        print_json(job)
    else:
        table = Table("", "")
        for key, value in result.items():
            table.add_row(key, "-" if value is None else str(value))
        out.print(table)
    if job["state"] != "SUCCESS" or not result.get("reachable"):
        raise CliError(f"{name} is not reachable: {result.get('error') or job['error']}")


@app.command("items")
def source_items(
    source: SourceArg,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A source's items, newest first."""
    from herald.sources.service import list_items  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, source)
        items, _ = list_items(session, principal, source_id=found.id, limit=limit)
        rows = [i.model_dump(mode="json") for i in items]
    if as_json:
        print_json(rows)
        return
    out.print(_items_table(rows) if rows else "No items yet.")


@app.command("remove")
def source_remove(source: SourceArg, workspace: WorkspaceOpt = None) -> None:
    """Remove a source and its items (drafts made from them stay)."""
    from herald.sources.service import delete_source  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, source)
        name = found.name
        delete_source(session, principal, found.id)
    out.print(f"Removed {name!r}.")
