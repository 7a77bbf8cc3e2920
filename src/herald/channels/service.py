"""Channels: create, read, update, delete, and verify through the platform's adapter.

The verify job (the channel test) is one code path for a person's test and the health
pass's (:mod:`herald.channels.health`): read, call the platform with no transaction open
(refreshing OAuth tokens that would expire before the next check), record.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.adapters.base import Adapter, AdapterError, AuthError, Identity
from herald.adapters.registry import UnknownPlatform, get_adapter_class
from herald.channels import health
from herald.channels.models import Channel, ChannelState
from herald.channels.schemas import ChannelCreate, ChannelUpdate
from herald.channels.store import UNREAD, DatabaseStore, DeliveryProgress, Unread
from herald.core.clock import utcnow
from herald.core.crypto import CredentialsUnreadable, decrypt_json, encrypt_json, rotate
from herald.core.db import could_start_an_id, flush_unique, resolve_id
from herald.core.errors import InvalidInput, NotFound
from herald.core.tx import Tx, after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job
from herald.jobs.runner import JobFailed
from herald.users.principal import Principal
from herald.webhooks import outbox

if TYPE_CHECKING:
    from herald.channels.budgets import BucketState

log = logging.getLogger(__name__)

VERIFY_TASK = "herald.channels.verify"
VERIFY_KIND = "channel.verify"


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
    principal.require_manager()
    cls = _adapter_class(body.platform)
    credentials = _validated(cls.credentials_model, body.credentials, "credentials")
    settings = _validated(cls.settings_model, body.settings, "settings")
    cls.build(credentials, settings).check_destination()
    channel = Channel(
        id=uuid.uuid4(),  # now: its first check's place in the period is drawn from it
        workspace_id=principal.workspace_id,
        platform=body.platform,
        name=body.name,
        credentials_encrypted=encrypt_json(credentials),
        settings=settings,
        **body.retry.model_dump(),
    )
    health.place(channel, utcnow())
    session.add(channel)
    flush_unique(session, "channel", body.name)
    return channel


def get_channel(session: Session, principal: Principal, channel_id: uuid.UUID) -> Channel:
    channel = session.get(Channel, channel_id)
    # Another workspace's channel is indistinguishable from a missing one.
    if channel is None or channel.workspace_id != principal.workspace_id:
        raise NotFound(f"No channel {channel_id}.")
    return channel


def budget_adapter(channel: Channel) -> Adapter[Any, Any] | None:
    """The adapter whose buckets make the channel's rate budget (read them with
    :func:`channel_budget` once the transaction has ended: Redis is a network call); None
    when the stored channel is unusable."""
    try:
        return get_adapter_class(channel.platform).build(
            decrypt_json(channel.credentials_encrypted), channel.settings
        )
    except (UnknownPlatform, CredentialsUnreadable, ValidationError, ValueError):
        return None


def channel_budget(adapter: Adapter[Any, Any], channel_id: uuid.UUID) -> list[BucketState] | None:
    """The channel's rate budget now (its adapter's buckets as Redis holds them); None
    when Redis does not answer."""
    # Loaded here: it reaches the adapters' HTTP stack, which a channel listing never needs.
    from herald.channels import budgets  # noqa: PLC0415

    return budgets.read(adapter, channel_id)


def update_channel(
    session: Session, principal: Principal, channel_id: uuid.UUID, body: ChannelUpdate
) -> Channel:
    principal.require_manager()
    channel = get_channel(session, principal, channel_id)
    was_active = channel.state == ChannelState.ACTIVE
    cls = _adapter_class(channel.platform)
    credentials: dict[str, Any] | None = None
    if body.credentials is not None:
        credentials = _validated(cls.credentials_model, body.credentials, "credentials")
        channel.credentials_encrypted = encrypt_json(credentials)
        channel.session_encrypted = None  # a cached login belongs to the old credentials
        if channel.state == ChannelState.NEEDS_RECONNECT:
            channel.state, channel.state_reason = ChannelState.ACTIVE, None
        health.check_soon(channel, utcnow())
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
        flush_unique(session, "channel", body.name)
    session.flush()
    if channel.state == ChannelState.ACTIVE and not was_active:
        _release_held(session, channel.id)
    return channel


# Called with (session, channel id) when a channel becomes active again, in the same
# transaction. Publishing registers the release of the deliveries the channel held:
# channels must not import publishing, which builds its adapters through this module.
ReactivatedHook = Callable[[Session, uuid.UUID], object]
_on_reactivated: list[ReactivatedHook] = []


def on_reactivated(hook: ReactivatedHook) -> ReactivatedHook:
    """Register ``hook`` to run when a channel is active again (reconnected, resumed)."""
    _on_reactivated.append(hook)
    return hook


def _release_held(session: Session, channel_id: uuid.UUID) -> None:
    """The channel is active again: what waited for it goes out after this commit."""
    for hook in _on_reactivated:
        hook(session, channel_id)


def delete_channel(session: Session, principal: Principal, channel_id: uuid.UUID) -> None:
    principal.require_manager()
    session.delete(get_channel(session, principal, channel_id))
    session.flush()


def adapter_for(channel: Channel) -> Adapter[Any, Any]:
    """The channel's adapter with its decrypted credentials (in memory only), keeping
    its logins, refreshed tokens and thread progress in the database."""
    return build_adapter(
        channel.platform, channel.credentials_encrypted, channel.settings, channel.id
    )


def build_adapter(
    platform: str,
    credentials_encrypted: bytes,
    settings: dict[str, Any],
    channel_id: uuid.UUID,
    *,
    session_encrypted: bytes | Unread | None = UNREAD,
    progress: Mapping[str, dict[str, Any] | None] | None = None,
    progress_rows: DeliveryProgress | None = None,
    defer_writes: bool = False,
) -> Adapter[Any, Any]:
    """:func:`adapter_for` from the channel's stored columns. A caller that read the
    cached login (``session_encrypted``) or a delivery's ``progress`` in its own
    transaction passes them, and the store reads nothing; a delivery passes
    ``progress_rows`` (publishing's, which channels does not import); see DatabaseStore
    for ``defer_writes``."""
    cls = get_adapter_class(platform)
    store = DatabaseStore(
        channel_id,
        credentials_encrypted=credentials_encrypted,
        session_encrypted=session_encrypted,
        progress=progress,
        progress_rows=progress_rows,
        defer_writes=defer_writes,
    )
    return cls.build(decrypt_json(credentials_encrypted), settings, store)


def start_verify(session: Session, principal: Principal, channel_id: uuid.UUID) -> Job:
    """Queue a background check of the channel's credentials; returns the job. A
    manager's action: a check that passes reconnects the channel."""
    principal.require_manager()
    channel = get_channel(session, principal, channel_id)
    job = create_verify_job(
        session,
        workspace_id=principal.workspace_id,
        channel_id=channel.id,
        owner_id=principal.user_id,
        trigger="person",
    )
    job_id = job.id
    after_commit(session, lambda: send_verify_jobs([job_id]))
    return job


def create_verify_job(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    channel_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    trigger: str,
) -> Job:
    """The job of one channel test; ``trigger`` says who asked (``person``, ``health``).
    Only the id goes into the job and the message: credentials never leave the row."""
    return jobs.create_job(
        session,
        workspace_id=workspace_id,
        owner_id=owner_id,
        kind=VERIFY_KIND,
        params={"channel_id": str(channel_id), "trigger": trigger},
    )


def send_verify_jobs(job_ids: Sequence[str], *, queue: str | None = None) -> int:
    """Send the tests' messages (after commit), on ``queue`` or the channels' route.
    Stops at the first broker failure (the next would fail alike); returns how many
    went."""
    # The Celery app loads here, not with this module: the command line's channel
    # commands import this module and must start fast.
    from herald.worker import app as celery_app  # noqa: PLC0415

    options = {"queue": queue} if queue else {}
    for sent, job_id in enumerate(job_ids):
        try:
            celery_app.send_task(VERIFY_TASK, (job_id,), task_id=job_id, **options)
        except Exception as exc:
            log.warning(
                "broker unavailable; %d channel tests not sent: %s", len(job_ids) - sent, exc
            )
            return sent
    return len(job_ids)


# -- the channel test, in three steps (see herald.jobs.runner) ----------------------------


@dataclass(frozen=True)
class Check:
    """What a channel test needs from the database, read in the job's claim."""

    channel_id: uuid.UUID
    platform: str
    credentials_encrypted: bytes
    session_encrypted: bytes | None
    settings: dict[str, Any]


@dataclass(frozen=True)
class Checked:
    """What the platform said. ``identity`` when the credentials work; else ``problem``
    (``auth``: they were refused, the channel needs reconnecting)."""

    check: Check
    store: DatabaseStore | None
    identity: Identity | None = None
    problem: str | None = None
    auth: bool = False
    refreshed: bool = False  # the access token was refreshed ahead of its expiry


def read_check(session: Session, job: Job) -> Check:
    """Step 1, in the job's claim: the channel's columns, nothing decrypted yet."""
    channel = session.get(Channel, uuid.UUID(job.params["channel_id"]))
    if channel is None or channel.workspace_id != job.workspace_id:
        raise JobFailed("the channel was deleted")
    return Check(
        channel_id=channel.id,
        platform=channel.platform,
        credentials_encrypted=channel.credentials_encrypted,
        session_encrypted=channel.session_encrypted,
        settings=dict(channel.settings),
    )


def call_platform(check: Check) -> Checked:
    """Step 2, with no transaction open: build the adapter and ask the platform. What
    the adapter keeps (a login, a resolved room) waits in its store for step 3."""
    try:
        adapter = build_adapter(
            check.platform,
            check.credentials_encrypted,
            check.settings,
            check.channel_id,
            session_encrypted=check.session_encrypted,
            defer_writes=True,
        )
    except ValidationError as exc:
        # Field names and reasons only: pydantic's own text repeats the (secret) input.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        return Checked(
            check, None, problem=f"the channel's stored configuration is unusable: {problems}"
        )
    except (CredentialsUnreadable, UnknownPlatform, ValueError) as exc:
        return Checked(
            check, None, problem=f"the channel's stored configuration is unusable: {exc}"
        )
    store = adapter.store
    assert isinstance(store, DatabaseStore)
    refreshed = False
    try:
        # A token that would expire before the next check is refreshed now: stored at
        # once through the store, so a single-use refresh token survives a crash.
        refreshed = adapter.refresh_ahead(health.refresh_margin())
        identity = adapter.verify()
    except AuthError as exc:
        return Checked(check, store, problem=exc.message, auth=True, refreshed=refreshed)
    except AdapterError as exc:
        return Checked(check, store, problem=exc.message, refreshed=refreshed)
    return Checked(check, store, identity=identity, refreshed=refreshed)


def record_check(session: Session, job: Job, checked: Checked) -> dict[str, Any]:
    """Step 3, one short write: what the adapter kept, the channel's state, the job's
    outcome. A check of credentials a person replaced meanwhile changes nothing."""
    check = checked.check
    channel = session.get(Channel, check.channel_id, with_for_update=True)
    if channel is None or channel.workspace_id != job.workspace_id:
        raise JobFailed("the channel was deleted while it was being tested")
    known = checked.store.credentials_encrypted if checked.store is not None else None
    # The adapter may have refreshed them itself (OAuth): those are the ones it tested.
    if channel.credentials_encrypted != (known or check.credentials_encrypted):
        raise JobFailed(
            "the channel's credentials were replaced while the old ones were being tested; "
            "test the channel again"
        )
    if checked.store is not None:
        checked.store.write_back(session)
        session.expire(channel)  # write_back updated the row beside the ORM
    if checked.identity is None:
        problem = checked.problem or "the platform refused the check"
        health.record_result(channel, utcnow(), problem=problem)
        if checked.auth:
            session.flush()  # the check's result first: the update below goes beside the ORM
            mark_needs_reconnect(session, channel.id, checked.problem or "credentials refused")
            session.expire(channel)
        raise JobFailed(problem)
    health.record_result(channel, utcnow(), problem=None)
    if channel.state == ChannelState.NEEDS_RECONNECT:
        channel.state, channel.state_reason = ChannelState.ACTIVE, None
        session.flush()
        _release_held(session, channel.id)
    result: dict[str, Any] = {
        "ok": True,
        "identity": checked.identity.name,
        "platform": check.platform,
    }
    if checked.refreshed:
        result["refreshed"] = True
    return result


def mark_needs_reconnect(tx: Tx, channel_id: uuid.UUID, reason: str) -> bool:
    """The platform refused the channel's credentials: mark it ``needs_reconnect`` with
    the platform's words, and, when it was not already, record ``channel.needs_reconnect``
    for the event webhooks in this transaction. Every place that finds credentials
    refused (a channel test, a delivery, a health check) comes through here. True when
    the channel's state changed."""
    now = utcnow()
    changed = tx.execute(
        update(Channel)
        .where(Channel.id == channel_id, Channel.state != ChannelState.NEEDS_RECONNECT)
        .values(state=ChannelState.NEEDS_RECONNECT, state_reason=reason, updated_at=now)
        .returning(Channel.workspace_id, Channel.platform, Channel.name)
        .execution_options(synchronize_session=False)
    ).first()
    if changed is None:
        # Already waiting for a reconnect: the newest words only.
        tx.execute(
            update(Channel)
            .where(Channel.id == channel_id)
            .values(state_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return False
    outbox.record(
        tx,
        changed.workspace_id,
        "channel.needs_reconnect",
        {
            "channel_id": channel_id,
            "platform": changed.platform,
            "name": changed.name,
            "reason": reason,
        },
    )
    return True


def resolve_channel_ids(
    session: Session, principal: Principal, refs: Sequence[str]
) -> list[uuid.UUID]:
    """Channel ids from what a person typed: each an id, a channel's name in this
    workspace (names are unique per workspace), or a unique prefix of an id of this
    workspace's (see :func:`herald.core.db.resolve_id`). Whole ids are passed on
    unchecked: the service that takes them checks they are the workspace's."""
    ids = []
    for ref in refs:
        try:
            ids.append(uuid.UUID(ref))
            continue
        except ValueError:
            pass
        found = session.scalar(
            select(Channel.id).where(
                Channel.workspace_id == principal.workspace_id, Channel.name == ref
            )
        )
        if found is None and could_start_an_id(ref):
            found = resolve_id(session, Channel, principal.workspace_id, ref, "channel")
        if found is None:
            raise NotFound(f"no channel named {ref!r}; see `herald channel list`")
        ids.append(found)
    return ids


def rotate_credentials(session: Session) -> int:
    """Re-encrypt every channel's credentials (and kept session) with the newest key, in
    every workspace; returns how many channels there are."""
    channels = list(session.scalars(select(Channel)))
    for channel in channels:
        channel.credentials_encrypted = rotate(channel.credentials_encrypted)
        if channel.session_encrypted:
            channel.session_encrypted = rotate(channel.session_encrypted)
    session.flush()
    return len(channels)
