"""Waiting on a background job from the command line: a live progress display that reads
the job's row (Herald's own records, not the result backend) until the job ends."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from herald.cli._common import CliError

POLL_SECONDS = 0.3


def job_row(job_id: str) -> dict[str, Any]:
    """The job as `GET /api/v1/jobs/{id}` shows it."""
    from herald.core.db import session_scope  # noqa: PLC0415 - start-up (see _common)
    from herald.jobs.models import Job  # noqa: PLC0415 - start-up (see _common)
    from herald.jobs.schemas import JobRead  # noqa: PLC0415 - start-up (see _common)

    with session_scope() as session:
        return JobRead.of(session.get_one(Job, job_id)).model_dump(mode="json")


def wait_for_job(
    job_id: str,
    *,
    description: str,
    timeout: float,
    quiet: bool = False,
    raise_on_timeout: bool = True,
) -> dict[str, Any]:
    """Poll the job until it is done (a progress bar unless ``quiet``); the job's row.
    Past ``timeout`` a CliError says where to look (is a worker running?), or, without
    ``raise_on_timeout``, the row as it is is returned."""
    deadline = time.monotonic() + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[message]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, disable=quiet) as progress:
        bar = progress.add_task(description, total=None, message="waiting for a worker")
        while True:
            job = job_row(job_id)
            progress.update(
                bar,
                total=job["progress_total"],
                completed=job["progress_done"],
                message=job["message"] or str(job["state"]).lower(),
            )
            if job["ready"]:
                return job
            if time.monotonic() > deadline:
                if not raise_on_timeout:
                    return job
                raise CliError(
                    f"job {job_id} is still {str(job['state']).lower()} after {timeout:.0f} s; "
                    f"see `GET /api/v1/jobs/{job_id}` (is a worker running? `herald up`)"
                )
            time.sleep(POLL_SECONDS)
