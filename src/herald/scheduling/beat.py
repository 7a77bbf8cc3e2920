"""Herald's Celery beat scheduler.

On top of Celery's periodic jobs, every tick it (1) writes the heartbeat the health
check reads, and (2) dispatches due deliveries, then sleeps until the earliest due time
but never longer than a second, so a post goes out within a fraction of a second of its
time and a newly scheduled one is seen within a second. It keeps no state file: periodic
jobs guard their periods in the database.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import Scheduler

from herald.core.db import session_scope
from herald.scheduling import dispatcher, heartbeat

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 5.0


class HeraldScheduler(Scheduler):  # type: ignore[misc]
    max_interval = dispatcher.MAX_SLEEP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_heartbeat = 0.0

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
        interval: float = super().tick(*args, **kwargs)
        return min(interval, sleep)
