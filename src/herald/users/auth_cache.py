"""The callers of recent requests, kept for a few seconds so that a request with a token
seen moments ago skips the database (and a thread hop) to learn who is calling.

An entry is a token's digest and what ``authenticate`` found for it: the principal, the
token's expiry and when it was last recorded as used. It is used for at most
``HERALD_AUTH_CACHE_SECONDS`` (0: never), never past the token's expiry, and never when
the token's ``last_used_at`` is due to be written again (every minute), so that write
still happens.

Revocation takes effect at once in this process: any change this process makes to a
token, a user or a workspace (revoking or deleting a token, signing out, a new password,
disabling a user, changing a role, deleting a user or a workspace) empties the cache when
its transaction commits. A change made by another process (another API process, or the
command line) reaches this one's cache within ``HERALD_AUTH_CACHE_SECONDS``.

The race that matters: a request that read a token's row before a revocation committed
must not keep its now-stale answer. Each change bumps a generation counter when it is
made and again once committed; a lookup remembers the generation before it reads the
database and stores its answer only if no change happened meanwhile.

Changes are seen through the ORM session (flushed objects, and ``session.execute`` of
``update``/``delete``/``insert`` statements), which is how Herald writes these tables; a
statement run on a bare connection would go unseen until the entry expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from herald.core.settings import get_settings
from herald.users.models import ApiToken, User, Workspace

# A token's last_used_at is written at most this often (users.service.authenticate).
TOUCH_EVERY = timedelta(minutes=1)
MAX_ENTRIES = 10_000
_WATCHED = (ApiToken, User, Workspace)
_WATCHED_TABLES = frozenset(model.__tablename__ for model in _WATCHED)
_DIRTY = "herald_auth_changed"


@dataclass(frozen=True)
class Entry:
    principal: Any  # users.service.Principal (which imports this module)
    expires_at: datetime | None
    last_used_at: datetime | None
    stored_at: float


class PrincipalCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.generation = 0
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, now: datetime) -> Any | None:
        """The principal for a token digest, if known and still good to use."""
        ttl = get_settings().auth_cache_seconds
        entry = self._entries.get(digest)
        if entry is None or ttl <= 0:
            return None
        if (
            self.clock() - entry.stored_at >= ttl
            or (entry.expires_at is not None and entry.expires_at <= now)
            or entry.last_used_at is None
            or now - entry.last_used_at > TOUCH_EVERY
        ):
            self._entries.pop(digest, None)
            return None
        return entry.principal

    def put(
        self,
        digest: str,
        principal: Any,
        *,
        expires_at: datetime | None,
        last_used_at: datetime | None,
        generation: int,
    ) -> None:
        """Keep what a lookup that began at ``generation`` found, unless a change to
        tokens, users or workspaces has happened since."""
        if get_settings().auth_cache_seconds <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = Entry(principal, expires_at, last_used_at, self.clock())

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


principals = PrincipalCache()


def _changed(session: Session) -> None:
    session.info[_DIRTY] = True
    principals.invalidate()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, _WATCHED):
            _changed(session)
            return


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_select:
        return
    table = getattr(state.statement, "table", None)  # an update, delete or insert's
    if getattr(table, "name", None) in _WATCHED_TABLES:
        _changed(state.session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_DIRTY, False):
        principals.invalidate()  # again, now that the change is visible to every reader


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_DIRTY, None)
