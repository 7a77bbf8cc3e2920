"""The delivery hot path's SQL, built once and run with bind parameters.

Every delivery runs these (claim, job sync, attempt rows, settle). Building a SQLAlchemy
statement and its cache key costs more than running it on SQLite, so each is built on
first use and kept; calls pass only parameters. They are Core statements on the tables,
run in the session's transaction through :mod:`herald.core.direct` (the driver's cursor,
SQLAlchemy's compiled SQL and type processors): no ORM bookkeeping, no identity map to
synchronise, no per-call execution machinery.

Bind parameters are named ``p_*``: a name equal to a column's is reserved by SQLAlchemy
for the SET clause.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import cache
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import ReturningUpdate

from herald.channels.models import Channel, ChannelState
from herald.jobs.models import Job
from herald.media.models import PostMedia
from herald.posts.models import Post, PostState, PostTag
from herald.publishing.models import ACTIVE, Publication, PublicationAttempt, PublicationState

S = PublicationState
T = TypeVar("T")


def _table(model: object) -> Table:
    """A mapped class's table (declared as a ``FromClause``; every Herald model has one)."""
    table = getattr(model, "__table__", None)
    assert isinstance(table, Table), model
    return table


publications = _table(Publication)
attempts = _table(PublicationAttempt)
jobs = _table(Job)
channels = _table(Channel)
posts = _table(Post)
post_tags = _table(PostTag)
post_media = _table(PostMedia)


def _c(attribute: InstrumentedAttribute[T]) -> Column[T]:
    """The table column behind a mapped attribute, typed as the attribute is (a Table's
    ``.c`` gives ``Column[Any]``). The plain column, so statements stay Core, not ORM."""
    return _table(attribute.class_).c[attribute.key]


def _param(column: Column[T]) -> BindParameter[T]:
    return bindparam(f"p_{column.key}", type_=column.type)


# A state change's RETURNING (the row it changed), so nothing is re-read: task_id,
# workspace_id, post_id, channel_id, attempt, max_attempts, idempotency_key.
Changed: TypeAlias = ReturningUpdate[str, uuid.UUID, uuid.UUID, uuid.UUID, int, int, str]

# What an attempt needs of its post and channel: title, body, excerpt, canonical_url,
# short_body, has_media, platform, credentials_encrypted, settings, retry_base_seconds,
# retry_max_seconds.
DeliveryContent: TypeAlias = Select[
    str, str, str | None, str | None, str | None, bool, str, bytes, dict[str, Any], float, float
]


def _one_of(
    column: Column[PublicationState], states: Iterable[PublicationState]
) -> ColumnElement[bool]:
    """``column IN (...)`` of constants, each its own bound value: a plain list would be
    one "expanding" parameter, filled in per call (see herald.core.direct)."""
    return column.in_([literal(state.value, column.type) for state in states])


def _change(
    from_state: PublicationState, *conditions: ColumnElement[bool], **values: object
) -> Changed:
    """Compare-and-set on one delivery (p_id) in ``from_state``, stamping p_updated_at and
    returning the changed row; no row when someone else got there."""
    p = Publication
    return (
        update(publications)
        .where(_c(p.id) == _param(_c(p.id)), _c(p.state) == from_state.value, *conditions)
        .values(updated_at=_param(_c(p.updated_at)), **values)
        .returning(
            _c(p.task_id),
            _c(p.workspace_id),
            _c(p.post_id),
            _c(p.channel_id),
            _c(p.attempt),
            _c(p.max_attempts),
            _c(p.idempotency_key),
        )
    )


# The names of Changed's columns, in order (the publishing service reads them by name).
RETURNED = tuple(str(column.key) for column in _change(S.QUEUED).exported_columns)


@cache
def claim() -> Changed:
    """queued → publishing, one attempt more, if the channel is active, no cancel was
    asked for and an attempt is left (the limit holds whatever queued the row).
    Parameters: p_id, p_updated_at, p_lease_until."""
    p = Publication
    return _change(
        S.QUEUED,
        _c(p.cancel_requested).is_(False),
        _c(p.attempt) < _c(p.max_attempts),
        _c(p.channel_id).in_(
            select(_c(Channel.id)).where(_c(Channel.state) == ChannelState.ACTIVE.value)
        ),
        state=S.PUBLISHING.value,
        lease_until=_param(_c(p.lease_until)),
        attempt=_c(p.attempt) + 1,
    )


@cache
def settle(columns: tuple[str, ...]) -> Changed:
    """publishing → p_state for attempt p_attempt only (a reconciled, re-claimed delivery
    has a newer one), setting ``columns`` from p_<column>. Parameters: p_id, p_attempt,
    p_state, p_updated_at and one per column."""
    p = publications
    return _change(
        S.PUBLISHING,
        _c(Publication.attempt) == _param(_c(Publication.attempt)),
        state=_param(_c(Publication.state)),
        **{column: _param(p.c[column]) for column in columns},
    )


@cache
def renew_lease() -> ReturningUpdate[uuid.UUID]:
    """Move the lease of attempt p_attempt on, while that attempt still holds the delivery.
    Parameters: p_id, p_attempt, p_lease_until. Returns the id when renewed."""
    p = Publication
    return (
        update(publications)
        .where(
            _c(p.id) == _param(_c(p.id)),
            _c(p.state) == S.PUBLISHING.value,
            _c(p.attempt) == _param(_c(p.attempt)),
        )
        .values(lease_until=_param(_c(p.lease_until)))
        .returning(_c(p.id))
    )


@cache
def sync_job(started: bool, finished: bool) -> Update:
    """The job row follows its delivery. Parameters: p_id, p_state, p_updated_at, and
    p_started_at / p_finished_at when asked for."""
    values: dict[str, BindParameter[Any]] = {
        "state": _param(_c(Job.state)),
        "updated_at": _param(_c(Job.updated_at)),
    }
    if started:
        values["started_at"] = _param(_c(Job.started_at))
    if finished:
        values["finished_at"] = _param(_c(Job.finished_at))
    return update(jobs).where(_c(Job.id) == _param(_c(Job.id))).values(**values)


@cache
def start_attempt() -> Insert:
    """A new attempt row; the parameters are its columns (id, publication_id, number,
    started_at, outcome)."""
    return insert(attempts)


@cache
def finish_attempt() -> Update:
    """Parameters: p_publication_id, p_number and the outcome's columns."""
    a = attempts
    return (
        update(a)
        .where(
            _c(PublicationAttempt.publication_id) == _param(_c(PublicationAttempt.publication_id)),
            _c(PublicationAttempt.number) == _param(_c(PublicationAttempt.number)),
        )
        .values(
            **{
                column: _param(a.c[column])
                for column in (
                    "finished_at",
                    "outcome",
                    "error",
                    "retry_at",
                    "external_id",
                    "external_url",
                )
            }
        )
    )


@cache
def post_state() -> Update:
    """A post's state follows its deliveries, evaluated in the database. Parameter:
    p_post_id."""
    state = _c(Publication.state)
    post_id = bindparam("p_post_id", type_=_c(Publication.post_id).type)

    def some(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(_c(Publication.post_id) == post_id, condition)

    new = case(
        (some(_one_of(state, ACTIVE)), PostState.SCHEDULED.value),
        (~some(state != S.CANCELLED.value), PostState.DRAFT.value),
        (~some(~_one_of(state, [S.PUBLISHED, S.CANCELLED])), PostState.PUBLISHED.value),
        (some(state == S.PUBLISHED.value), PostState.PARTIALLY_FAILED.value),
        else_=PostState.FAILED.value,
    )
    return update(posts).where(_c(Post.id) == post_id, _c(Post.state) != new).values(state=new)


@cache
def delivery_content() -> DeliveryContent:
    """What an attempt needs of its post and channel, in one row (two single rows side by
    side). Parameters: p_post_id, p_channel_id."""
    post_id = bindparam("p_post_id", type_=_c(Post.id).type)
    channel_id = bindparam("p_channel_id", type_=_c(Channel.id).type)
    return (
        select(
            _c(Post.title),
            _c(Post.body),
            _c(Post.excerpt),
            _c(Post.canonical_url),
            _c(Post.short_body),
            exists().where(_c(PostMedia.post_id) == _c(Post.id)).label("has_media"),
            _c(Channel.platform),
            _c(Channel.credentials_encrypted),
            _c(Channel.settings),
            _c(Channel.retry_base_seconds),
            _c(Channel.retry_max_seconds),
        )
        .select_from(posts)
        .join(channels, _c(Channel.id) == channel_id)
        .where(_c(Post.id) == post_id)
    )


@cache
def tags() -> Select[str]:
    """A post's tags in order. Parameter: p_post_id."""
    return (
        select(_c(PostTag.tag))
        .where(_c(PostTag.post_id) == _param(_c(PostTag.post_id)))
        .order_by(_c(PostTag.position))
    )


# --- the request side (create_publications flushes the session before running these) ---


@cache
def insert_jobs() -> Insert:
    """New job rows; the parameters are their columns (one dict per row)."""
    return insert(jobs)


@cache
def insert_publications() -> Insert:
    """New delivery rows; the parameters are their columns (one dict per row)."""
    return insert(publications)


@cache
def post_in_workspace() -> Select[uuid.UUID, str]:
    """The post's id and state if it is this workspace's. Parameters: p_id,
    p_workspace_id."""
    return select(_c(Post.id), _c(Post.state)).where(
        _c(Post.id) == _param(_c(Post.id)),
        _c(Post.workspace_id) == _param(_c(Post.workspace_id)),
    )


@cache
def channels_in_workspace() -> Select[uuid.UUID, int]:
    """(id, max_retries) of those of p_ids (a list) that are this workspace's channels.
    Parameters: p_ids, p_workspace_id."""
    channel_id = _c(Channel.id)
    return select(channel_id, _c(Channel.max_retries)).where(
        channel_id.in_(bindparam("p_ids", expanding=True, type_=channel_id.type)),
        _c(Channel.workspace_id) == _param(_c(Channel.workspace_id)),
    )


def _live(post_id: ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
    return and_(
        _c(Publication.post_id) == post_id,
        _one_of(_c(Publication.state), [*ACTIVE, S.PUBLISHED]),
    )


@cache
def has_live_publications() -> Select[uuid.UUID]:
    """One row if the post has an active or published delivery (Core: a first publish
    pays no ORM query). Parameter: p_post_id."""
    return select(_c(Publication.id)).where(_live(_param(_c(Publication.post_id)))).limit(1)


@cache
def live_publications() -> Select[Publication]:
    """A post's active or published deliveries, as ORM objects. Parameter: p_post_id."""
    return select(Publication).where(_live(_param(_c(Publication.post_id))))
