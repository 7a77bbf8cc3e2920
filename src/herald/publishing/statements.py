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

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    select,
    update,
)

from herald.channels.models import Channel, ChannelState
from herald.jobs.models import Job
from herald.media.models import PostMedia
from herald.posts.models import Post, PostState, PostTag
from herald.publishing.models import ACTIVE, Publication, PublicationAttempt, PublicationState

S = PublicationState

publications: Table = Publication.__table__  # type: ignore[assignment]
attempts: Table = PublicationAttempt.__table__  # type: ignore[assignment]
jobs: Table = Job.__table__  # type: ignore[assignment]
channels: Table = Channel.__table__  # type: ignore[assignment]
posts: Table = Post.__table__  # type: ignore[assignment]
post_tags: Table = PostTag.__table__  # type: ignore[assignment]
post_media: Table = PostMedia.__table__  # type: ignore[assignment]

# What a state change returns of the row it changed (RETURNING), so nothing is re-read.
RETURNED = (
    "task_id",
    "workspace_id",
    "post_id",
    "channel_id",
    "attempt",
    "max_attempts",
    "idempotency_key",
)


def _param(table: Table, column: str) -> Any:
    return bindparam(f"p_{column}", type_=table.c[column].type)


def _one_of(column: Any, states: Iterable[PublicationState]) -> ColumnElement[bool]:
    """``column IN (...)`` of constants, each its own bound value: a plain list would be
    one "expanding" parameter, filled in per call (see herald.core.direct)."""
    return column.in_([literal(state.value, column.type) for state in states])  # type: ignore[no-any-return]


def _change(from_state: PublicationState, *conditions: Any, **values: Any) -> Any:
    """Compare-and-set on one delivery (p_id) in ``from_state``, stamping p_updated_at and
    returning the RETURNED columns; None from ``.first()`` when someone else got there."""
    p = publications
    return (
        update(p)
        .where(p.c.id == _param(p, "id"), p.c.state == from_state.value, *conditions)
        .values(updated_at=_param(p, "updated_at"), **values)
        .returning(*(p.c[name] for name in RETURNED))
    )


@cache
def claim() -> Any:
    """queued → publishing, one attempt more, if the channel is active, no cancel was
    asked for and an attempt is left (the limit holds whatever queued the row).
    Parameters: p_id, p_updated_at, p_lease_until."""
    p = publications
    return _change(
        S.QUEUED,
        p.c.cancel_requested.is_(False),
        p.c.attempt < p.c.max_attempts,
        p.c.channel_id.in_(
            select(channels.c.id).where(channels.c.state == ChannelState.ACTIVE.value)
        ),
        state=S.PUBLISHING.value,
        lease_until=_param(p, "lease_until"),
        attempt=p.c.attempt + 1,
    )


@cache
def settle(columns: tuple[str, ...]) -> Any:
    """publishing → p_state for attempt p_attempt only (a reconciled, re-claimed delivery
    has a newer one), setting ``columns`` from p_<column>. Parameters: p_id, p_attempt,
    p_state, p_updated_at and one per column."""
    p = publications
    return _change(
        S.PUBLISHING,
        p.c.attempt == _param(p, "attempt"),
        state=_param(p, "state"),
        **{column: _param(p, column) for column in columns},
    )


@cache
def renew_lease() -> Any:
    """Move the lease of attempt p_attempt on, while that attempt still holds the delivery.
    Parameters: p_id, p_attempt, p_lease_until. Returns the id when renewed."""
    p = publications
    return (
        update(p)
        .where(
            p.c.id == _param(p, "id"),
            p.c.state == S.PUBLISHING.value,
            p.c.attempt == _param(p, "attempt"),
        )
        .values(lease_until=_param(p, "lease_until"))
        .returning(p.c.id)
    )


@cache
def sync_job(started: bool, finished: bool) -> Any:
    """The job row follows its delivery. Parameters: p_id, p_state, p_updated_at, and
    p_started_at / p_finished_at when asked for."""
    values = {"state": _param(jobs, "state"), "updated_at": _param(jobs, "updated_at")}
    if started:
        values["started_at"] = _param(jobs, "started_at")
    if finished:
        values["finished_at"] = _param(jobs, "finished_at")
    return update(jobs).where(jobs.c.id == _param(jobs, "id")).values(**values)


@cache
def start_attempt() -> Any:
    """A new attempt row; the parameters are its columns (id, publication_id, number,
    started_at, outcome)."""
    return insert(attempts)


@cache
def finish_attempt() -> Any:
    """Parameters: p_publication_id, p_number and the outcome's columns."""
    a = attempts
    return (
        update(a)
        .where(
            a.c.publication_id == _param(a, "publication_id"),
            a.c.number == _param(a, "number"),
        )
        .values(
            **{
                column: _param(a, column)
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
def post_state() -> Any:
    """A post's state follows its deliveries, evaluated in the database. Parameter:
    p_post_id."""
    p = publications
    post_id = bindparam("p_post_id", type_=p.c.post_id.type)

    def some(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(p.c.post_id == post_id, condition)

    new = case(
        (some(_one_of(p.c.state, ACTIVE)), PostState.SCHEDULED.value),
        (~some(p.c.state != S.CANCELLED.value), PostState.DRAFT.value),
        (
            ~some(~_one_of(p.c.state, [S.PUBLISHED, S.CANCELLED])),
            PostState.PUBLISHED.value,
        ),
        (some(p.c.state == S.PUBLISHED.value), PostState.PARTIALLY_FAILED.value),
        else_=PostState.FAILED.value,
    )
    return update(posts).where(posts.c.id == post_id, posts.c.state != new).values(state=new)


@cache
def delivery_content() -> Any:
    """What an attempt needs of its post and channel, in one row (two single rows side by
    side). Parameters: p_post_id, p_channel_id."""
    post_id = bindparam("p_post_id", type_=posts.c.id.type)
    channel_id = bindparam("p_channel_id", type_=channels.c.id.type)
    c = channels.c
    return (
        select(
            posts.c.title,
            posts.c.body,
            posts.c.excerpt,
            posts.c.canonical_url,
            exists().where(post_media.c.post_id == posts.c.id).label("has_media"),
            c.platform,
            c.credentials_encrypted,
            c.settings,
            c.retry_base_seconds,
            c.retry_max_seconds,
        )
        .select_from(posts)
        .join(channels, c.id == channel_id)
        .where(posts.c.id == post_id)
    )


@cache
def tags() -> Any:
    """A post's tags in order. Parameter: p_post_id."""
    t = post_tags
    return select(t.c.tag).where(t.c.post_id == _param(t, "post_id")).order_by(t.c.position)


# --- the request side (create_publications flushes the session before running these) ---


@cache
def insert_jobs() -> Any:
    """New job rows; the parameters are their columns (one dict per row)."""
    return insert(jobs)


@cache
def insert_publications() -> Any:
    """New delivery rows; the parameters are their columns (one dict per row)."""
    return insert(publications)


@cache
def post_in_workspace() -> Any:
    """The post's id if it is this workspace's. Parameters: p_id, p_workspace_id."""
    return select(posts.c.id).where(
        posts.c.id == _param(posts, "id"),
        posts.c.workspace_id == _param(posts, "workspace_id"),
    )


@cache
def channels_in_workspace() -> Any:
    """(id, max_retries) of those of p_ids (a list) that are this workspace's channels.
    Parameters: p_ids, p_workspace_id."""
    c = channels.c
    return select(c.id, c.max_retries).where(
        c.id.in_(bindparam("p_ids", expanding=True, type_=c.id.type)),
        c.workspace_id == _param(channels, "workspace_id"),
    )


def _live(post_id: Any) -> ColumnElement[bool]:
    state = publications.c.state
    return and_(publications.c.post_id == post_id, _one_of(state, [*ACTIVE, S.PUBLISHED]))


@cache
def has_live_publications() -> Any:
    """One row if the post has an active or published delivery (Core: a first publish
    pays no ORM query). Parameter: p_post_id."""
    p = publications
    return select(p.c.id).where(_live(_param(p, "post_id"))).limit(1)


@cache
def live_publications() -> Any:
    """A post's active or published deliveries, as ORM objects. Parameter: p_post_id."""
    return select(Publication).where(_live(_param(publications, "post_id")))
