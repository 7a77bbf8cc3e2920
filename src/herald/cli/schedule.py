"""`herald schedule`: what is waiting for its time."""

from __future__ import annotations

import typer
from rich.table import Table

from herald.cli._common import JsonOpt, WorkspaceOpt, out, print_json, workspace_session

app = typer.Typer(help="Scheduled deliveries and periodic jobs.", no_args_is_help=True)


@app.command("list")
def schedule_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Deliveries waiting for their time, soonest first."""
    from herald.publishing.reads import name_deliveries  # noqa: PLC0415 - start-up (see _common)
    from herald.scheduling.service import upcoming  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace) as (session, principal):
        rows = [
            {
                "due_at": delivery.due_at.isoformat() if delivery.due_at else None,
                "post": delivery.post,
                "channel": delivery.channel,
                "state": str(delivery.state),
                "publication_id": str(delivery.publication_id),
            }
            for delivery in name_deliveries(session, upcoming(session, principal))
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("due (UTC)", "post", "channel", "state")
    for row in rows:
        table.add_row((row["due_at"] or "")[:19], row["post"], row["channel"], row["state"])
    out.print(table if rows else "Nothing scheduled.")
