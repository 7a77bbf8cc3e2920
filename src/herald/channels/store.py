"""Where adapters keep what outlives one delivery: the channel's row, encrypted.

One :class:`DatabaseStore` per delivery attempt; every method is its own short
transaction, so nothing is held open while the adapter talks to the platform, except in
``refresh_credentials``: there the channel row stays locked for the one refresh call, so
two workers never spend the same single-use refresh token.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select, update

from herald.adapters.base import ChannelStore
from herald.channels.models import Channel
from herald.core.crypto import decrypt_json, encrypt_json
from herald.core.db import session_scope
from herald.core.http import network_in_transaction_waived
from herald.publishing.models import Publication


class DatabaseStore(ChannelStore):
    def __init__(self, channel_id: uuid.UUID) -> None:
        self.channel_id = channel_id

    def session(self) -> dict[str, Any] | None:
        with session_scope() as session:
            token = session.scalar(
                select(Channel.session_encrypted).where(Channel.id == self.channel_id)
            )
        return decrypt_json(token) if token else None

    def save_session(self, data: dict[str, Any] | None) -> None:
        value = encrypt_json(data) if data is not None else None
        with session_scope() as session:
            session.execute(
                update(Channel).where(Channel.id == self.channel_id).values(session_encrypted=value)
            )

    def refresh_credentials(
        self,
        stale: Mapping[str, Any],
        refresh: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        # FOR UPDATE on PostgreSQL; on SQLite every write transaction begins IMMEDIATE,
        # which takes the database's write lock at once. Either way a second worker waits
        # here, then finds the credentials changed and uses the new ones.
        with session_scope() as session:
            channel = session.scalars(
                select(Channel).where(Channel.id == self.channel_id).with_for_update()
            ).one()
            current = decrypt_json(channel.credentials_encrypted)
            if current != dict(stale):
                return current
            # TEMPORARY (issue 16, item 2): the refresh call holds the row lock.
            with network_in_transaction_waived("an OAuth refresh (DatabaseStore)"):
                fresh = refresh(current)
            channel.credentials_encrypted = encrypt_json(fresh)
            # Stale cached logins belong to the old credentials.
            channel.session_encrypted = None
        return fresh

    def progress(self, idempotency_key: str) -> dict[str, Any] | None:
        with session_scope() as session:
            value = session.scalar(
                select(Publication.progress).where(
                    Publication.idempotency_key == idempotency_key,
                    Publication.channel_id == self.channel_id,
                )
            )
        return dict(value) if value else None

    def save_progress(self, idempotency_key: str, data: dict[str, Any]) -> None:
        with session_scope() as session:
            session.execute(
                update(Publication)
                .where(
                    Publication.idempotency_key == idempotency_key,
                    Publication.channel_id == self.channel_id,
                )
                .values(progress=data)
            )
