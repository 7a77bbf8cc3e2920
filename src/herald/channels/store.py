"""Where adapters keep what outlives one delivery: the channel's row, encrypted.

One :class:`DatabaseStore` per delivery attempt or channel test. It never holds a
transaction while the adapter talks to the platform, and never opens one while another
is open on its thread (:class:`TransactionOpen`: that would wait for itself on SQLite):

- **Reads** are made once, in one short read-only transaction, and kept for the
  store's lifetime; or not at all, when the caller already read the columns in its own
  transaction (``session_encrypted=``, ``progress=``). ``session(fresh=True)`` reads again.
- **Writes** go to the database at once outside a :meth:`~ChannelStore.batch`; inside
  one, together at each checkpoint, and when it ends with an exception or a changed login
  (progress saved after the last checkpoint of a delivery that returned its receipt is
  nothing a retry needs: see ChannelStore); with
  ``defer_writes=True`` only when the caller asks, in its own transaction
  (:meth:`DatabaseStore.write_back`): the channel test records the login it made with the
  test's outcome. So a delivery costs one read and one write per checkpoint.
- A cached login belongs to the credentials it was made with: it is written only while
  the channel still has them (a person may replace them during a delivery).
- **A delivery's progress** lives in the delivery's row, which is publishing's: the store
  reads and writes it through the :class:`DeliveryProgress` it is given
  (``progress_rows=``; ``publishing.progress`` builds it), so channels never imports
  publishing. A store built without one (the channel test, a preview) raises
  :class:`NoDeliveryProgress` if an adapter asks for a delivery's progress.
- **Refreshing credentials** takes a lease on the channel (kept beside the cached login)
  in one short transaction, calls the platform with none open, and stores the result in
  another: two workers never spend the same single-use refresh token, and neither holds
  a lock while it waits on the platform.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Protocol

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from herald.adapters.base import ChannelStore, RetryableError
from herald.channels.models import Channel
from herald.core.crypto import decrypt_json, encrypt_json
from herald.core.db import read_scope, session_scope, transaction_open
from herald.core.exceptions import HeraldFault
from herald.core.tx import Tx

# Longer than any adapter's refresh call may take (its connect timeout, at most 60 s,
# plus its read timeout, at most 300 s): a lease outlives the call it covers.
REFRESH_LEASE_SECONDS: Final = 400.0
# How long a worker waits for another's refresh before it gives up for this attempt.
REFRESH_WAIT_SECONDS: Final = 30.0
# The key, in the stored session's JSON, under which a refresh lease is kept.
_LEASE: Final = "herald.refresh_lease"


_pause = time.sleep  # how a worker waits for another's refresh (tests watch it)


class TransactionOpen(HeraldFault, RuntimeError):
    """The store was used while a database transaction is open on this thread: the
    adapter must be called between transactions (read, commit, call the platform, write)."""


class NoDeliveryProgress(HeraldFault, RuntimeError):
    """An adapter asked for a delivery's progress from a store built for no delivery
    (the channel test, a preview): no ``progress_rows`` were given."""


class DeliveryProgress(Protocol):
    """A delivery's progress rows: the JSON an adapter keeps for one delivery (by its
    idempotency key, on one channel) so a retry carries on. Publishing owns the rows and
    implements this; the store calls it in its own transaction or the caller's."""

    def read(self, tx: Tx, channel_id: uuid.UUID, key: str) -> dict[str, Any] | None:
        """The delivery's progress, or None (none saved, or no such delivery)."""
        ...

    def write(self, tx: Tx, channel_id: uuid.UUID, key: str, value: dict[str, Any] | None) -> None:
        """Replace the delivery's progress (nothing if there is no such delivery)."""
        ...


class Unread:
    """Not read from the database yet (a cached value may itself be None)."""


UNREAD: Final = Unread()


def _unwrap(stored: bytes | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(session, refresh lease)`` from the channel's ``session_encrypted``."""
    if not stored:
        return None, None
    data = decrypt_json(stored)
    if isinstance(data, dict) and _LEASE in data:
        return data.get("session"), data[_LEASE]
    return data, None


def _wrap(session: dict[str, Any] | None, lease: dict[str, Any] | None) -> bytes | None:
    if lease is not None:
        return encrypt_json({_LEASE: lease, "session": session})
    return encrypt_json(session) if session is not None else None


def _live(lease: dict[str, Any] | None, now: float) -> bool:
    return lease is not None and float(lease.get("until", 0)) > now


class DatabaseStore(ChannelStore):
    def __init__(
        self,
        channel_id: uuid.UUID,
        *,
        credentials_encrypted: bytes | None = None,
        session_encrypted: bytes | Unread | None = UNREAD,
        progress: Mapping[str, dict[str, Any] | None] | None = None,
        progress_rows: DeliveryProgress | None = None,
        defer_writes: bool = False,
    ) -> None:
        """``credentials_encrypted``: the credentials the adapter was built with (a login
        is written only while the channel still has them). ``session_encrypted`` and
        ``progress`` (by idempotency key): the columns, when the caller has read them.
        ``progress_rows``: where deliveries' progress is read and written; without it
        (no delivery) asking for progress raises :class:`NoDeliveryProgress`."""
        self.channel_id = channel_id
        self._progress_rows = progress_rows
        self._credentials = credentials_encrypted
        self._session: dict[str, Any] | Unread | None = (
            UNREAD if isinstance(session_encrypted, Unread) else _unwrap(session_encrypted)[0]
        )
        self._progress: dict[str, dict[str, Any] | None] = {
            key: copy.deepcopy(value) for key, value in (progress or {}).items()
        }
        self._session_changed = False
        self._progress_changed: set[str] = set()
        self._defer = defer_writes
        self._depth = 0
        self._interrupted = False  # a batch ended by an exception since the outermost began

    # -- transactions ----------------------------------------------------------------------

    @staticmethod
    def _refuse_if_in_transaction() -> None:
        if transaction_open():
            raise TransactionOpen(
                "the channel store was used while a database transaction is open on this "
                "thread; call the adapter between transactions"
            )

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        self._refuse_if_in_transaction()
        with read_scope() as session:
            yield session

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        self._refuse_if_in_transaction()
        with session_scope() as session:
            yield session

    # -- reads -----------------------------------------------------------------------------

    def _load(self, idempotency_key: str | None = None) -> None:
        """Read what is not known yet, the cached login and this delivery's progress, in
        one transaction."""
        with self._reading() as session:
            if isinstance(self._session, Unread):
                stored = session.scalar(
                    select(Channel.session_encrypted).where(Channel.id == self.channel_id)
                )
                self._session = _unwrap(stored)[0]
            if idempotency_key is not None and idempotency_key not in self._progress:
                value = self._rows().read(session, self.channel_id, idempotency_key)
                self._progress[idempotency_key] = dict(value) if value else None

    def _rows(self) -> DeliveryProgress:
        if self._progress_rows is None:
            raise NoDeliveryProgress(
                "an adapter asked for a delivery's progress from a channel store built for "
                "no delivery (a channel test or a preview); only a delivery attempt has any"
            )
        return self._progress_rows

    def session(self, *, fresh: bool = False) -> dict[str, Any] | None:
        if fresh and not self._session_changed:
            self._session = UNREAD  # our own unsaved login is newer than the stored one
        if isinstance(self._session, Unread):
            self._load()
        assert not isinstance(self._session, Unread)
        return copy.deepcopy(self._session)

    def progress(self, idempotency_key: str) -> dict[str, Any] | None:
        if idempotency_key not in self._progress:
            self._rows()  # before the read: a store for no delivery has nothing to read
            self._load(idempotency_key)
        return copy.deepcopy(self._progress[idempotency_key])

    # -- writes ----------------------------------------------------------------------------

    def save_session(self, data: dict[str, Any] | None) -> None:
        self._session = copy.deepcopy(data)
        self._session_changed = True
        self._written()

    def save_progress(self, idempotency_key: str, data: dict[str, Any]) -> None:
        self._rows()  # at the save, not later when it would be written
        self._progress[idempotency_key] = copy.deepcopy(data)
        self._progress_changed.add(idempotency_key)
        self._written()

    def _written(self) -> None:
        if self._depth == 0 and not self._defer:
            self.flush()

    @contextmanager
    def batch(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException:
            self._interrupted = True  # the delivery will be tried again: keep its progress
            raise
        finally:
            self._depth -= 1
            if self._depth == 0:
                interrupted, self._interrupted = self._interrupted, False
                # A login lost costs a login (or a rotated refresh token): always stored.
                # Progress after a result is the caller's to record (write_back).
                if not self._defer and (interrupted or self._session_changed):
                    self.flush()

    def checkpoint(self) -> None:
        self.flush()

    @property
    def credentials_encrypted(self) -> bytes | None:
        """The channel's credentials as this store last knew them: those the adapter was
        built with, or those a refresh stored since."""
        return self._credentials

    @property
    def pending(self) -> bool:
        """Whether saves are waiting to be written."""
        return self._session_changed or bool(self._progress_changed)

    def flush(self) -> None:
        """Write what was saved and not written yet, in one short transaction."""
        if self.pending:
            with self._writing() as session:
                self.write_back(session)

    def write_back(self, tx: Tx) -> None:
        """Write what was saved and not written yet, in the caller's transaction (the one
        that records the outcome of the calls that made these changes)."""
        if self._session_changed:
            self._write_session(tx)
            self._session_changed = False
        for key in sorted(self._progress_changed):
            self._rows().write(tx, self.channel_id, key, self._progress[key])
        self._progress_changed.clear()

    def _row(self, tx: Tx) -> Row[Any] | None:
        # FOR UPDATE on PostgreSQL; a SQLite write transaction holds the database's lock.
        return tx.execute(
            select(Channel.credentials_encrypted, Channel.session_encrypted)
            .where(Channel.id == self.channel_id)
            .with_for_update()
        ).first()

    def _write_session(self, tx: Tx) -> None:
        row = self._row(tx)
        if row is None:
            return  # the channel was deleted
        if self._credentials is not None and row.credentials_encrypted != self._credentials:
            return  # new credentials: a login made with the old ones is worthless
        session = None if isinstance(self._session, Unread) else self._session
        _, lease = _unwrap(row.session_encrypted)  # another worker's refresh keeps its lease
        tx.execute(
            update(Channel)
            .where(Channel.id == self.channel_id)
            .values(session_encrypted=_wrap(session, lease))
        )

    # -- refreshing credentials ------------------------------------------------------------

    def refresh_credentials(
        self,
        stale: Mapping[str, Any],
        refresh: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        owner = uuid.uuid4().hex
        claimed = self._claim_refresh(dict(stale), owner)
        if isinstance(claimed, dict):
            return claimed  # another worker refreshed first: use its credentials
        try:
            fresh = refresh(dict(stale))  # no transaction is open while the platform answers
        except BaseException:
            self._end_refresh(owner)
            raise
        with self._writing() as session:
            row = self._row(session)
            if row is None or row.credentials_encrypted != claimed:
                # A person replaced the credentials meanwhile: theirs stand.
                return decrypt_json(row.credentials_encrypted) if row is not None else fresh
            stored = encrypt_json(fresh)
            session.execute(
                update(Channel)
                .where(Channel.id == self.channel_id)
                # A cached login belongs to the old credentials; the lease ends here.
                .values(credentials_encrypted=stored, session_encrypted=None)
            )
        self._credentials, self._session, self._session_changed = stored, None, False
        return fresh

    def _claim_refresh(self, stale: dict[str, Any], owner: str) -> bytes | dict[str, Any]:
        """Take the channel's refresh lease: the stored credentials (encrypted) it was
        taken for. Or, once another worker has refreshed, the credentials it stored."""
        deadline = time.monotonic() + REFRESH_WAIT_SECONDS
        pause = 0.05
        while True:
            with self._writing() as session:
                row = self._row(session)
                if row is None:
                    raise RetryableError("the channel was deleted while credentials were refreshed")
                current = decrypt_json(row.credentials_encrypted)
                if current != stale:
                    self._credentials = row.credentials_encrypted
                    self._session, self._session_changed = UNREAD, False
                    return dict(current)
                cached, lease = _unwrap(row.session_encrypted)
                now = time.time()
                if not _live(lease, now):
                    lease = {"owner": owner, "until": now + REFRESH_LEASE_SECONDS}
                    session.execute(
                        update(Channel)
                        .where(Channel.id == self.channel_id)
                        .values(session_encrypted=_wrap(cached, lease))
                    )
                    return bytes(row.credentials_encrypted)
            if time.monotonic() >= deadline:
                raise RetryableError(
                    "another delivery is refreshing this channel's credentials; "
                    "this one tries again later"
                )
            _pause(pause)  # the other worker's refresh: a platform round trip
            pause = min(pause * 2, 0.5)

    def _end_refresh(self, owner: str) -> None:
        """A refresh that failed changes nothing: drop the lease, keep the cached login."""
        with self._writing() as session:
            row = self._row(session)
            if row is None:
                return
            cached, lease = _unwrap(row.session_encrypted)
            if lease is not None and lease.get("owner") == owner:
                session.execute(
                    update(Channel)
                    .where(Channel.id == self.channel_id)
                    .values(session_encrypted=_wrap(cached, None))
                )
