"""`herald webhook`: the workspace's event webhooks: add, list, the delivery log,
redeliver, test, enable, disable, remove."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from herald.cli._common import JsonOpt, WorkspaceOpt, out, print_json
from herald.cli._common import workspace_session as session_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from herald.users.principal import Principal
    from herald.webhooks.models import Webhook

app = typer.Typer(help="Send signed event webhooks (see docs/webhooks.md).", no_args_is_help=True)

WebhookArg = Annotated[str, typer.Argument(help="Webhook id, or a unique prefix of it.")]


def _find(session: Session, principal: Principal, ref: str) -> Webhook:
    from herald.webhooks.service import resolve_webhook  # noqa: PLC0415 - start-up

    return resolve_webhook(session, principal, ref)


def _row(session: Session, webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    from herald.webhooks.service import read_webhook  # noqa: PLC0415 - start-up

    return read_webhook(session, webhook, secret).model_dump(mode="json")


@app.command("add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="Where to POST the events (http or https).")],
    event: Annotated[
        list[str],
        typer.Option("--event", "-e", help="An event type to send (repeat), or '*' for all."),
    ],
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an endpoint. Its signing secret is printed this once: keep it."""
    from pydantic import ValidationError  # noqa: PLC0415 - start-up (see _common)

    from herald.core.errors import InvalidInput  # noqa: PLC0415 - start-up
    from herald.webhooks.schemas import WebhookCreate  # noqa: PLC0415 - start-up
    from herald.webhooks.service import create_webhook  # noqa: PLC0415 - start-up

    try:
        body = WebhookCreate.model_validate(
            {"url": url, "events": event, "description": description}
        )
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, prefix="webhook") from None
    with session_for(workspace) as (session, principal):
        webhook, secret = create_webhook(session, principal, body)
        row = _row(session, webhook, secret)
    if as_json:
        print_json(row)
        return
    out.print(f"Added webhook {row['id']} for {', '.join(row['events'])}.", highlight=False)
    out.print(f"Signing secret (shown only now): {secret}", highlight=False)


@app.command("list")
def webhook_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List the endpoints, their events and state."""
    from herald.webhooks.service import list_webhooks  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        rows = [_row(session, w) for w in list_webhooks(session, principal)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No webhooks: add one with `herald webhook add URL --event ...`.")
        return
    table = Table("id", "url", "events", "state", "failures")
    for r in rows:
        state = r["state"] if not r["disabled_reason"] else f"{r['state']}: {r['disabled_reason']}"
        table.add_row(
            r["id"][:8], r["url"], ", ".join(r["events"]), state, str(r["consecutive_failures"])
        )
    out.print(table)


@app.command("deliveries")
def webhook_deliveries(
    webhook: WebhookArg,
    state: Annotated[
        str | None, typer.Option(help="pending, sending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The endpoint's delivery log, newest first."""
    from herald.core.errors import InvalidInput  # noqa: PLC0415 - start-up
    from herald.webhooks.models import DeliveryState  # noqa: PLC0415 - start-up
    from herald.webhooks.service import list_deliveries  # noqa: PLC0415 - start-up

    try:
        wanted = DeliveryState(state) if state else None
    except ValueError:
        known = ", ".join(s.value for s in DeliveryState)
        raise InvalidInput(f"--state: one of {known}, not {state!r}") from None
    with session_for(workspace) as (session, principal):
        found = _find(session, principal, webhook)
        page = list_deliveries(session, principal, found.id, state=wanted, limit=limit)
    rows = [item.model_dump(mode="json") for item in page.items]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("No deliveries yet.")
        return
    table = Table("id", "event", "type", "state", "tries", "status", "error", "ms", "created")
    for r in rows:
        table.add_row(
            r["id"][:8],
            r["event_id"][:8],
            r["event_type"],
            r["state"],
            str(r["attempts"]),
            str(r["last_status"] or "-"),
            (r["last_error"] or "")[:60],
            str(r["duration_ms"] if r["duration_ms"] is not None else "-"),
            r["created_at"][:19],
        )
    out.print(table)


@app.command("redeliver")
def webhook_redeliver(
    webhook: WebhookArg,
    delivery: Annotated[str, typer.Argument(help="Delivery id, or a unique prefix of it.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Send a delivery's event again now, with the same event id."""
    from herald.webhooks.service import redeliver, resolve_delivery  # noqa: PLC0415

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, webhook)
        delivery_id = resolve_delivery(session, principal, found, delivery)
        read = redeliver(session, principal, found.id, delivery_id)
    out.print(f"Event {read.event_id} ({read.event_type}) will be sent again.", highlight=False)


@app.command("test")
def webhook_test(webhook: WebhookArg, workspace: WorkspaceOpt = None) -> None:
    """Send a webhook.test event (needs a running worker: `herald up`)."""
    from herald.webhooks.service import send_test  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, webhook)
        read = send_test(session, principal, found.id)
    out.print(
        f"Sent a test event ({read.event_id}); follow it with "
        f"`herald webhook deliveries {str(found.id)[:8]}`.",
        highlight=False,
    )


def _set_state(ref: str, workspace: str | None, state: str) -> None:
    from herald.webhooks.schemas import WebhookUpdate  # noqa: PLC0415 - start-up
    from herald.webhooks.service import update_webhook  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, ref)
        update_webhook(session, principal, found.id, WebhookUpdate.model_validate({"state": state}))
    out.print(f"Webhook {found.id} is {state}.", highlight=False)


@app.command("enable")
def webhook_enable(webhook: WebhookArg, workspace: WorkspaceOpt = None) -> None:
    """Enable the endpoint: deliveries that waited go out at once."""
    _set_state(webhook, workspace, "active")


@app.command("disable")
def webhook_disable(webhook: WebhookArg, workspace: WorkspaceOpt = None) -> None:
    """Disable the endpoint: nothing is sent (pending deliveries wait) until enabled."""
    _set_state(webhook, workspace, "disabled")


@app.command("remove")
def webhook_remove(webhook: WebhookArg, workspace: WorkspaceOpt = None) -> None:
    """Remove the endpoint and its delivery log."""
    from herald.webhooks.service import delete_webhook  # noqa: PLC0415 - start-up

    with session_for(workspace) as (session, principal):
        found = _find(session, principal, webhook)
        delete_webhook(session, principal, found.id)
    out.print(f"Removed webhook {found.id}.", highlight=False)
