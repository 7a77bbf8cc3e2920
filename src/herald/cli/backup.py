"""`herald backup`: make, list, check, restore and prune backup archives (docs/backups.md).

These run in the command's own process, not on a worker: a restore must work while
Herald (and so its workers) is stopped, and an operator wants `create` to finish before
the shell returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from herald.cli._common import CliError, JsonOpt, out, print_json

if TYPE_CHECKING:
    from herald.backups.archive import Progress as ProgressFn

app = typer.Typer(help="Backups of the database, media and generated keys.", no_args_is_help=True)


@contextmanager
def _bar(description: str) -> Iterator[ProgressFn]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[message]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, console=out) as progress:
        task = progress.add_task(description, total=None, message="")

        def report(done: int, total: int, message: str) -> None:
            progress.update(task, completed=done, total=total, message=message)

        yield report


def _archive(value: str) -> Path:
    from herald.backups.archive import NAME_RE, backup_path  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    path = Path(value)
    if path.is_file():
        return path
    if NAME_RE.match(value):
        path = backup_path(get_settings(), value)
        if path.is_file():
            return path
    raise CliError(f"No backup {value}: give a path or a name from `herald backup list`.")


@app.command("create")
def backup_create(json_out: JsonOpt = False) -> None:
    """Write a new archive to <data_dir>/backups."""
    from herald.backups.archive import create_backup  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    with _bar("backing up") as report:
        path = create_backup(get_settings(), report)
    if json_out:
        print_json({"name": path.name, "path": str(path), "size": path.stat().st_size})
    else:
        out.print(f"Wrote {path} ({path.stat().st_size} bytes).")


@app.command("list")
def backup_list(json_out: JsonOpt = False) -> None:
    """Backups, newest first, with whether their checksums were verified."""
    from herald.backups.archive import list_backups  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    found = list_backups(get_settings())
    if json_out:
        print_json([b.__dict__ for b in found])
        return
    if not found:
        out.print("No backups yet (`herald backup create`).")
    for b in found:
        out.print(f"{b.name}  {b.size:>12} bytes  {b.created_at:%Y-%m-%d %H:%M} UTC  {b.checksum}")


@app.command("verify")
def backup_verify(archive: Annotated[str, typer.Argument(help="Name or path.")]) -> None:
    """Check every member of an archive against its manifest's SHA-256."""
    from herald.backups.archive import verify_backup  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    key = get_settings().backup_encryption_key
    path = _archive(archive)
    with _bar("verifying") as report:
        manifest = verify_backup(path, report, key=key.get_secret_value() if key else None)
    out.print(f"{path.name}: {len(manifest['members'])} member(s), every checksum matches.")


@app.command("restore")
def backup_restore(
    archive: Annotated[str, typer.Argument(help="Name or path.")],
    to: Annotated[Path | None, typer.Option("--to", help="A new data directory.")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="An empty database to restore into.")
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Replace the configured data (Herald stopped).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change.")] = False,
) -> None:
    """Restore an archive: verified first, into a new directory or database by default."""
    from herald.backups.archive import plan_restore, restore  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    settings = get_settings()
    path = _archive(archive)
    with _bar("verifying") as report:
        plan = plan_restore(
            settings, path, to=to, database_url=database_url, in_place=in_place, progress=report
        )
    verb = "Would" if dry_run else "Will"
    out.print(f"{path.name} verified. {verb}:")
    for step in plan.steps:
        out.print(f"  - {step}")
    if dry_run:
        return
    with _bar("restoring") as report:
        restore(settings, plan, report)
    out.print(f"Restored into {plan.data_dir}.")


@app.command("prune")
def backup_prune(json_out: JsonOpt = False) -> None:
    """Delete backups past retention (HERALD_BACKUP_KEEP_DAILY / _WEEKLY)."""
    from herald.backups.archive import prune  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    deleted = prune(get_settings())
    if json_out:
        print_json({"deleted": deleted})
    else:
        out.print(
            f"Deleted {len(deleted)} backup(s)" + (": " + ", ".join(deleted) if deleted else ".")
        )
