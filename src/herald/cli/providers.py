"""`herald provider`: add, list, test and remove the providers agents write with."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from herald.cli._common import CliError, JsonOpt, WorkspaceOpt, id_column, out, print_json
from herald.cli._common import workspace_session as session_for
from herald.cli._jobs import wait_for_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from herald.agents.models import Provider
    from herald.users.principal import Principal

app = typer.Typer(
    help="Manage generation providers (OpenAI-compatible endpoints, the offline digest).",
    no_args_is_help=True,
)

ProviderArg = Annotated[str, typer.Argument(help="Provider id, a unique id prefix, or its name.")]


def _find(session: Session, principal: Principal, ref: str) -> Provider:
    from herald.agents.provider_service import resolve_provider  # noqa: PLC0415 - start-up

    return resolve_provider(session, principal, ref)


def _row(provider: Provider) -> dict[str, Any]:
    from herald.agents.provider_service import read_provider  # noqa: PLC0415 - start-up

    return read_provider(provider).model_dump(mode="json")


def _api_key(from_stdin: bool, env: str | None) -> str | None:
    """The key from standard input or a named variable: never on the command line, where
    the shell's history and `ps` would show it."""
    if from_stdin and env:
        raise CliError("give the key with --api-key-stdin or --api-key-env, not both")
    if from_stdin:
        key = sys.stdin.read().strip()
        if not key:
            raise CliError("--api-key-stdin: standard input was empty")
        return key
    if env:
        key = os.environ.get(env, "").strip()
        if not key:
            raise CliError(f"--api-key-env: the variable {env} is not set or empty")
        return key
    return None


@app.command("add")
def provider_add(
    kind: Annotated[str, typer.Argument(help="openai (any compatible endpoint) or digest.")],
    name: Annotated[str, typer.Argument(help="A name for this provider.")],
    base_url: Annotated[
        str | None,
        typer.Option(help="openai: e.g. https://api.openai.com/v1, http://localhost:11434/v1."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="openai: the model, e.g. gpt-4o-mini.")] = None,
    api_key_stdin: Annotated[
        bool, typer.Option("--api-key-stdin", help="Read the API key from standard input.")
    ] = False,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", metavar="VAR", help="Read the API key from $VAR."),
    ] = None,
    input_price: Annotated[
        float | None, typer.Option(help="USD per million input tokens [default: the table].")
    ] = None,
    output_price: Annotated[
        float | None, typer.Option(help="USD per million output tokens [default: the table].")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer.")] = 60,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a provider. The API key is encrypted at rest and never shown again."""
    from pydantic import ValidationError  # noqa: PLC0415 - start-up (see _common)

    from herald.agents.provider_schemas import ProviderCreate  # noqa: PLC0415 - start-up
    from herald.agents.provider_service import create_provider  # noqa: PLC0415 - start-up
    from herald.core.errors import InvalidInput  # noqa: PLC0415 - start-up (see _common)

    key = _api_key(api_key_stdin, api_key_env)
    try:
        body = ProviderCreate.model_validate(
            {
                "kind": kind,
                "name": name,
                "base_url": base_url,
                "model": model,
                "api_key": key,
                "input_price_per_million": input_price,
                "output_price_per_million": output_price,
                "timeout_seconds": timeout,
            }
        )
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, prefix="provider") from None
    with session_for(workspace) as (session, principal):
        row = _row(create_provider(session, principal, body))
    if as_json:
        print_json(row)
        return
    out.print(f"Added {row['kind']} provider {row['name']!r} ({row['id']}).")


def _price(row: dict[str, Any]) -> str:
    if row["price_source"] == "unknown":
        return "unknown (0)"
    return f"{row['input_price_per_million']:g} / {row['output_price_per_million']:g}"


@app.command("list")
def provider_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List providers (agents without one use the built-in digest)."""
    from herald.agents.provider_service import list_providers  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        rows = [_row(p) for p in list_providers(session, principal)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No providers: agents use the built-in digest (no model, no cost).")
        return
    # The base URL and whole ids are in --json: the table fits a terminal.
    table = Table(id_column(fold=True), "name", "kind", "model", "key", "USD / 1M in/out", "state")
    for r in rows:
        state = r["state"] if not r["state_reason"] else f"{r['state']}: {r['state_reason']}"
        table.add_row(
            r["id"][:8],
            r["name"],
            r["kind"],
            r["model"] or "-",
            "yes" if r["has_api_key"] else "no",
            _price(r),
            state,
        )
    out.print(table)


@app.command("test")
def provider_test(
    provider: ProviderArg,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 120,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the provider for one word and show the reply, tokens, cost and latency (needs
    a running worker: `herald up`). The call is recorded in the usage ledger."""
    from herald.agents.provider_service import start_test  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, provider)
        job_id, name = start_test(session, principal, found.id).id, found.name
    job = wait_for_job(job_id, description=f"testing {name}", timeout=timeout, quiet=as_json)
    if as_json:
        print_json(job)
    elif job["state"] == "SUCCESS":
        r = job["result"]
        estimated = " (estimated)" if r.get("estimated") else ""
        out.print(f"{name} ({r['model']}) answered: {r['reply']!r}")
        out.print(
            f"tokens: {r['input_tokens']} in, {r['output_tokens']} out{estimated}; "
            f"cost: ${r['cost']:.6f}; latency: {r['latency_ms']} ms",
            highlight=False,
        )
    if job["state"] != "SUCCESS":
        raise CliError(f"the test of {name} failed: {job['error']}")


@app.command("remove")
def provider_remove(provider: ProviderArg, workspace: WorkspaceOpt = None) -> None:
    """Remove a provider; agents that used it fall back to the workspace's default."""
    from herald.agents.provider_service import delete_provider  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, provider)
        name = found.name
        delete_provider(session, principal, found.id)
    out.print(f"Removed {name!r}.")
