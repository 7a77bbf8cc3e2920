"""Herald's scheduler class, driven tick by tick in this process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from herald.core.clock import set_clock
from herald.core.settings import get_settings
from herald.scheduling.beat import HeraldScheduler
from herald.scheduling.models import PeriodicRun
from herald.worker import app
from tests.conftest import SessionFactory


def _constant(moment: datetime) -> datetime:
    return moment


def test_the_scheduler_runs_the_reconciler_itself_once_per_period(
    db: SessionFactory, redis_broker: str
) -> None:

    one, two = HeraldScheduler(app=app), HeraldScheduler(app=app)
    # Never sent to a worker, where it would wait behind deliveries for a free slot.
    assert "reconcile-stuck-deliveries" not in one.schedule
    assert "clean-old-records" in one.schedule

    period = get_settings().reconcile_interval_seconds
    start = datetime(2030, 1, 1, tzinfo=UTC)  # the start of a period
    try:
        for n in range(3):
            moment = start + timedelta(seconds=n * period + 0.5)
            set_clock(partial(_constant, moment))
            # Each scheduler ticks many times a period: one run per period in all.
            for scheduler in (one, two, one, two):
                scheduler.run_own_jobs()
    finally:
        set_clock(None)
    with db() as s:
        run = s.get_one(PeriodicRun, "reconcile-stuck-deliveries")
        assert (run.run_count, run.skipped_count) == (3, 3)
        assert run.last_status == "ok"
