"""Backups as Herald's API and scheduler see them: a job with progress, the nightly run
with retention, and the list an admin reads.

The archive work (herald.backups.archive) runs with no database transaction open: on
SQLite every transaction takes the writer lock, and a backup held open for minutes would
stop every other write. Progress goes to the job row in short transactions of its own.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from herald.backups import archive
from herald.backups.schemas import BackupRead
from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.core.errors import Forbidden, NotFound
from herald.core.settings import get_settings
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job
from herald.jobs.runner import run_job
from herald.scheduling.service import claim_period, finish_period, utc_day_key
from herald.users.principal import Principal, default_principal
from herald.webhooks import outbox
from herald.worker import app as celery_app

log = logging.getLogger(__name__)

KIND = "backup"
CREATE_TASK = "herald.backups.create"
NIGHTLY = "backup-nightly"
# Progress writes at most this often (seconds): a media directory of many small files
# would otherwise cost a transaction per file.
PROGRESS_EVERY = 1.0


def require_instance_admin(session: Session, principal: Principal) -> None:
    """An archive holds every workspace's data and the keys that decrypt every channel:
    only an admin of the instance's first workspace (the one `herald up` made, whose
    first admin the command line acts as) may touch backups. Another workspace's admin
    is refused like a member (403)."""
    principal.require_admin()
    if default_principal(session).workspace_id != principal.workspace_id:
        raise Forbidden(
            "Backups hold every workspace: only the first workspace's admins manage them."
        )


def start_backup(session: Session, principal: Principal) -> Job:
    """Record the job and send its task once this transaction commits."""
    require_instance_admin(session, principal)
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind=KIND,
        params={},
    )
    job_id = job.id
    after_commit(session, lambda: celery_app.send_task(CREATE_TASK, (job_id,), task_id=job_id))
    return job


def list_backups(session: Session, principal: Principal) -> list[BackupRead]:
    require_instance_admin(session, principal)
    return [BackupRead(**b.__dict__) for b in archive.list_backups(get_settings())]


def download_path(session: Session, principal: Principal, name: str) -> Path:
    require_instance_admin(session, principal)
    return archive.existing_backup(get_settings(), name)


def delete_backup(session: Session, principal: Principal, name: str) -> None:
    require_instance_admin(session, principal)
    archive.delete_backup(get_settings(), name)


def _job_progress(job_id: str) -> archive.Progress:
    last = 0.0

    def report(done: int, total: int, message: str) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < PROGRESS_EVERY:
            return
        last = now
        with session_scope() as session:
            jobs.set_progress(session, job_id, done, message)
            session.get_one(Job, job_id).progress_total = total

    return report


def run_backup(job_id: str) -> dict[str, Any]:
    """The job's body: the archive written between two short transactions."""

    def prepare(_session: Session, _job: Job) -> None:
        return None

    def call(_: None) -> Path:
        return archive.create_backup(get_settings(), _job_progress(job_id))

    def record(session: Session, job: Job, path: Path) -> dict[str, Any]:
        result = {"name": path.name, "size": path.stat().st_size}
        _announce(session, job.workspace_id, "manual", result, None)
        return result

    try:
        return run_job(job_id, prepare, call, record)
    except Exception as exc:
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is not None:
                _announce(session, job.workspace_id, "manual", {}, f"{type(exc).__name__}: {exc}")
        raise


def _announce(
    session: Session,
    workspace_id: uuid.UUID | None,
    trigger: str,
    result: dict[str, Any],
    error: str | None,
) -> None:
    """``backup.finished`` for the event webhooks, in this transaction (outbox), to the
    workspace whose admins manage backups (the first one, for the nightly run)."""
    if workspace_id is None:
        try:
            workspace_id = default_principal(session).workspace_id
        except NotFound:
            return  # no user yet: nobody to tell
    outbox.record(
        session,
        workspace_id,
        "backup.finished",
        {
            "name": result.get("name"),
            "size": result.get("size"),
            "ok": error is None,
            "error": error,
            "trigger": trigger,
        },
    )


def nightly_backup() -> dict[str, Any]:
    """Once a UTC day (claimed like every periodic job, so two schedulers make one
    archive): write a backup, then prune past retention."""
    with session_scope() as session:
        if not claim_period(session, NIGHTLY, utc_day_key(utcnow())):
            log.info("%s already ran today; skipping", NIGHTLY)
            return {"skipped": True}
    settings = get_settings()
    try:
        path = archive.create_backup(settings)
        pruned = archive.prune(settings)
    except Exception as exc:
        with session_scope() as session:
            error = f"{type(exc).__name__}: {exc}"
            finish_period(session, NIGHTLY, result=None, error=error)
            _announce(session, None, "nightly", {}, error)
        raise
    result = {"name": path.name, "size": path.stat().st_size, "pruned": pruned}
    with session_scope() as session:
        finish_period(session, NIGHTLY, result=result, error=None)
        _announce(session, None, "nightly", result, None)
    return result
