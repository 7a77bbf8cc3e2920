"""The periodic jobs as a person sees them: what runs, how often, when it last ran and
when it runs next."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from sqlalchemy.orm import Session

from herald.core.clock import utcnow
from herald.scheduling import service
from herald.scheduling.dispatcher import MAX_SLEEP
from herald.scheduling.heartbeat import last_beat
from herald.scheduling.models import PeriodicRun
from herald.scheduling.schemas import PeriodicJob
from herald.worker import app

# Each crontab field's whole range: a field that covers it is written "*".
_CRON_FIELDS = (
    ("minute", range(60)),
    ("hour", range(24)),
    ("day_of_month", range(1, 32)),
    ("month_of_year", range(1, 13)),
    ("day_of_week", range(7)),
)


def cron_spec(schedule: crontab) -> str:
    """The five-field spec of a crontab, from its public (expanded) fields."""
    fields = []
    for name, whole in _CRON_FIELDS:
        values: set[int] = getattr(schedule, name)
        fields.append("*" if values == set(whole) else ",".join(str(v) for v in sorted(values)))
    return " ".join(fields)


def periodic_jobs(session: Session) -> list[PeriodicJob]:
    """The dispatcher (inside the scheduler), then every job of the beat schedule."""
    beat_at = last_beat(session)
    jobs = [
        PeriodicJob(
            name="dispatch-due-deliveries",
            task="(inside herald beat)",
            schedule=f"every tick, at most {MAX_SLEEP:g} s apart",
            last_run_at=beat_at,
            last_finished_at=beat_at,
            last_status="ok" if beat_at else None,
            last_error=None,
            next_run_at=(beat_at or utcnow()) + timedelta(seconds=MAX_SLEEP),
        )
    ]
    runs = service.periodic_runs(session)
    for name, entry in app.conf.beat_schedule.items():
        run = runs.get(name)
        description, next_run = _timing(entry["schedule"], run)
        jobs.append(
            PeriodicJob(
                name=name,
                task=entry["task"],
                schedule=description,
                last_run_at=run.last_run_at if run else None,
                last_finished_at=run.last_finished_at if run else None,
                last_status=run.last_status if run else None,
                last_error=run.last_error if run else None,
                next_run_at=next_run,
            )
        )
    return jobs


def _timing(schedule: Any, run: PeriodicRun | None) -> tuple[str, datetime]:
    """How a schedule reads, and when it next runs after ``run``."""
    last = run.last_run_at if run else utcnow()
    if isinstance(schedule, int | float):
        return f"every {schedule:g} s", last + timedelta(seconds=schedule)
    return f"cron {cron_spec(schedule)} (UTC)", utcnow() + schedule.remaining_estimate(last)
