"""Herald's Celery beat scheduler: keeps no state file, and writes a heartbeat.

The periodic jobs themselves are registered in :mod:`herald.scheduling.periodic` as
features arrive; this class adds the heartbeat the health check reads, and wakes at
least once a second.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import Scheduler

from herald.core.db import session_scope
from herald.scheduling import heartbeat

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 5.0


class HeraldScheduler(Scheduler):  # type: ignore[misc]
    max_interval = 1.0

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
        interval: float = super().tick(*args, **kwargs)
        return min(interval, self.max_interval)
