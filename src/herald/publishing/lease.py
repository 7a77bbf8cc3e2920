"""Leases that outlast their attempts: renewed while the attempt runs.

A claimed delivery carries ``lease_until``; once it passes, the reconciler takes the
worker for dead and re-examines the delivery. An attempt's length is not known when it
is claimed (a slow platform, a thread of many parts, images to upload), and an
adapter's per-request timeouts do not bound it either (a read timeout is per read: a
receiver that trickles bytes keeps one request alive for ever). So the lease is short
(``HERALD_PUBLISH_LEASE_SECONDS``) and this process renews it while the attempt runs:
a worker that dies stops renewing, and its deliveries are re-examined one lease later.

One thread per process renews every attempt running in it that has used half of its
lease, in one short transaction, so a fast delivery costs no write at all. It wakes
every quarter lease, and holds nothing open while it sleeps.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from herald.core import direct
from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.core.tx import core_scope
from herald.publishing import statements

log = logging.getLogger(__name__)

# After a renewal that failed (the database busy or away), try again this soon: the
# lease has a quarter of its length left at worst.
RETRY_AFTER_FAILURE = 1.0

Attempt = tuple[uuid.UUID, int]  # (publication id, attempt number)


def lease_length() -> timedelta:
    return timedelta(seconds=get_settings().publish_lease_seconds)


class LeaseKeeper:
    """Keeps the leases of the attempts running in this process from running out."""

    def __init__(self) -> None:
        self._reset()
        # A forked child (a Celery pool process) has no renewal thread, and must not
        # inherit a lock some parent thread held at the fork.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Each running attempt, and the lease_until it holds at least.
        self._held: dict[Attempt, datetime] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def kept(self, publication_id: uuid.UUID, attempt: int, claimed_at: datetime) -> Iterator[None]:
        """Renew the lease of this attempt (claimed at or after ``claimed_at``) until the
        block ends, however it ends."""
        key = (publication_id, attempt)
        with self._lock:
            # The thread sleeps without a timeout while nothing runs: wake it.
            wake = not self._held
            self._held[key] = claimed_at + lease_length()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="herald-lease-keeper", daemon=True
                )
                self._thread.start()
                wake = True
        if wake:
            self._wake.set()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def running(self) -> dict[Attempt, datetime]:
        """The attempts this process keeps the leases of (for tests and diagnostics)."""
        with self._lock:
            return dict(self._held)

    def _run(self) -> None:
        pause: float | None = None
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            try:
                pause = self.renew_due()
            except Exception:  # never let the thread die: the next pass tries again
                log.exception("renewing delivery leases failed")
                pause = RETRY_AFTER_FAILURE

    def renew_due(self) -> float | None:
        """Renew every lease that is half used; return how long to sleep (None: until an
        attempt starts)."""
        lease = lease_length()
        quarter = max(lease.total_seconds() / 4, 0.05)
        now = utcnow()
        with self._lock:
            if not self._held:
                return None
            due = [key for key, until in self._held.items() if until - now <= lease / 2]
        if not due:
            return quarter
        until = now + lease
        try:
            renewed = self._write(due, until)
        except Exception as exc:
            log.warning(
                "could not renew the lease of %d running delivery attempt(s); trying again "
                "in %g s: %s",
                len(due),
                RETRY_AFTER_FAILURE,
                exc,
            )
            return RETRY_AFTER_FAILURE
        with self._lock:
            for key in due:
                if key not in self._held:
                    continue  # finished meanwhile
                if key in renewed:
                    self._held[key] = until
                else:
                    # The delivery is no longer this attempt's (settled, or re-examined
                    # after this process stalled past its lease): nothing left to keep.
                    del self._held[key]
        return quarter

    @staticmethod
    def _write(due: list[Attempt], until: datetime) -> set[Attempt]:
        renewed: set[Attempt] = set()
        with core_scope() as tx:
            connection = tx.connection()
            for publication_id, attempt in due:
                if direct.execute(
                    connection,
                    statements.renew_lease(),
                    {"p_id": publication_id, "p_attempt": attempt, "p_lease_until": until},
                ):
                    renewed.add((publication_id, attempt))
        return renewed


keeper = LeaseKeeper()
