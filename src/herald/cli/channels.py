"""`herald channel`: list and add channels, and set their weekly posting slots."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

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
    workspace_session,
)

app = typer.Typer(help="Manage channels (accounts on platforms).", no_args_is_help=True)


@app.command("list")
def channel_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List channels."""
    from herald.channels.reads import list_channels  # noqa: PLC0415 - start-up (see _common)
    from herald.channels.schemas import ChannelRead  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace, reads_only=True) as (session, principal):
        rows = [
            ChannelRead.model_validate(c).model_dump(mode="json")
            for c in list_channels(session, principal)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(id_column(), "name", "platform", "state", "checked")
    for row in rows:
        table.add_row(row["id"], row["name"], row["platform"], row["state"], _checked(row))
    out.print(table)


def _checked(row: dict[str, Any]) -> str:
    """When the channel was last checked and how it went: "2026-12-06 19:41 ok"."""
    if row["checked_at"] is None:
        return "never"
    at = row["checked_at"][:16].replace("T", " ")
    return f"{at} {'ok' if row['last_check_ok'] else 'failed'}"


@app.command("check-all")
def channel_check_all(as_json: JsonOpt = False) -> None:
    """Run the channel health pass now: start the check of every active channel that is
    due (in every workspace), as `herald beat` does each minute. A worker runs them."""
    import herald.models  # noqa: F401, PLC0415 - start-up (see _common)
    from herald.core.db import session_scope  # noqa: PLC0415 - start-up (see _common)
    from herald.scheduling.channel_checks import (  # noqa: PLC0415 - start-up (see _common)
        CHECK_QUEUE,
        health_pass,
    )

    with session_scope() as session:
        result = health_pass(session)
    if as_json:
        print_json(result)
        return
    if result.get("off"):
        raise CliError("channel checks are off (HERALD_CHANNEL_CHECK_HOURS=0)")
    out.print(
        f"Started {result['claimed']} channel checks (a worker on the {CHECK_QUEUE} queue "
        "runs them; see `herald channel list`)."
    )


@app.command("add")
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
    from herald.channels.schemas import (  # noqa: PLC0415 - start-up (see _common)
        ChannelCreate,
        ChannelRead,
    )
    from herald.channels.service import create_channel  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace) as (session, principal):
        body = ChannelCreate(
            platform=platform,
            name=name,
            credentials=load_json_arg(credentials, "--credentials"),
            settings=load_json_arg(settings, "--settings"),
        )
        row = ChannelRead.model_validate(create_channel(session, principal, body))
    if as_json:
        print_json(row.model_dump(mode="json"))
        return
    out.print(f"Added channel [bold]{row.name}[/] ({row.platform}): {row.id}")


@app.command("slots")
def channel_slots(
    channel: Annotated[str, typer.Argument(help="Channel id, a unique id prefix, or name.")],
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
    from herald.channels.service import (  # noqa: PLC0415 - start-up (see _common)
        get_channel,
        resolve_channel_ids,
    )
    from herald.scheduling import slots as service  # noqa: PLC0415 - start-up (see _common)

    with workspace_session(workspace) as (session, principal):
        (channel_id,) = resolve_channel_ids(session, principal, [channel])
        name = get_channel(session, principal, channel_id).name
        if slot is not None or timezone is not None:
            current = service.get_config(session, principal, channel_id)
            zone = timezone or current.timezone
            try:
                service.load_zone(zone)
            except ValueError as exc:
                raise CliError(f"--timezone: {exc}") from None
            pairs = list(current.slots) if slot is None else _parse_slots(slot)
            service.set_config(session, principal, channel_id, timezone=zone, slots=pairs)
        config = service.get_config(session, principal, channel_id)
        data = {
            "channel": name,
            "timezone": config.timezone,
            "slots": [
                f"{service.WEEKDAY_NAMES[day]} {moment.strftime('%H:%M')}"
                for day, moment in config.slots
            ],
        }
    if as_json:
        print_json(data)
        return
    slots_text = ", ".join(data["slots"]) or "none (set them with --slot)"
    out.print(f"{data['channel']} ({data['timezone']}): {slots_text}")


def _parse_slots(rules: list[str]) -> list[tuple[int, time]]:
    """("mon,wed 09:00", "daily 18:30") → (weekday number, time) pairs."""
    from herald.scheduling import slots as service  # noqa: PLC0415 - start-up (see _common)

    pairs = []
    for rule in rules:
        days, _, at = rule.strip().rpartition(" ")
        try:
            moment = time.fromisoformat(at)
            names = service.WEEKDAY_NAMES if days.strip() == "daily" else days.split(",")
            pairs += [(service.weekday_number(day.strip()), moment) for day in names]
        except ValueError as exc:
            raise CliError(
                f"--slot {rule!r}: expected days then HH:MM, e.g. 'mon,wed 09:00' "
                f"or 'daily 18:30' ({exc})"
            ) from None
    return pairs
