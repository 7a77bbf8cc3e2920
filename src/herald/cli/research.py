"""`herald research`: search Reddit, Hacker News and Discourse forums for a query as a
background job, with live progress, then a table of what was found."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from herald.cli._common import CliError, JsonOpt, WorkspaceOpt, out, print_json, workspace_session
from herald.cli._jobs import wait_for_job

if TYPE_CHECKING:
    from herald.sources.research_schemas import ResearchRead

SHOWN = 20
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` back from now, or an ISO 8601 date or time (UTC
    when it has no offset)."""
    text = value.strip().lower()
    found = _RELATIVE.match(text)
    if found:
        span = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
        return (now or datetime.now(UTC)) - span
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CliError(
            f"--since {value!r}: give 7d, 12h, 30m, 2w, or a date such as 2026-11-01"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _results_table(read: ResearchRead) -> Table:
    table = Table("site", "score", "comments", "title", "link")
    for item in read.items[:SHOWN]:
        table.add_row(
            item.site,
            "" if item.score is None else str(item.score),
            "" if item.comments is None else str(item.comments),
            item.title,
            item.link or "",
        )
    return table


def _digest_table(read: ResearchRead) -> Table:
    table = Table("site", "items", "score", "comments", "top titles / error")
    for digest in read.sites:
        table.add_row(
            digest.label,
            str(digest.items),
            str(digest.total_score),
            str(digest.total_comments),
            f"[red]{digest.error}[/]" if digest.error else "; ".join(digest.top_titles),
        )
    return table


def _read(task_id: str, workspace: str | None) -> ResearchRead:
    from herald.sources.research import read_research  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace) as (session, principal):
        return read_research(session, principal, task_id, limit=100)


def research(
    query: Annotated[str, typer.Argument(help="The words to search for.")],
    site: Annotated[
        list[str] | None,
        typer.Option(help="reddit or hackernews; repeatable (both when no site is given)."),
    ] = None,
    discourse: Annotated[
        list[str] | None, typer.Option(help="A Discourse forum's URL; repeatable.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only items since: 7d, 12h, 2w, or a date (2026-11-01).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most items per site.")] = 100,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Show live progress until it is done.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 1800,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search community sites for a query in the background (needs a running worker:
    `herald up`), then show what they say, best first."""
    from pydantic import ValidationError  # noqa: PLC0415 - start-up (see _common)

    from herald.sources.research import start_research  # noqa: PLC0415 - start-up (see _common)
    from herald.sources.research_schemas import ResearchCreate  # noqa: PLC0415 - start-up (see _common)

    sources: list[Any] = list(site or [])
    sources += [{"discourse": url} for url in discourse or ()]
    if not sources:
        sources = ["reddit", "hackernews"]
    try:
        body = ResearchCreate(
            query=query,
            sources=sources,
            since=parse_since(since) if since else None,
            limit=limit,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "research"
        raise CliError(f"{where}: {err['msg']}") from None
    with workspace_session(workspace) as (session, principal):
        task_id = start_research(session, principal, body).id
    if not wait:
        if as_json:
            print_json({"task_id": task_id, "status": "pending"})
        else:
            out.print(task_id)
        return
    wait_for_job(
        task_id,
        description=f"research {query!r}",
        timeout=timeout,
        quiet=as_json,
        raise_on_timeout=False,
    )
    read = _read(task_id, workspace)
    if as_json:
        print_json(read.model_dump(mode="json"))
    else:
        out.print(_digest_table(read))
        if read.items:
            out.print(_results_table(read))
    if not read.ready:
        raise CliError(
            f"research {task_id} still running after {timeout:.0f} s (is a worker running?); "
            f"follow it at GET /api/v1/research/{task_id}"
        )
    if not read.successful:
        raise CliError(f"research {task_id} {str(read.status).lower()}: {read.error}")
