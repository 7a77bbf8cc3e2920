"""A delivery's progress rows, for the channel store: the ``progress`` column of
:class:`~herald.publishing.models.Publication`, by idempotency key and channel.

Channels defines what it needs (:class:`herald.channels.store.DeliveryProgress`) and
publishing, which owns the rows, implements it here and passes it when it builds a
delivery's adapter (``publishing.delivery.prepare``): the dependency points one way,
publishing → channels.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import select, update

from herald.channels.store import DeliveryProgress
from herald.core.tx import Tx
from herald.publishing.models import Publication


class PublicationProgress:
    """:class:`DeliveryProgress` over ``publications.progress``. A key is looked up on
    the store's channel only: another channel's store can neither read nor write it."""

    def read(self, tx: Tx, channel_id: uuid.UUID, key: str) -> dict[str, Any] | None:
        value = tx.execute(
            select(Publication.progress).where(
                Publication.idempotency_key == key,
                Publication.channel_id == channel_id,
            )
        ).scalar()
        return dict(value) if value else None

    def write(self, tx: Tx, channel_id: uuid.UUID, key: str, value: dict[str, Any] | None) -> None:
        tx.execute(
            update(Publication)
            .where(
                Publication.idempotency_key == key,
                Publication.channel_id == channel_id,
            )
            .values(progress=value)
        )


# Stateless: one for every delivery.
PROGRESS_ROWS: Final[DeliveryProgress] = PublicationProgress()
