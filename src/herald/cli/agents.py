"""`herald agent`: add, list, run and remove agents; read their runs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from herald.cli._common import CliError, JsonOpt, WorkspaceOpt, out, print_json
from herald.cli._common import workspace_session as session_for
from herald.cli._jobs import wait_for_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from herald.agents.models import Agent
    from herald.users.principal import Principal

app = typer.Typer(help="Manage agents (drafts written from sources).", no_args_is_help=True)

AgentArg = Annotated[str, typer.Argument(help="Agent id, a unique id prefix, or its name.")]


def _find(session: Session, principal: Principal, ref: str) -> Agent:
    from herald.agents.service import resolve_agent  # noqa: PLC0415 - start-up (see _common)

    return resolve_agent(session, principal, ref)


def _row(session: Session, agent: Agent) -> dict[str, Any]:
    from herald.agents.service import read_agent  # noqa: PLC0415 - start-up (see _common)

    return read_agent(session, agent).model_dump(mode="json")


def _when(value: str | None) -> str:
    """An ISO time as "2026-03-23 09:00 +01:00" (its own offset kept), "-" for none."""
    if not value:
        return "-"
    offset = value[19:].replace("Z", "+00:00")
    return f"{value[:16].replace('T', ' ')} {offset}".strip()


def _short(value: str | None) -> str:
    """An ISO time as "Mon 23 Mar 09:00" in its own offset, "-" for none."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%a %d %b %H:%M")


def money(value: float) -> str:
    """Up to 6 decimal places, trailing zeros dropped: 3.75, 0.000007, 0."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


@app.command("add")
def agent_add(
    name: Annotated[str, typer.Argument(help="A name for the agent.")],
    topic: Annotated[str, typer.Option(help="What its drafts are about.")],
    keyword: Annotated[
        list[str] | None, typer.Option("--keyword", help="A keyword; repeatable.")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Source name or id; repeatable.")
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Channel name or id; repeatable.")
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="A 5-field cron, e.g. '0 9 * * MON'.")
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="The zone the cron is read in.")] = "UTC",
    provider: Annotated[
        str | None, typer.Option(help="Provider name or id [default: the workspace's].")
    ] = None,
    auto_publish: Annotated[
        bool, typer.Option("--auto-publish", help="Publish drafts without review.")
    ] = False,
    words: Annotated[int, typer.Option(help="Target length in words.")] = 600,
    language: Annotated[str, typer.Option(help="Language tag, e.g. en or pt-BR.")] = "en",
    tone: Annotated[str | None, typer.Option(help="e.g. 'friendly, concise'.")] = None,
    quota_drafts: Annotated[int | None, typer.Option(help="Drafts a month at most.")] = None,
    quota_tokens: Annotated[int | None, typer.Option(help="Tokens a month at most.")] = None,
    quota_cost: Annotated[
        str | None, typer.Option(help="Money a month at most, e.g. 5.50.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an agent; with --cron it runs at each occurrence, else when asked."""
    from pydantic import ValidationError  # noqa: PLC0415 - start-up (see _common)

    from herald.agents.provider_service import (  # noqa: PLC0415 - start-up (see _common)
        resolve_provider,
    )
    from herald.agents.schemas import AgentCreate  # noqa: PLC0415 - start-up (see _common)
    from herald.agents.service import create_agent  # noqa: PLC0415 - start-up (see _common)
    from herald.channels.service import (  # noqa: PLC0415 - start-up (see _common)
        resolve_channel_ids,
    )
    from herald.core.errors import InvalidInput  # noqa: PLC0415 - start-up (see _common)
    from herald.sources.service import resolve_source  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        fields: dict[str, Any] = {
            "name": name,
            "topic": topic,
            "keywords": keyword or [],
            "source_ids": [resolve_source(session, principal, s).id for s in source or []],
            "channel_ids": resolve_channel_ids(session, principal, channel or []),
            "schedule_cron": cron,
            "timezone": tz,
            "review": "auto_publish" if auto_publish else "required",
            "target_words": words,
            "language": language,
            "tone": tone,
            "quota": {
                "drafts_per_month": quota_drafts,
                "tokens_per_month": quota_tokens,
                "cost_per_month": quota_cost,
            },
        }
        if provider is not None:
            fields["provider_id"] = resolve_provider(session, principal, provider).id
        try:
            body = AgentCreate.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput.from_validation(exc, prefix="agent") from None
        row = _row(session, create_agent(session, principal, body))
    if as_json:
        print_json(row)
        return
    upcoming = f"; next run {_when(row['next_runs'][0])}" if row["next_runs"] else ""
    out.print(f"Added agent {row['name']!r} ({row['id']}){upcoming}.")


@app.command("list")
def agent_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List agents with their schedule and next run."""
    from herald.agents.service import list_agents  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        rows = [_row(session, a) for a in list_agents(session, principal)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No agents yet; add one with `herald agent add`.")
        return
    # Ids are in --json; the schedule's zone is the one its next run is shown in.
    table = Table(
        "name",
        Column("schedule", no_wrap=True),
        Column("next run", no_wrap=True),
        "provider",
        "review",
        Column("last run", no_wrap=True),
    )
    for r in rows:
        schedule = f"{r['schedule_cron']}\n{r['timezone']}" if r["schedule_cron"] else "on demand"
        upcoming = _short(r["next_runs"][0]) if r["next_runs"] else "-"
        if not r["enabled"]:
            upcoming = "disabled"
        table.add_row(
            r["name"],
            schedule,
            upcoming,
            r["provider"]["name"],
            "auto" if r["review"] == "auto_publish" else "required",
            _short(r["last_run_at"]),
        )
    out.print(table)


@app.command("runs")
def agent_runs(
    agent: AgentArg,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 20,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An agent's runs, newest first: state, usage, cost, latency, draft, error."""
    from herald.agents.service import list_runs  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, agent)
        runs, _ = list_runs(session, principal, found.id, limit=limit)
        name = found.name
        rows = [r.model_dump(mode="json") for r in runs]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"{name} has not run yet.")
        return
    # The trigger goes under the time, to leave the error room within 80 columns.
    table = Table(
        Column("started", no_wrap=True),
        Column("state", no_wrap=True),
        "tokens",
        "cost",
        "ms",
        "draft",
        "error",
    )
    for r in rows:
        table.add_row(
            f"{_short(r['started_at'] or r['created_at'])}\n{r['trigger']}",
            r["state"],
            str(r["input_tokens"] + r["output_tokens"]),
            money(r["cost"]),
            "-" if r["latency_ms"] is None else str(r["latency_ms"]),
            (r["post_id"] or "-")[:8],
            r["error"] or "",
        )
    out.print(table)


@app.command("run")
def agent_run(
    agent: AgentArg,
    topic: Annotated[
        str | None, typer.Option(help="This run's topic (default: the agent's).")
    ] = None,
    keyword: Annotated[str | None, typer.Option(help="This run's focus keyword.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the draft and show it.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 300,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the agent now (needs a running worker: `herald up`); then its draft."""
    from herald.agents import generate  # noqa: PLC0415 - start-up (see _common)
    from herald.agents.models import RunTrigger  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, agent)
        run = generate.start_run(
            session,
            found,
            trigger=RunTrigger.MANUAL,
            owner_id=principal.user_id,
            topic=topic,
            keyword=keyword,
        )
        job_id, name = run.job_id, found.name
    if not wait:
        print_json({"task_id": job_id}) if as_json else out.print(f"Generating; task {job_id}")
        return
    job = wait_for_job(
        str(job_id), description=f"{name} is writing", timeout=timeout, quiet=as_json
    )
    result = job["result"] or {}
    if as_json:
        print_json(job)
    elif job["state"] == "SUCCESS":
        out.print(
            f"{name}: drafted {result['title']!r} ({result['word_count']} words, "
            f"{result['status']}); post {result['post_id']}"
        )
        out.print(
            f"tokens {result['input_tokens']:,} in, {result['output_tokens']:,} out; "
            f"cost {money(result['cost'])}"
        )
    if job["state"] != "SUCCESS":
        raise CliError(f"{name}'s run failed: {job['error']}")


@app.command("remove")
def agent_remove(agent: AgentArg, workspace: WorkspaceOpt = None) -> None:
    """Remove an agent and its runs (its drafts and its usage in the ledger stay)."""
    from herald.agents.service import delete_agent  # noqa: PLC0415 - start-up (see _common)

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, agent)
        name = found.name
        delete_agent(session, principal, found.id)
    out.print(f"Removed {name!r}.")
