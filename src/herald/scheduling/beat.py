"""Herald's Celery beat scheduler.

On top of Celery's periodic jobs, every tick it (1) writes the heartbeat the health
check reads, (2) dispatches due deliveries, then sleeps until the earliest due time
but never longer than a second, so a post goes out within a fraction of a second of its
time and a newly scheduled one is seen within a second, and (3) runs the periodic jobs
it keeps for itself (``herald.worker.RUN_IN_SCHEDULER``: the reconciler) once at the
start of each of their periods, so no amount of work on the workers delays them. It
keeps no state file: periodic jobs guard their periods in the database.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import Scheduler

from herald.core.clock import utcnow
from herald.core.db import session_scope
from herald.scheduling import dispatcher, heartbeat
from herald.scheduling.service import epoch_key
from herald.worker import RUN_IN_SCHEDULER

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 5.0


class HeraldScheduler(Scheduler):  # type: ignore[misc]
    max_interval = dispatcher.MAX_SLEEP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_heartbeat = 0.0
        # Each of its own jobs, and the period this process last ran it in.
        self._own: dict[str, dict[str, Any]] = {}
        self._own_periods: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """Celery's schedule without the jobs this process runs itself."""
        jobs: dict[str, dict[str, Any]] = dict(self.app.conf.beat_schedule)
        self._own = {name: job for name, job in jobs.items() if job["task"] in RUN_IN_SCHEDULER}
        if self._own:
            self.app.loader.import_default_modules()  # their tasks, as a worker has them
        self.install_default_entries(self.data)
        self.merge_inplace({name: job for name, job in jobs.items() if name not in self._own})

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY:
            try:
                with session_scope() as session:
                    heartbeat.beat(session)
                self._last_heartbeat = now
            except Exception:
                log.exception("could not write the scheduler heartbeat")
        sleep = dispatcher.MAX_SLEEP
        try:
            dispatcher.dispatch_once()
            sleep = dispatcher.seconds_until_next()
        except Exception:
            # The database or broker is away: say so and try again within a second.
            log.exception("dispatching due deliveries failed")
        self.run_own_jobs()
        interval: float = super().tick(*args, **kwargs)
        return min(interval, sleep)

    def run_own_jobs(self) -> None:
        """Run each of its own jobs whose period began since this process last ran it.

        The job claims the period in the database first, so with two schedulers one runs
        it and the other finds the period taken. A failed run is not repeated within its
        period (it is logged and recorded); the next period tries again."""
        now = utcnow()
        for name, job in self._own.items():
            period = epoch_key(now, float(job["schedule"]))
            if self._own_periods.get(name) == period:
                continue
            self._own_periods[name] = period
            try:
                self.app.tasks[job["task"]]()
            except Exception:
                log.exception("periodic job %s failed", name)
