"""The scheduler on a thread of a worker, instead of a ``herald beat`` process of its own:
what ``herald worker --compact`` runs, and so ``herald up``'s compact layout (one process
for the worker and the scheduler saves the ~130 MB a process of Herald's costs).

It is the same scheduler (:class:`herald.scheduling.beat.HeraldScheduler`, through
Celery's embedded beat service), so everything ``herald beat`` guarantees holds: periods
and due deliveries are claimed in the database, so a second scheduler elsewhere does no
harm. Around it:

- It starts once the worker is ready (its broker connection and pool are up), and stops
  when the worker begins to shut down: no new dispatch while the worker finishes its
  running tasks. The due deliveries it leaves are in the database, for the next start.
- A scheduler thread that ends while nobody asked (a bug, an error Celery's loop does not
  catch) stops the worker too, warm (running tasks finish) and with exit status 1, with an
  error in its log: the process manager (``herald up``, systemd) then restarts both,
  instead of a worker running on with no scheduler.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.beat import EmbeddedService
from celery.signals import worker_ready, worker_shutting_down
from celery.worker import state

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 5.0  # a tick is short; the loop sleeps at most 1 s between ticks
EXIT_SCHEDULER_ENDED = 1


class EmbeddedScheduler:
    """Runs the scheduler on a thread beside a worker, tied to the worker's life."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.stopping = False
        self._service: Any = None
        self._watch: threading.Thread | None = None

    def connect(self) -> None:
        """Start with the worker, stop with it (Celery's worker signals)."""
        worker_ready.connect(self._on_ready, weak=False)
        worker_shutting_down.connect(self._on_shutting_down, weak=False)

    def start(self) -> None:
        # thread=True: Celery's embedded service otherwise forks a process, which would
        # cost the memory this layout saves. Its default scheduler is Celery's persistent
        # one (a schedule file in the working directory), not the app's: name Herald's.
        self._service = EmbeddedService(
            self.app, thread=True, scheduler_cls=self.app.conf.beat_scheduler
        )
        self._service.start()
        self._watch = threading.Thread(
            target=self._watch_service, name="herald-scheduler-watch", daemon=True
        )
        self._watch.start()
        log.info("the scheduler runs on a thread of this worker (herald beat is not needed)")

    def stop(self) -> None:
        self.stopping = True
        if self._service is None:
            return
        self._service.service.stop(wait=False)
        self._service.join(STOP_WAIT_SECONDS)
        if self._service.is_alive():
            log.warning("the scheduler thread did not stop within %g s", STOP_WAIT_SECONDS)

    @property
    def running(self) -> bool:
        return self._service is not None and self._service.is_alive()

    def _watch_service(self) -> None:
        self._service.join()
        if not self.stopping:
            self.stopping = True
            log.error("the scheduler thread ended unasked; stopping this worker to restart both")
            # What a SIGTERM does (a warm stop: the worker's loop sees it within a second),
            # with a failure's exit status instead of 0, so that a service manager
            # restarting only failed units restarts this one.
            state.should_stop = EXIT_SCHEDULER_ENDED

    def _on_ready(self, **_: Any) -> None:
        if self._service is None:
            self.start()

    def _on_shutting_down(self, **_: Any) -> None:
        self.stop()
