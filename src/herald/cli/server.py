"""Herald's processes: everything at once (`up`), or the API, a worker, the scheduler one
by one; and the schema migration."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from herald.cli._common import CliError, out
from herald.runtime import START_TIMEOUT


def up(
    host: Annotated[str | None, typer.Option(help="Listen address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: 8000].")] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show every process's output here instead of in <data dir>/logs/.",
        ),
    ] = False,
    start_timeout: Annotated[
        float,
        typer.Option(min=1, help="Seconds to wait for everything to be healthy before giving up."),
    ] = START_TIMEOUT,
    layout: Annotated[
        str | None,
        typer.Option(
            help="compact: the API and one worker that also schedules (least memory); split: "
            "the API, `herald worker` and `herald beat`, as a deployment runs them "
            "[default: HERALD_UP_LAYOUT, compact]."
        ),
    ] = None,
) -> None:
    """Start everything on this machine: API + dashboard, worker, scheduler (and Redis).

    The address and how to sign in are printed once everything is healthy."""
    from herald.core.settings import UpLayout, get_settings  # noqa: PLC0415 - start-up
    from herald.runtime.supervisor import run_up  # noqa: PLC0415 - start-up (see _common)

    settings = get_settings()
    choices = [item.value for item in UpLayout]
    if layout is not None and layout not in choices:
        raise CliError(f"--layout must be one of: {', '.join(choices)}")
    code = run_up(
        host or settings.host,
        port or settings.port,
        verbose=verbose,
        start_timeout=start_timeout,
        layout=UpLayout(layout) if layout else None,  # None: HERALD_UP_LAYOUT
    )
    raise typer.Exit(code)


def api(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Serve the API and the dashboard (uvicorn)."""
    import uvicorn  # noqa: PLC0415 - start-up (see _common)

    from herald.app import create_app  # noqa: PLC0415 - start-up (see _common)
    from herald.core import heap  # noqa: PLC0415 - start-up (see _common)
    from herald.core.logging import configure_logging  # noqa: PLC0415 - start-up (see _common)
    from herald.core.proxies import uvicorn_proxy_options  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)

    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.metrics_port:
        _serve_metrics(host or settings.host, settings.metrics_port)
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_config": None,
        **uvicorn_proxy_options(settings),
    }
    if settings.api_workers > 1:
        # Each worker process builds the app itself (and freezes its start-up heap).
        uvicorn.run("herald.app:serve", factory=True, workers=settings.api_workers, **options)
        return
    application = create_app()
    # Start-up is done (routes, schemas, models): the collector can leave it alone.
    heap.freeze()
    heap.serve_requests()
    uvicorn.run(application, **options)


def _serve_metrics(host: str, port: int) -> None:
    """/metrics on its own port, in a thread of the API process: a daemon thread, so it
    ends with the process when the main server stops."""
    import threading  # noqa: PLC0415 - start-up (see _common)

    import uvicorn  # noqa: PLC0415 - start-up (see _common)

    from herald.metrics.api import create_metrics_app  # noqa: PLC0415 - start-up

    server = uvicorn.Server(
        uvicorn.Config(create_metrics_app(), host=host, port=port, log_config=None)
    )
    threading.Thread(target=server.run, name="herald-metrics", daemon=True).start()


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Processes/threads [default: per queue, see README].")
    ] = None,
    pool: Annotated[
        str | None, typer.Option(help="prefork, threads or solo [default: per queue].")
    ] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated; default all.")] = None,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact",
            help="One process for this machine: every queue on threads, and the scheduler "
            "on a thread (no `herald beat` needed). What `herald up` runs by default.",
        ),
    ] = False,
) -> None:
    """Run Celery workers on Herald's queues: publishing on many threads (deliveries wait on
    the network), the others on processes; with --queues, --pool or --concurrency, one
    worker as asked; with --compact, one worker for everything and the scheduler."""
    from herald.core.logging import configure_logging  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)
    from herald.worker import app as celery_app  # noqa: PLC0415 - start-up (see _common)
    from herald.worker import compact_plan, run_celery, worker_plans  # noqa: PLC0415 - start-up

    settings = get_settings()
    configure_logging(settings.log_level)
    if compact:
        if queues or pool:
            raise CliError("--compact runs every queue on threads: leave out --queues and --pool")
        from herald.scheduling.embedded import EmbeddedScheduler  # noqa: PLC0415 - start-up

        EmbeddedScheduler(celery_app).connect()
        run_celery(compact_plan(settings, concurrency).argv(settings.log_level))
        return
    wanted = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    plans = worker_plans(settings, wanted, pool=pool, concurrency=concurrency)
    runs = [lambda plan=plan: run_celery(plan.argv(settings.log_level)) for plan in plans]
    if len(runs) == 1:
        runs[0]()
        return
    from herald.runtime.workers import run_beside  # noqa: PLC0415 - start-up (see _common)

    run_beside(*runs)


def beat() -> None:
    """Run the scheduler (Celery beat with Herald's scheduler). A second one (say, on another
    machine) does no harm: due deliveries and periodic runs are claimed in the database."""
    from herald.core.logging import configure_logging  # noqa: PLC0415 - start-up (see _common)
    from herald.core.settings import get_settings  # noqa: PLC0415 - start-up (see _common)
    from herald.scheduling.dispatcher import MAX_SLEEP  # noqa: PLC0415 - start-up (see _common)
    from herald.worker import app as celery_app  # noqa: PLC0415 - start-up (see _common)
    from herald.worker import run_celery  # noqa: PLC0415 - start-up (see _common)

    settings = get_settings()
    configure_logging(settings.log_level)
    table = Table("periodic job", "task", "schedule", title="Herald's scheduler")
    table.add_row(
        "dispatch-due-deliveries", "(in this process)", f"every tick, at most {MAX_SLEEP:g} s apart"
    )
    for name, entry in celery_app.conf.beat_schedule.items():
        table.add_row(name, entry["task"], str(entry["schedule"]))
    out.print(table)
    run_celery(["beat", f"--loglevel={settings.log_level}"])


def migrate() -> None:
    """Bring the database schema up to date."""
    from herald.core.migrate import upgrade  # noqa: PLC0415 - start-up (see _common)

    def waiting() -> None:
        out.print("Another `herald migrate` is upgrading this database; waiting for it.")

    upgrade(on_wait=waiting)
    out.print("[green]Database is up to date.[/]")


COMMANDS = (up, api, worker, beat, migrate)
