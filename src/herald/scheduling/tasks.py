"""Periodic jobs. Each claims its period first, so two schedulers sending it do no harm.

A job's period guard is named like its entry in ``herald.worker.beat_schedule``.
"""

from __future__ import annotations

from typing import Any

from herald.core.settings import get_settings
from herald.publishing.reconcile import reconcile as reconcile_pass
from herald.scheduling import channel_checks, service
from herald.worker import CHANNEL_CHECK_EVERY_SECONDS, app


@app.task(name="herald.scheduling.reconcile", ignore_result=True)
def reconcile() -> dict[str, Any]:
    """Re-send stuck queued deliveries; re-examine those whose worker died."""
    return service.run_periodic(
        "reconcile-stuck-deliveries",
        lambda now: service.epoch_key(now, get_settings().reconcile_interval_seconds),
        reconcile_pass,
    )


@app.task(name="herald.scheduling.check_channels", ignore_result=True)
def check_channels() -> dict[str, Any]:
    """Start the channel test of every active channel whose check is due (runs in the
    scheduler; the tests go to the maintenance queue)."""
    return service.run_periodic(
        "check-channels",
        lambda now: service.epoch_key(now, CHANNEL_CHECK_EVERY_SECONDS),
        channel_checks.health_pass,
    )


@app.task(name="herald.maintenance.clean_old_records", ignore_result=True)
def clean_old_records() -> dict[str, Any]:
    return service.run_periodic("clean-old-records", service.utc_day_key, service.clean_old_records)
