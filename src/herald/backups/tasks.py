"""Backup tasks (thin: the bodies are herald.backups.service); the `maintenance` queue."""

from __future__ import annotations

from typing import Any

from herald.backups import service
from herald.worker import app


@app.task(name=service.CREATE_TASK)
def create(job_id: str) -> dict[str, Any]:
    """A backup an admin asked for (POST /api/v1/backups)."""
    return service.run_backup(job_id)


@app.task(name="herald.backups.nightly", ignore_result=True)
def nightly() -> dict[str, Any]:
    """The nightly backup and retention (HERALD_BACKUP_AT)."""
    return service.nightly_backup()
