"""Periodic jobs. Each claims its period first, so two schedulers sending it do no harm.

A job's period guard is named like its entry in ``herald.worker.beat_schedule``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.publishing.reconcile import reconcile as reconcile_pass
from herald.scheduling import service
from herald.worker import app

log = logging.getLogger(__name__)


def run_periodic(
    name: str,
    period_key: Callable[[datetime], int],
    body: Callable[[Session], dict[str, Any]],
) -> dict[str, Any]:
    with session_scope() as session:
        if not service.claim_period(session, name, period_key(utcnow())):
            log.info("%s already ran this period; skipping", name)
            return {"skipped": True}
    try:
        with session_scope() as session:
            result = body(session)
    except Exception as exc:
        with session_scope() as session:
            service.finish_period(session, name, result=None, error=f"{type(exc).__name__}: {exc}")
        raise
    with session_scope() as session:
        service.finish_period(session, name, result=result, error=None)
    return result


@app.task(name="herald.scheduling.reconcile", ignore_result=True)
def reconcile() -> dict[str, Any]:
    """Re-send stuck queued deliveries; re-examine those whose worker died."""
    return run_periodic(
        "reconcile-stuck-deliveries",
        lambda now: service.epoch_key(now, get_settings().reconcile_interval_seconds),
        reconcile_pass,
    )


@app.task(name="herald.maintenance.clean_old_records", ignore_result=True)
def clean_old_records() -> dict[str, Any]:
    return run_periodic("clean-old-records", service.utc_day_key, service.clean_old_records)
