"""Deliveries: request, claim, attempt, record, dispatch, reconcile, cancel, retry.

Every state change is a conditional UPDATE on the current state (compare-and-set): a
worker or scheduler that loses the race changes nothing and stops. The adapter call
happens outside any transaction, between a committed claim and a committed outcome.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from herald.adapters.base import (
    Adapter,
    AdapterError,
    AmbiguousError,
    AuthError,
    MediaItem,
    PermanentError,
    PostContent,
    Receipt,
    RetryableError,
)
from herald.adapters.registry import get_adapter_class
from herald.channels.models import Channel, ChannelState
from herald.channels.service import build_adapter, get_channel
from herald.core import direct
from herald.core.clock import utcnow
from herald.core.crypto import CredentialsUnreadable
from herald.core.errors import Conflict, NotFound
from herald.core.settings import get_settings
from herald.core.tx import Tx, after_commit, core_scope
from herald.events.service import publish_after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job, JobState
from herald.media.service import media_items
from herald.posts.models import Post
from herald.posts.service import get_post
from herald.publishing import statements
from herald.publishing.lease import keeper
from herald.publishing.models import (
    SETTLED,
    WAITING,
    Publication,
    PublicationState,
)
from herald.users.service import Principal

log = logging.getLogger(__name__)
S = PublicationState

# The Celery state a client sees for each delivery state.
JOB_STATE = {
    S.SCHEDULED: JobState.PENDING,
    S.QUEUED: JobState.PENDING,
    S.PUBLISHING: JobState.STARTED,
    S.RETRY_WAIT: JobState.RETRY,
    S.PUBLISHED: JobState.SUCCESS,
    S.FAILED: JobState.FAILURE,
    S.UNCONFIRMED: JobState.FAILURE,
    S.CANCELLED: JobState.REVOKED,
}


MAX_RETRY_AFTER = 7 * 24 * 3600.0


# What a transition returns of the row it changed (RETURNING), so nothing is re-read.
CHANGED_COLUMNS = tuple(getattr(Publication, name) for name in statements.RETURNED)
ChangedRow = Any


class AlreadyPublished(Conflict):
    pass


# --- state changes -------------------------------------------------------------------


def transition(
    session: Tx,
    publication_id: uuid.UUID,
    from_states: Iterable[PublicationState],
    to_state: PublicationState,
    *,
    extra: ColumnElement[bool] | None = None,
    **values: Any,
) -> ChangedRow | None:
    """Compare-and-set: move to ``to_state`` only from one of ``from_states``.

    Returns the changed row's CHANGED_COLUMNS, or None when another actor got there first.
    """
    now = utcnow()
    condition = [Publication.id == publication_id, Publication.state.in_(list(from_states))]
    if extra is not None:
        condition.append(extra)
    row = session.execute(
        update(Publication)
        .where(*condition)
        .values(state=to_state, updated_at=now, **values)
        .returning(*CHANGED_COLUMNS)
        .execution_options(synchronize_session=False)
    ).first()
    if row is not None:
        _sync_job(session, publication_id, to_state, row)
    return row


def _sync_job(
    session: Tx, publication_id: uuid.UUID, state: PublicationState, row: ChangedRow
) -> None:
    job_state = JOB_STATE[state]
    now = utcnow()
    started, finished = job_state == JobState.STARTED, state in SETTLED
    direct.execute(
        session.connection(),
        statements.sync_job(started, finished),
        {
            "p_id": row.task_id,
            "p_state": job_state,
            "p_updated_at": now,
            **({"p_started_at": now} if started else {}),
            **({"p_finished_at": now} if finished else {}),
        },
    )
    _emit(session, row.workspace_id, publication_id, row.task_id, row.post_id, state)
    if state in SETTLED or state in (S.QUEUED, S.SCHEDULED):
        refresh_post_state(session, row.post_id)


def _emit(
    session: Tx,
    workspace_id: uuid.UUID,
    publication_id: uuid.UUID,
    task_id: str,
    post_id: uuid.UUID,
    state: PublicationState,
) -> None:
    publish_after_commit(
        session,
        workspace_id,
        "publication.state",
        {
            "publication_id": str(publication_id),
            "task_id": task_id,
            "post_id": str(post_id),
            "state": str(state),
        },
    )


def refresh_post_state(session: Tx, post_id: uuid.UUID) -> None:
    """A post's state follows its deliveries (one statement, evaluated in the database)."""
    direct.execute(session.connection(), statements.post_state(), {"p_post_id": post_id})


# --- requesting deliveries -----------------------------------------------------------


def enqueue(publication_id: uuid.UUID, task_id: str) -> None:
    """Send the pointer to the broker (call after commit)."""
    from herald.publishing.tasks import deliver

    deliver.apply_async((str(publication_id),), task_id=task_id)


def enqueue_after_commit(session: Session, publications: Iterable[Publication]) -> None:
    pending = [(p.id, p.task_id) for p in publications if p.state == S.QUEUED]
    if not pending:
        return

    after_commit(session, lambda: send_all(pending))


# A new delivery's columns before the request fills in its own: the scalar defaults the
# model declares (attempt 0, no cancel asked...), else None.
_NEW_PUBLICATION: dict[str, Any] = {
    column.key: column.default.arg
    if isinstance(column.default, ScalarElementColumnDefault)
    else None
    for column in statements.publications.c
}


def _loaded(session: Session, row: dict[str, Any]) -> Publication:
    """The ORM object of a row just inserted with every column, in ``session`` as if it
    had been loaded (no history, no expired attributes; it has no attempts yet)."""
    publication = Publication(**row)
    make_transient_to_detached(publication)
    set_committed_value(publication, "attempts", [])
    session.add(publication)
    return publication


def create_publications(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    channel_ids: Iterable[uuid.UUID],
    *,
    due_at: datetime | None = None,
) -> list[Publication]:
    """One delivery per channel; an active or published one is returned, not duplicated."""
    workspace = principal.workspace_id
    # Core reads on the session's connection (its transaction), after one flush so that
    # they see a post made in this session: the ORM layer is only needed for deliveries
    # that already exist, which a first publish has none of.
    session.flush()
    connection = session.connection()
    found = direct.execute(
        connection, statements.post_in_workspace(), {"p_id": post_id, "p_workspace_id": workspace}
    )
    if not found:  # another workspace's post is indistinguishable from a missing one
        raise NotFound(f"No post {post_id}.")
    wanted = list(dict.fromkeys(channel_ids))
    max_retries: dict[uuid.UUID, int] = {
        row.id: row.max_retries
        for row in connection.execute(
            statements.channels_in_workspace(), {"p_ids": wanted, "p_workspace_id": workspace}
        )
    }
    for channel_id in wanted:
        if channel_id not in max_retries:
            raise NotFound(f"No channel {channel_id}.")
    existing: dict[uuid.UUID, Publication] = {}
    if direct.execute(connection, statements.has_live_publications(), {"p_post_id": post_id}):
        existing = {
            p.channel_id: p
            for p in session.scalars(statements.live_publications(), {"p_post_id": post_id})
        }
    now = utcnow()
    result: list[Publication] = []
    job_rows: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    for channel_id in wanted:
        if channel_id in existing:
            result.append(existing[channel_id])
            continue
        publication_id, task_id = uuid.uuid4(), str(uuid.uuid4())
        state = S.SCHEDULED if due_at is not None and due_at > now else S.QUEUED
        job_rows.append(
            {
                "id": task_id,
                "workspace_id": workspace,
                "owner_id": principal.user_id,
                "kind": "publish",
                "params": {
                    "publication_id": str(publication_id),
                    "post_id": str(post_id),
                    "channel_id": str(channel_id),
                },
                "state": JobState.PENDING,
                "created_at": now,
                "updated_at": now,
            }
        )
        new_rows.append(
            _NEW_PUBLICATION
            | {
                "id": publication_id,
                "workspace_id": workspace,
                "post_id": post_id,
                "channel_id": channel_id,
                "task_id": task_id,
                "state": state,
                "idempotency_key": f"herald-{publication_id.hex}",
                "max_attempts": max_retries[channel_id] + 1,
                "due_at": due_at or now,
                "enqueued_at": now if state == S.QUEUED else None,
                "created_at": now,
                "updated_at": now,
            }
        )
    if new_rows:
        # Plain inserts (the jobs first: deliveries refer to them), then the new rows join
        # the session as if loaded, with every column known: no flush, no re-read.
        direct.execute(connection, statements.insert_jobs(), job_rows)
        direct.execute(connection, statements.insert_publications(), new_rows)
        made = {row["channel_id"]: _loaded(session, row) for row in new_rows}
        result = [existing.get(channel_id) or made[channel_id] for channel_id in wanted]
    for publication in result:
        _emit(
            session,
            publication.workspace_id,
            publication.id,
            publication.task_id,
            publication.post_id,
            publication.state,
        )
    refresh_post_state(session, post_id)
    enqueue_after_commit(session, result)
    return result


# --- the delivery itself --------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A delivery this worker now owns, with everything needed to send and record it."""

    publication_id: uuid.UUID
    row: ChangedRow  # the claim's RETURNING: attempt, max_attempts, idempotency_key...
    content: PostContent
    adapter: Adapter[Any, Any]
    retry_seconds: tuple[float, float]  # the channel's back-off base and maximum


def post_content(session: Session, post: Post) -> PostContent:
    """What an adapter sees of a post."""
    media = media_items(session.connection(), post.id) if post.media_rows else ()
    return _content(post.id, post, post.tags, media)


def _content(
    post_id: uuid.UUID, text: Any, tags: Iterable[str], media: tuple[MediaItem, ...]
) -> PostContent:
    """A post's :class:`PostContent` from anything with its text columns (title, body,
    excerpt, canonical_url): the ORM object, or the delivery's one-row read."""
    return PostContent(
        id=post_id,
        title=text.title,
        body=text.body,
        excerpt=text.excerpt,
        tags=tuple(tags),
        canonical_url=text.canonical_url,
        media=media,
    )


def claim(session: Tx, publication_id: uuid.UUID) -> ChangedRow | None:
    """queued → publishing, only if the channel is active; None if someone else has it.

    :func:`attempt_delivery` then runs :func:`read_delivery` in the same transaction.
    """
    now = utcnow()
    lease = timedelta(seconds=get_settings().publish_lease_seconds)
    connection = session.connection()
    claimed = direct.execute(
        connection,
        statements.claim(),
        {"p_id": publication_id, "p_updated_at": now, "p_lease_until": now + lease},
    )
    row = claimed[0] if claimed else None
    if row is not None:
        _sync_job(session, publication_id, S.PUBLISHING, row)
        direct.execute(
            connection,
            statements.start_attempt(),
            {
                "id": uuid.uuid4(),
                "publication_id": publication_id,
                "number": row.attempt,
                "started_at": now,
                "outcome": "started",
            },
        )
    return row


class NotPrepared(Exception):
    """The claimed delivery cannot be attempted as stored (credentials, settings)."""


@dataclass(frozen=True)
class Stored:
    """What a claimed delivery needs from the database: its post and channel columns
    (``statements.delivery_content``), the post's tags and images."""

    found: Any
    tags: tuple[str, ...]
    media: tuple[MediaItem, ...]


def read_delivery(session: Tx, row: ChangedRow) -> Stored:
    """The post and channel of a claimed delivery, in the claim's transaction.

    Plain column reads (post and channel in one row, then tags, then images only if the
    post has any): this runs once per delivery, so it skips the ORM's object loading.
    """
    connection = session.connection()
    (found,) = direct.execute(
        connection,
        statements.delivery_content(),
        {"p_post_id": row.post_id, "p_channel_id": row.channel_id},
    )
    tags = direct.execute(connection, statements.tags(), {"p_post_id": row.post_id})
    media = media_items(connection, row.post_id) if found.has_media else ()
    return Stored(found, tuple(tag for (tag,) in tags), media)


def prepare(publication_id: uuid.UUID, row: ChangedRow, stored: Stored) -> Claim:
    """Build the channel's adapter for a claimed delivery (after the claim committed:
    decrypting and validating its settings need no lock)."""
    found = stored.found
    content = _content(row.post_id, found, stored.tags, stored.media)
    try:
        adapter = build_adapter(
            found.platform, found.credentials_encrypted, found.settings, row.channel_id
        )
    except ValidationError as exc:
        # Field names and reasons only: pydantic's own text repeats the (secret) input.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise NotPrepared(f"the channel's stored configuration is unusable: {problems}") from None
    except (CredentialsUnreadable, ValueError) as exc:
        raise NotPrepared(f"the channel's stored configuration is unusable: {exc}") from exc
    except Exception as exc:  # a bug in the adapter: this delivery fails, it does not loop
        # Only the exception's type: its text may hold the decrypted credentials.
        log.exception("building the %s adapter failed", found.platform)
        raise NotPrepared(
            f"the {found.platform} adapter could not be built ({type(exc).__name__}); "
            "the worker's log has the details"
        ) from exc
    return Claim(
        publication_id=publication_id,
        row=row,
        content=content,
        adapter=adapter,
        retry_seconds=(found.retry_base_seconds, found.retry_max_seconds),
    )


def backoff_seconds(base: float, maximum: float, attempt: int, retry_after: float | None) -> float:
    """Full jitter: uniform in [0, min(max, base·2^(attempt-1))], never before Retry-After."""
    ceiling = min(maximum, base * 2 ** (attempt - 1))
    delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        # Bounded: a platform's absurd Retry-After must not overflow the clock.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


@dataclass(frozen=True)
class Outcome:
    kind: str  # published, retry, failed, auth, unconfirmed, cancelled
    receipt: Receipt | None = None
    error: str | None = None
    retry_after: float | None = None


def attempt_delivery(publication_id: uuid.UUID) -> Outcome | None:
    """Claim, send, record: the body of the ``deliver`` task. None when not claimed."""
    claimed_at = utcnow()  # the claim's lease runs from this instant or a little later
    # Plain Core transactions: this path loads no ORM object (see core_scope).
    with core_scope() as tx:
        row = claim(tx, publication_id)
        if row is None:
            return None
        # In the claim's own transaction: a transaction costs more CPU than these
        # one-row reads hold the (SQLite) writer's lock.
        stored = read_delivery(tx, row)
    # The lease is renewed until the outcome is recorded, however long the platform
    # takes: the reconciler re-examines only attempts whose worker stopped.
    with keeper.kept(publication_id, row.attempt, claimed_at):
        try:
            claimed = prepare(publication_id, row, stored)
        except NotPrepared as exc:
            outcome = Outcome("failed", error=str(exc))
            with core_scope() as tx:
                record_outcome(tx, publication_id, row, outcome, retry_seconds=(0.0, 0.0))
            return outcome
        # No transaction is open while we talk to the platform.
        outcome = _send(claimed.adapter, claimed.content, row.idempotency_key, row.attempt)
        with core_scope() as tx:
            record_outcome(tx, publication_id, row, outcome, retry_seconds=claimed.retry_seconds)
    return outcome


def _send(adapter: Any, content: PostContent, key: str, attempt: int) -> Outcome:
    """One attempt's calls to the adapter, and what their result means.

    An exception the adapter did not classify (a bug, or a library error it did not
    expect) ends the delivery at once: it would fail the same way again. Before anything
    was sent (render) it fails; once a request may have gone out it is unconfirmed,
    unless a look-up finds the post.
    """
    try:
        rendition = adapter.render(content)
    except AdapterError as exc:
        return Outcome("failed", error=exc.message)
    except Exception as exc:
        return Outcome("failed", error=_unexpected(adapter, exc, "render"))
    if attempt > 1:
        # An earlier attempt may have gone through: look before sending again.
        try:
            existing = adapter.find_existing(rendition, key)
        except AdapterError:
            existing = None
        except Exception as exc:
            # It cannot look, and sending blind might post twice: a person decides.
            return Outcome("unconfirmed", error=_unexpected(adapter, exc, "find_existing"))
        if existing is not None:
            return Outcome("published", receipt=existing)
    try:
        return Outcome("published", receipt=adapter.publish(rendition, key))
    except RetryableError as exc:
        return Outcome("retry", error=exc.message, retry_after=exc.retry_after)
    except PermanentError as exc:
        return Outcome("failed", error=exc.message)
    except AuthError as exc:
        return Outcome("auth", error=exc.message)
    except AmbiguousError as exc:
        return _after_ambiguous(adapter, rendition, key, exc.message)
    except Exception as exc:
        error = _unexpected(adapter, exc, "publish")
        existing = _look_up(adapter, rendition, key)
        if existing is not None:
            return Outcome("published", receipt=existing)
        return Outcome("unconfirmed", error=f"{error}; it may have been posted")


def _after_ambiguous(adapter: Any, rendition: Any, key: str, message: str) -> Outcome:
    if adapter.honours_idempotency_key:
        # The platform deduplicates by our key: sending again cannot post twice.
        return Outcome("retry", error=message)
    existing = _look_up(adapter, rendition, key)
    if existing is not None:
        return Outcome("published", receipt=existing)
    return Outcome("unconfirmed", error=message)


def _look_up(adapter: Any, rendition: Any, key: str) -> Receipt | None:
    """The post sent with this key, or None when it cannot be told (whatever the look-up
    raises: it only ever decides between "published" and "unconfirmed")."""
    try:
        found: Receipt | None = adapter.find_existing(rendition, key)
    except AdapterError:
        return None
    except Exception as exc:
        _unexpected(adapter, exc, "find_existing")
        return None
    return found


MAX_ERROR = 500
_MASK = "[redacted]"


def _unexpected(adapter: Any, exc: Exception, step: str) -> str:
    """Log an exception the adapter did not classify, with its traceback, and say what to
    record: its type and message, the channel's credentials masked out of it."""
    log.error(
        "the %s adapter raised %s in %s, which it does not classify; the delivery is "
        "not tried again",
        adapter.platform,
        type(exc).__name__,
        step,
        exc_info=exc,
    )
    text = str(exc)
    for secret in _credential_strings(adapter):
        text = text.replace(secret, _MASK)
    return f"unexpected {type(exc).__name__} in the {adapter.platform} adapter's {step}: {text}"[
        :MAX_ERROR
    ]


def _credential_strings(adapter: Any) -> list[str]:
    """Every string in the adapter's credentials long enough to be a secret, longest
    first (a token inside a URL is masked with the URL)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) >= 6:
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    try:
        walk(adapter.credentials.model_dump(mode="json"))
    except Exception:  # no usable credentials model: mask nothing rather than fail here
        return []
    return sorted(set(found), key=len, reverse=True)


def record_outcome(
    session: Tx,
    publication_id: uuid.UUID,
    claimed: ChangedRow,
    outcome: Outcome,
    *,
    retry_seconds: tuple[float, float],
) -> None:
    """Settle the attempt ``claimed`` (the claim's row) with its outcome."""
    now = utcnow()
    kind = outcome.kind
    retry_at = None
    values: dict[str, Any] = {"lease_until": None, "last_error": outcome.error}

    if kind == "published" and outcome.receipt is not None:
        target = S.PUBLISHED
        values |= {
            "external_id": outcome.receipt.external_id,
            "external_url": outcome.receipt.url,
            "published_at": now,
            "error_kind": None,
            "last_error": None,
        }
    elif kind == "retry" and claimed.attempt < claimed.max_attempts:
        target = S.RETRY_WAIT
        delay = backoff_seconds(*retry_seconds, claimed.attempt, outcome.retry_after)
        retry_at = now + timedelta(seconds=delay)
        values |= {"due_at": retry_at, "error_kind": "retryable"}
    elif kind == "retry":
        target = S.FAILED
        values |= {"error_kind": "retryable", "last_error": f"out of retries: {outcome.error}"}
    elif kind == "auth":
        # Hold it: it goes out once the channel is reconnected (credentials updated).
        # Nothing was posted and the fault is the channel's: keep an attempt for then,
        # even if this one was the last.
        target = S.RETRY_WAIT
        retry_at = now
        values |= {
            "max_attempts": max(claimed.max_attempts, claimed.attempt + 1),
            "due_at": now,
            "error_kind": "auth",
            "last_error": f"held until the channel is reconnected: {outcome.error}",
        }
        session.execute(
            update(Channel)
            .where(Channel.id == claimed.channel_id)
            .values(state=ChannelState.NEEDS_RECONNECT, state_reason=outcome.error, updated_at=now)
        )
    elif kind == "unconfirmed":
        target = S.UNCONFIRMED
        values["error_kind"] = "ambiguous"
    elif kind == "cancelled":
        target = S.CANCELLED
    else:
        target = S.FAILED
        values["error_kind"] = "permanent"

    # Only if still ours: a reconciled, re-claimed delivery has a newer attempt.
    connection = session.connection()
    settled = direct.execute(
        connection,
        statements.settle(tuple(sorted(values))),
        {
            "p_id": publication_id,
            "p_attempt": claimed.attempt,
            "p_state": target,
            "p_updated_at": now,
            **{f"p_{column}": value for column, value in values.items()},
        },
    )
    row = settled[0] if settled else None
    if row is not None:
        _sync_job(session, publication_id, target, row)
        _cancel_if_requested(session, publication_id, target)
    else:
        log.warning(
            "delivery %s changed hands while attempt %s ran", publication_id, claimed.attempt
        )
    direct.execute(
        connection,
        statements.finish_attempt(),
        {
            "p_publication_id": publication_id,
            "p_number": claimed.attempt,
            "p_finished_at": now,
            "p_outcome": kind if kind != "retry" or retry_at else "failed",
            "p_error": outcome.error,
            "p_retry_at": retry_at,
            "p_external_id": outcome.receipt.external_id if outcome.receipt else None,
            "p_external_url": outcome.receipt.url if outcome.receipt else None,
        },
    )


def _cancel_if_requested(session: Tx, publication_id: uuid.UUID, target: PublicationState) -> None:
    """A cancel asked for while the attempt ran: honour it unless the post went out."""
    if target not in (S.RETRY_WAIT,):
        return
    transition(
        session,
        publication_id,
        [S.RETRY_WAIT],
        S.CANCELLED,
        extra=Publication.cancel_requested.is_(True),
        last_error="cancelled",
    )


# --- scheduler and reconciler ----------------------------------------------------------


def waiting_to_dispatch() -> list[ColumnElement[bool]]:
    """Deliveries the dispatcher will move to queued once due: scheduled or waiting to
    retry, not cancelled, on an active channel (a paused or broken channel holds its own)."""
    return [
        Publication.state.in_([S.SCHEDULED, S.RETRY_WAIT]),
        Publication.cancel_requested.is_(False),
        Publication.channel_id.in_(select(Channel.id).where(Channel.state == ChannelState.ACTIVE)),
    ]


def dispatch_due(
    session: Session, *, limit: int = 500, channel_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, str]]:
    """Move due scheduled/retry_wait deliveries of active channels (or of one channel) to
    queued; never one due longer ago than the missed limit (the dispatcher fails those).

    Claimed with FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite's single writer needs
    none), so two schedulers never take the same row. Returns (id, task_id) to enqueue
    after commit.
    """
    now = utcnow()
    missed = now - timedelta(seconds=get_settings().missed_limit_seconds)
    conditions = [*waiting_to_dispatch(), Publication.due_at <= now, Publication.due_at >= missed]
    if channel_id is not None:
        conditions.append(Publication.channel_id == channel_id)
    due = (
        select(Publication.id)
        .where(*conditions)
        .order_by(Publication.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(due))
    if not ids:
        return []
    rows = session.execute(
        update(Publication)
        .where(Publication.id.in_(ids), Publication.state.in_([S.SCHEDULED, S.RETRY_WAIT]))
        .values(state=S.QUEUED, enqueued_at=now, updated_at=now)
        .returning(Publication.id, *CHANGED_COLUMNS)
        .execution_options(synchronize_session=False)
    ).all()
    if rows:
        # In bulk: a burst of due deliveries must not wait on one statement per row. From
        # scheduled/retry_wait to queued a delivery stays active, so its post's state
        # (scheduled while any delivery is active) does not change.
        session.execute(
            update(Job)
            .where(Job.id.in_([row.task_id for row in rows]))
            .values(state=JOB_STATE[S.QUEUED], updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for row in rows:
            _emit(session, row.workspace_id, row.id, row.task_id, row.post_id, S.QUEUED)
    return [(row.id, row.task_id) for row in rows]


def release_held(session: Session, channel_id: uuid.UUID) -> int:
    """A channel is active again (reconnected, or resumed): what waited for it goes out
    now, enqueued after this transaction commits, not at the reconciler's next look.

    Its due deliveries move to queued, as the dispatcher moves them, and every queued one
    is sent to the broker again: a worker that took its message while the channel was
    inactive could not claim it and left it queued. Returns how many were sent."""
    dispatch_due(session, channel_id=channel_id)
    now = utcnow()
    pending = [
        (row.id, row.task_id)
        for row in session.execute(
            update(Publication)
            .where(Publication.channel_id == channel_id, Publication.state == S.QUEUED)
            .values(enqueued_at=now)
            .returning(Publication.id, Publication.task_id)
            .execution_options(synchronize_session=False)
        )
    ]
    if pending:
        after_commit(session, lambda: send_all(pending))
    return len(pending)


def _out_of_attempts(how: str, attempt: int, max_attempts: int) -> str:
    return (
        f"{how} and no attempt is left ({attempt} of {max_attempts} made); it may have "
        "been posted: check the platform, then retry or cancel it"
    )


def reconcile(session: Session) -> dict[str, int]:
    """Re-send deliveries stuck in queued; re-examine publishing ones whose lease ran out.

    The attempt limit holds here too: a delivery with no attempt left is never sent
    again but settled ``unconfirmed`` (its last attempt may have gone out)."""
    settings = get_settings()
    now = utcnow()
    stale = now - timedelta(seconds=settings.queued_grace_seconds)
    resend: list[tuple[uuid.UUID, str]] = []
    unconfirmed = 0
    for publication_id, task_id, attempt, max_attempts in session.execute(
        select(
            Publication.id, Publication.task_id, Publication.attempt, Publication.max_attempts
        ).where(
            Publication.state == S.QUEUED,
            (Publication.enqueued_at.is_(None)) | (Publication.enqueued_at < stale),
        )
    ):
        if attempt < max_attempts:
            resend.append((publication_id, task_id))
        # No claim takes a delivery whose attempts are spent (queued so by an older
        # version): settle it instead of sending it again every grace period.
        elif transition(
            session,
            publication_id,
            [S.QUEUED],
            S.UNCONFIRMED,
            extra=Publication.attempt >= Publication.max_attempts,
            error_kind="ambiguous",
            last_error=_out_of_attempts("it was queued again", attempt, max_attempts),
        ):
            unconfirmed += 1
    if resend:
        session.execute(
            update(Publication)
            .where(Publication.id.in_([r[0] for r in resend]), Publication.state == S.QUEUED)
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    expired = list(
        session.scalars(
            select(Publication).where(
                Publication.state == S.PUBLISHING, Publication.lease_until < now
            )
        )
    )
    requeued = 0
    for publication in expired:
        channel = session.get_one(Channel, publication.channel_id)
        adapter_cls = get_adapter_class(channel.platform)
        can_look_up = adapter_cls.find_existing is not Adapter.find_existing
        spent = publication.attempt >= publication.max_attempts
        # The worker died mid-attempt (a running one renews its lease). Resending is safe
        # only where the platform deduplicates by our key, or we can look the post up
        # first (the next attempt does), and only while an attempt is left.
        if not spent and (adapter_cls.honours_idempotency_key or can_look_up):
            if transition(
                session,
                publication.id,
                [S.PUBLISHING],
                S.QUEUED,
                extra=Publication.attempt == publication.attempt,
                enqueued_at=now,
                lease_until=None,
                last_error="the worker stopped during the attempt; trying again",
            ):
                resend.append((publication.id, publication.task_id))
                requeued += 1
        elif transition(
            session,
            publication.id,
            [S.PUBLISHING],
            S.UNCONFIRMED,
            extra=Publication.attempt == publication.attempt,
            lease_until=None,
            error_kind="ambiguous",
            last_error=_out_of_attempts(
                "the worker stopped during the attempt",
                publication.attempt,
                publication.max_attempts,
            )
            if spent
            else "the worker stopped during the attempt; it may have been posted",
        ):
            unconfirmed += 1
    after_commit(session, lambda: send_all(resend))
    return {"resent": len(resend) - requeued, "requeued": requeued, "unconfirmed": unconfirmed}


def send_all(pairs: Iterable[tuple[uuid.UUID, str]]) -> None:
    """Enqueue each pointer; at the first broker failure stop (each try costs time) and
    leave the rest queued in the database for the reconciler."""
    for publication_id, task_id in pairs:
        try:
            enqueue(publication_id, task_id)
        except Exception as exc:
            log.warning("broker unavailable; %s and later ones stay queued: %s", task_id, exc)
            return


# --- control --------------------------------------------------------------------------


def get_publication_by_task(session: Session, principal: Principal, task_id: str) -> Publication:
    publication = session.scalars(select(Publication).where(Publication.task_id == task_id)).first()
    if publication is None or publication.workspace_id != principal.workspace_id:
        raise NotFound(f"No task {task_id}.")
    return publication


def cancel(session: Session, publication: Publication) -> str:
    """Cancel a delivery: certain while it waits, best effort while it runs."""
    if transition(session, publication.id, WAITING, S.CANCELLED, last_error="cancelled"):
        return "cancelled"
    session.refresh(publication)
    if publication.state == S.PUBLISHING:
        session.execute(
            update(Publication)
            .where(Publication.id == publication.id)
            .values(cancel_requested=True)
            .execution_options(synchronize_session=False)
        )
        return "cancel_requested"
    if publication.state == S.PUBLISHED:
        raise AlreadyPublished("This delivery was already published; it cannot be cancelled.")
    return str(publication.state)


def retry(session: Session, publication: Publication) -> bool:
    """Send a failed delivery again (a person decided; unconfirmed included)."""
    now = utcnow()
    channel = session.get_one(Channel, publication.channel_id)
    row = transition(
        session,
        publication.id,
        [S.FAILED, S.UNCONFIRMED],
        S.QUEUED,
        enqueued_at=now,
        due_at=now,
        # A fresh set of attempts on top of those already made.
        max_attempts=Publication.attempt + 1 + channel.max_retries,
        cancel_requested=False,
    )
    changed = row is not None
    if changed:
        after_commit(session, lambda: send_all([(publication.id, publication.task_id)]))
    return changed


def retry_failed(session: Session, principal: Principal) -> int:
    """Re-queue this workspace's deliveries that failed for a retryable reason."""
    failed = list(
        session.scalars(
            select(Publication).where(
                Publication.workspace_id == principal.workspace_id,
                Publication.state == S.FAILED,
                Publication.error_kind == "retryable",
            )
        )
    )
    return sum(1 for publication in failed if retry(session, publication))


# --- batch -----------------------------------------------------------------------------


def start_batch(
    session: Session,
    principal: Principal,
    post_ids: list[uuid.UUID],
    channel_ids: list[uuid.UUID],
) -> Job:
    """Check every id now (404 before anything starts), then fan out in a background job."""
    posts = [get_post(session, principal, pid) for pid in dict.fromkeys(post_ids)]
    channels = [get_channel(session, principal, cid) for cid in dict.fromkeys(channel_ids)]
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind="batch_publish",
        params={
            "post_ids": [str(p.id) for p in posts],
            "channel_ids": [str(c.id) for c in channels],
        },
        total=len(posts),
    )
    from herald.publishing.tasks import batch_publish

    job_id = job.id
    after_commit(session, lambda: batch_publish.apply_async((job_id,), task_id=job_id))
    return job


def run_batch(job_id: str) -> dict[str, Any]:
    """Fan out one post at a time, each in its own transaction, so progress is real."""
    from herald.core.db import session_scope
    from herald.users.models import User

    with session_scope() as session:
        if not jobs.mark_started(session, job_id):
            return {"skipped": True}
        job = session.get_one(Job, job_id)
        params, owner_id = dict(job.params), job.owner_id
        owner = session.get(User, owner_id) if owner_id else None
        if owner is None:
            jobs.finish(session, job_id, JobState.FAILURE, error="the user who started it is gone")
            return {"error": "owner gone"}
        principal = Principal(owner.id, owner.workspace_id, owner.email, owner.role)
    created: list[str] = []
    channel_ids = [uuid.UUID(c) for c in params["channel_ids"]]
    for done, post_id in enumerate(params["post_ids"], start=1):
        with session_scope() as session:
            if session.scalar(select(Job.cancel_requested).where(Job.id == job_id)):
                jobs.finish(session, job_id, JobState.REVOKED, result={"task_ids": created})
                return {"cancelled": True, "task_ids": created}
            try:
                publications = create_publications(
                    session, principal, uuid.UUID(post_id), channel_ids
                )
                created += [p.task_id for p in publications]
                message = f"post {done} of {len(params['post_ids'])} fanned out"
            except NotFound as exc:  # deleted since the request: skip it, say so
                message = f"post {done}: {exc.message}"
            jobs.set_progress(session, job_id, done, message)
    result = {"task_ids": created, "deliveries": len(created)}
    with session_scope() as session:
        jobs.finish(session, job_id, JobState.SUCCESS, result=result)
    return result
