"""Channels: create, read, update, delete, and verify through the platform's adapter."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.adapters.base import Adapter
from herald.adapters.registry import UnknownPlatform, get_adapter_class
from herald.channels.models import Channel, ChannelState
from herald.channels.schemas import ChannelCreate, ChannelUpdate
from herald.core.crypto import decrypt_json, encrypt_json
from herald.core.errors import Conflict, InvalidInput, NotFound
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job
from herald.users.service import Principal


def _adapter_class(platform: str) -> type[Adapter[Any, Any]]:
    try:
        return get_adapter_class(platform)
    except UnknownPlatform as exc:
        raise InvalidInput(str(exc), field="platform") from exc


def _validated(model: type[Any], data: dict[str, Any], prefix: str) -> dict[str, Any]:
    try:
        return dict(model.model_validate(data).model_dump(mode="json"))
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, prefix=prefix) from None


def create_channel(session: Session, principal: Principal, body: ChannelCreate) -> Channel:
    cls = _adapter_class(body.platform)
    credentials = _validated(cls.credentials_model, body.credentials, "credentials")
    settings = _validated(cls.settings_model, body.settings, "settings")
    cls.build(credentials, settings).check_destination()
    channel = Channel(
        workspace_id=principal.workspace_id,
        platform=body.platform,
        name=body.name,
        credentials_encrypted=encrypt_json(credentials),
        settings=settings,
        **body.retry.model_dump(),
    )
    session.add(channel)
    _flush_unique(session, body.name)
    return channel


def _flush_unique(session: Session, name: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"A channel named {name!r} already exists in this workspace.") from None


def get_channel(session: Session, principal: Principal, channel_id: uuid.UUID) -> Channel:
    channel = session.get(Channel, channel_id)
    # Another workspace's channel is indistinguishable from a missing one.
    if channel is None or channel.workspace_id != principal.workspace_id:
        raise NotFound(f"No channel {channel_id}.")
    return channel


def list_channels(session: Session, principal: Principal) -> list[Channel]:
    return list(
        session.scalars(
            select(Channel)
            .where(Channel.workspace_id == principal.workspace_id)
            .order_by(Channel.name)
        )
    )


def update_channel(
    session: Session, principal: Principal, channel_id: uuid.UUID, body: ChannelUpdate
) -> Channel:
    channel = get_channel(session, principal, channel_id)
    cls = _adapter_class(channel.platform)
    credentials: dict[str, Any] | None = None
    if body.credentials is not None:
        credentials = _validated(cls.credentials_model, body.credentials, "credentials")
        channel.credentials_encrypted = encrypt_json(credentials)
        channel.session_encrypted = None  # a cached login belongs to the old credentials
        if channel.state == ChannelState.NEEDS_RECONNECT:
            channel.state, channel.state_reason = ChannelState.ACTIVE, None
    if body.settings is not None:
        channel.settings = _validated(cls.settings_model, body.settings, "settings")
    if body.credentials is not None or body.settings is not None:
        if credentials is None:
            credentials = decrypt_json(channel.credentials_encrypted)
        cls.build(credentials, channel.settings).check_destination()
    if body.retry is not None:
        for key, value in body.retry.model_dump().items():
            setattr(channel, key, value)
    if body.state is not None:
        if body.state == ChannelState.NEEDS_RECONNECT:
            raise InvalidInput(
                "state can be set to 'active' or 'paused'; needs_reconnect is set by Herald.",
                field="state",
            )
        channel.state = body.state
        channel.state_reason = "paused by a person" if body.state == ChannelState.PAUSED else None
    if body.name is not None and body.name != channel.name:
        channel.name = body.name
        _flush_unique(session, body.name)
    session.flush()
    return channel


def delete_channel(session: Session, principal: Principal, channel_id: uuid.UUID) -> None:
    session.delete(get_channel(session, principal, channel_id))
    session.flush()


def adapter_for(channel: Channel) -> Adapter[Any, Any]:
    """The channel's adapter with its decrypted credentials (in memory only), keeping
    its logins, refreshed tokens and thread progress in the database."""
    return build_adapter(
        channel.platform, channel.credentials_encrypted, channel.settings, channel.id
    )


def build_adapter(
    platform: str, credentials_encrypted: bytes, settings: dict[str, Any], channel_id: uuid.UUID
) -> Adapter[Any, Any]:
    """:func:`adapter_for` from the channel's stored columns."""
    from herald.channels.store import DatabaseStore

    cls = get_adapter_class(platform)
    return cls.build(decrypt_json(credentials_encrypted), settings, DatabaseStore(channel_id))


def start_verify(session: Session, principal: Principal, channel_id: uuid.UUID) -> Job:
    """Queue a background check of the channel's credentials; returns the job."""
    channel = get_channel(session, principal, channel_id)
    # Only the id goes into the job and the message: credentials never leave the row.
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind="channel.verify",
        params={"channel_id": str(channel.id)},
    )
    from herald.channels.tasks import verify_channel

    job_id = job.id
    after_commit(session, lambda: verify_channel.apply_async((job_id,), task_id=job_id))
    return job
