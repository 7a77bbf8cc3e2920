"""`herald usage`: what generation used, from the ledger, as a table and a bar chart."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Column, Table

from herald.cli._common import CliError, JsonOpt, WorkspaceOpt, out, print_json
from herald.cli._common import workspace_session as session_for
from herald.cli.agents import money

WIDTH = 80
LABEL_WIDTH = 20
# Eighths of a block, for the bar's last cell.
_PARTS = " ▏▎▍▌▋▊▉"
_FULL = "█"


def bar_chart(values: list[tuple[str, float]], shown: list[str], width: int = WIDTH) -> list[str]:
    """One line per value: its label (cut to fit), a bar of block characters as long as
    the value against the largest (to an eighth of a character), and the value as shown.
    Every line fits ``width`` columns."""
    if not values:
        return []
    value_width = max(len(s) for s in shown)
    bar_width = max(1, width - LABEL_WIDTH - value_width - 3)
    largest = max(v for _, v in values) or 1.0
    lines = []
    for (label, value), text in zip(values, shown, strict=True):
        eighths = round(max(0.0, value) / largest * bar_width * 8)
        bar = _FULL * (eighths // 8) + (_PARTS[eighths % 8] if eighths % 8 else "")
        name = label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"
        lines.append(f"{name:<{LABEL_WIDTH}} {bar:<{bar_width}} {text:>{value_width}}".rstrip())
    return lines


def usage(
    by: Annotated[str, typer.Option("--by", help="agent, provider, model or day.")] = "agent",
    start: Annotated[
        str | None,
        typer.Option("--from", help="A date (YYYY-MM-DD) or an ISO time with an offset."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="A date (inclusive) or an ISO time.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generation usage from the ledger: runs, calls, tokens, cost and latency per agent,
    provider, model or day [default: this month, in the workspace's zone]."""
    from herald.agents.usage import GROUPS, usage_report  # noqa: PLC0415 - start-up (see _common)

    if by not in GROUPS:
        raise CliError(f"--by must be one of {', '.join(GROUPS)}, not {by!r}")
    with session_for(workspace) as (session, principal):
        report = usage_report(session, principal, start=start, end=end, group_by=by)
        data = report.model_dump(mode="json", by_alias=True)
    if as_json:
        print_json(data)
        return
    _print(data)


def _print(data: dict[str, Any]) -> None:
    span = f"{data['from'][:16]} to {data['to'][:16]}".replace("T", " ") + " UTC"
    out.print(f"Usage by {data['group_by']}, {span}; cost in {data['currency']}")
    rows = data["rows"]
    if not rows:
        out.print("No provider calls in this range.")
        return
    numbers = ("runs", "calls", "tokens", "cost", "p50 ms", "p95 ms")
    table = Table("", *(Column(n, justify="right") for n in numbers), "quota left")
    for r in [*rows, data["totals"]]:
        table.add_row(
            r["label"],
            str(r["runs"]),
            str(r["calls"]),
            f"{r['tokens']:,}",
            money(r["cost"]),
            "-" if r["latency_p50_ms"] is None else str(r["latency_p50_ms"]),
            "-" if r["latency_p95_ms"] is None else str(r["latency_p95_ms"]),
            _left(r["quota_left"]),
            end_section=r is rows[-1],
        )
    out.print(table)
    by_cost = any(r["cost"] for r in rows)
    values = [(r["label"], float(r["cost"] if by_cost else r["tokens"])) for r in rows]
    shown = [money(r["cost"]) if by_cost else f"{r['tokens']:,}" for r in rows]
    out.print("cost" if by_cost else "tokens (no cost recorded)")
    for line in bar_chart(values, shown):
        out.print(line, markup=False, highlight=False)


def _left(quota_left: dict[str, Any] | None) -> str:
    if not quota_left:
        return "-"
    parts = []
    if quota_left["drafts"] is not None:
        parts.append(f"{quota_left['drafts']} drafts")
    if quota_left["tokens"] is not None:
        parts.append(f"{quota_left['tokens']:,} tokens")
    if quota_left["cost"] is not None:
        parts.append(money(quota_left["cost"]))
    return "\n".join(parts)
