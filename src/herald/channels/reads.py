"""Channel reads that need nothing else of :mod:`herald.channels.service` (adapters,
credentials, jobs, webhooks): `herald channel list` imports this module alone and
starts in a fraction of the time."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.channels.models import Channel
from herald.users.principal import Principal


def list_channels(session: Session, principal: Principal) -> list[Channel]:
    """The workspace's channels, by name."""
    return list(
        session.scalars(
            select(Channel)
            .where(Channel.workspace_id == principal.workspace_id)
            .order_by(Channel.name)
        )
    )
