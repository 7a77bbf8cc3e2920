"""Posts: create, read, update, delete and list with filters and keyset pagination."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, Literal, NamedTuple, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from herald.core import direct
from herald.core.clock import utcnow
from herald.core.dates import to_utc
from herald.core.errors import InvalidInput, NotFound
from herald.core.pagination import decode_cursor, encode_cursor
from herald.media.models import PostMedia
from herald.media.service import attachments
from herald.posts.models import Post, PostTag
from herald.posts.schemas import PostCreate, PostFilters, PostSort, PostUpdate
from herald.users.principal import Principal

_SORT_COLUMNS: dict[PostSort, tuple[InstrumentedAttribute[Any], bool]] = {
    PostSort.CREATED_DESC: (Post.created_at, True),
    PostSort.CREATED_ASC: (Post.created_at, False),
    PostSort.UPDATED_DESC: (Post.updated_at, True),
    PostSort.UPDATED_ASC: (Post.updated_at, False),
    PostSort.TITLE_ASC: (Post.title, False),
    PostSort.TITLE_DESC: (Post.title, True),
}


def create_post(session: Session, principal: Principal, body: PostCreate) -> Post:
    post = Post(
        workspace_id=principal.workspace_id,
        author_id=principal.user_id,
        title=body.title,
        body=body.body,
        excerpt=body.excerpt,
        canonical_url=str(body.canonical_url) if body.canonical_url else None,
        keywords=body.keywords,
        short_body=body.short_body,
        language=body.language,
    )
    post.tags = body.tags
    refresh_seo(post)
    session.add(post)
    session.flush()
    if body.media_ids:
        post.media_rows = attachments(session, principal, body.media_ids)
        session.flush()
    return post


def get_post(session: Session, principal: Principal, post_id: uuid.UUID) -> Post:
    post = session.get(Post, post_id)
    if post is None or post.workspace_id != principal.workspace_id:
        raise NotFound(f"No post {post_id}.")
    return post


def update_post(
    session: Session, principal: Principal, post_id: uuid.UUID, body: PostUpdate
) -> Post:
    post = get_post(session, principal, post_id)
    fields = body.model_dump(exclude_unset=True)
    if "title" in fields and fields["title"] is None:
        raise InvalidInput("title cannot be null", field="title")
    measured = _seo_inputs(post)
    for name in ("title", "excerpt", "short_body", "language"):
        if name in fields:
            setattr(post, name, fields[name])
    if "keywords" in fields:
        post.keywords = fields["keywords"] or []
    if "body" in fields:
        post.body = fields["body"] or ""
    if "canonical_url" in fields:
        post.canonical_url = str(body.canonical_url) if body.canonical_url else None
    if "tags" in fields:
        post.tags = fields["tags"] or []
    if "media_ids" in fields:
        post.media_rows = attachments(session, principal, body.media_ids or [])
    if post.seo is None or _seo_inputs(post) != measured:
        refresh_seo(post)
    session.flush()
    return post


def _seo_inputs(post: Post) -> tuple[object, ...]:
    """What the SEO metrics are computed from: when none of it changed, neither did they.
    Tags are in it because a post without keywords is measured against its tags."""
    return (post.title, post.body, post.excerpt, list(post.keywords), post.language, post.tags)


def refresh_seo(post: Post) -> None:
    """Compute the post's SEO metrics and keep them on it (the caller flushes)."""
    post.seo = _measure(post)


def measure(
    title: str, body: str, excerpt: str | None, keywords: list[str], language: str | None
) -> dict[str, Any]:
    """The SEO metrics of a post's text, stamped with when they were computed. Pure CPU
    (the first call in a process loads textstat's English dictionary, ~1.8 s): an agent's
    run measures its draft before its write transaction opens."""
    # markdown-it and textstat load here, not with this module: `herald post list` never
    # measures, and must start fast.
    from herald.posts import seo  # noqa: PLC0415

    return {
        **seo.compute(title, body, excerpt, keywords, language),
        "computed_at": utcnow().isoformat(),
    }


def _measure(post: Post) -> dict[str, Any]:
    return measure(
        post.title, post.body or "", post.excerpt, post.keywords or post.tags, post.language
    )


def get_seo(session: Session, principal: Principal, post_id: uuid.UUID) -> dict[str, Any]:
    """The post's stored SEO metrics and its id. A post saved before the metrics existed is
    measured now, for this answer only: a read stores nothing (on SQLite it cannot), and
    the post's next save keeps them."""
    post = get_post(session, principal, post_id)
    return {**(post.seo if post.seo is not None else _measure(post)), "post_id": post.id}


def delete_post(session: Session, principal: Principal, post_id: uuid.UUID) -> None:
    session.delete(get_post(session, principal, post_id))
    session.flush()


def _cursor_value(post: Any, column: InstrumentedAttribute[Any]) -> Any:
    value = getattr(post, column.key)
    return value.isoformat() if isinstance(value, datetime) else value


def _parse_cursor_value(raw: Any, column: InstrumentedAttribute[Any]) -> Any:
    if column.key in ("created_at", "updated_at"):
        try:
            return to_utc(datetime.fromisoformat(str(raw)))
        except ValueError:
            raise InvalidInput(
                "cursor is malformed; start again without it.", field="cursor"
            ) from None
    if "\x00" in str(raw):  # decoded from base64, so the edge's NUL check never saw it
        raise InvalidInput("cursor is malformed; start again without it.", field="cursor")
    return str(raw)


# What a post's read shows besides its tags and images, in PostRead's order.
_READ_COLUMNS = (
    Post.id, Post.title, Post.body, Post.excerpt, Post.canonical_url, Post.state,
    Post.author_id, Post.created_at, Post.updated_at, Post.agent_id, Post.reviewed_by,
    Post.reviewed_by_email, Post.reviewed_at, Post.review_decision, Post.review_note,
    Post.keywords, Post.short_body, Post.language, Post.seo,
)  # fmt: skip


def list_post_reads(
    session: Session,
    principal: Principal,
    *,
    filters: PostFilters,
    sort: PostSort = PostSort.CREATED_DESC,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the workspace's posts as PostRead's fields (dicts), and the cursor of the
    next page. Read as rows: three queries (posts, their tags, their images) and no ORM
    objects, which cost the API most of a list's CPU (loading, identity map,
    relationship loaders). The statements are built once per shape of request (which
    filters are given) and run through :mod:`herald.core.direct`: building a statement and
    its cache key, and SQLAlchemy's execution machinery, cost more than SQLite's query."""
    column = _SORT_COLUMNS[sort][0]
    params: dict[str, Any] = {"p_workspace_id": principal.workspace_id, "p_limit": limit + 1}
    states = list(dict.fromkeys(filters.state or ()))
    params.update({f"p_state_{i}": state for i, state in enumerate(states)})
    if filters.tag:
        params["p_tag"] = filters.tag.strip()
    if filters.q:
        escaped = filters.q.lower().replace("\\", "\\\\").replace("%", "\\%")
        params["p_pattern"] = "%" + escaped.replace("_", "\\_") + "%"
    if filters.created_from:
        params["p_created_from"] = filters.created_from
    if filters.created_to:
        params["p_created_to"] = filters.created_to
    if cursor:
        raw_value, raw_id = decode_cursor(cursor, 2)
        params["p_cursor_value"] = _parse_cursor_value(raw_value, column)
        try:
            params["p_cursor_id"] = uuid.UUID(str(raw_id))
        except ValueError:
            raise InvalidInput(
                "cursor is malformed; start again without it.", field="cursor"
            ) from None
    shape = _PageShape(
        sort,
        len(states),
        bool(filters.tag),
        bool(filters.q),
        bool(filters.created_from),
        bool(filters.created_to),
        bool(cursor),
    )
    session.flush()  # what this session changed is part of what it reads
    connection = session.connection()
    found = direct.execute(connection, _page_statement(shape), params)
    rows, next_cursor = _page(found, limit, column)
    return _with_tags_and_media(connection, rows), next_cursor


def get_post_read(session: Session, principal: Principal, post_id: uuid.UUID) -> dict[str, Any]:
    """One post as PostRead's fields, read as rows as :func:`list_post_reads` reads a page
    (404 when the workspace has no such post)."""
    session.flush()
    connection = session.connection()
    rows = direct.execute(
        connection, _one_statement(), {"p_id": post_id, "p_workspace_id": principal.workspace_id}
    )
    if not rows:
        raise NotFound(f"No post {post_id}.")
    return _with_tags_and_media(connection, rows)[0]


class _PageShape(NamedTuple):
    """Which filters a page request gives: one statement per shape, values bound."""

    sort: PostSort
    states: int
    tag: bool
    q: bool
    created_from: bool
    created_to: bool
    cursor: bool


@cache
def _page_statement(shape: _PageShape) -> Select[Any]:
    column, descending = _SORT_COLUMNS[shape.sort]
    conditions: list[ColumnElement[bool]] = [Post.workspace_id == bindparam("p_workspace_id")]
    if shape.states:
        state_type = Post.state.type
        conditions.append(
            Post.state.in_(
                [bindparam(f"p_state_{i}", type_=state_type) for i in range(shape.states)]
            )
        )
    if shape.tag:
        conditions.append(
            Post.id.in_(select(PostTag.post_id).where(PostTag.tag == bindparam("p_tag")))
        )
    if shape.q:
        pattern = bindparam("p_pattern", type_=String())
        conditions.append(
            or_(
                func.lower(Post.title).like(pattern, escape="\\"),
                func.lower(Post.body).like(pattern, escape="\\"),
                func.lower(func.coalesce(Post.excerpt, "")).like(pattern, escape="\\"),
            )
        )
    if shape.created_from:
        conditions.append(Post.created_at >= bindparam("p_created_from"))
    if shape.created_to:
        conditions.append(Post.created_at < bindparam("p_created_to"))
    if shape.cursor:
        value: BindParameter[Any] = bindparam("p_cursor_value")
        last_id: BindParameter[uuid.UUID] = bindparam("p_cursor_id")
        if descending:
            conditions.append(or_(column < value, and_(column == value, Post.id < last_id)))
        else:
            conditions.append(or_(column > value, and_(column == value, Post.id > last_id)))
    order = (column.desc(), Post.id.desc()) if descending else (column.asc(), Post.id.asc())
    return (
        select(*_READ_COLUMNS)
        .where(*conditions)
        .order_by(*order)
        .limit(bindparam("p_limit", type_=Integer()))
    )


@cache
def _one_statement() -> Select[Any]:
    return select(*_READ_COLUMNS).where(
        Post.id == bindparam("p_id"), Post.workspace_id == bindparam("p_workspace_id")
    )


def _id_slots(count: int) -> int:
    """How many ids an ``IN`` list of ``count`` posts is built for: the next power of two,
    so a few statements serve every page size (the list is padded with its last id)."""
    return 1 << max(count - 1, 0).bit_length()


@cache
def _children_statement(kind: Literal["tags", "media"], slots: int) -> Select[uuid.UUID, Any]:
    """The tags (or images) of up to ``slots`` posts, in each post's order."""
    post_id, value, position = (
        (PostTag.post_id, PostTag.tag, PostTag.position)
        if kind == "tags"
        else (PostMedia.post_id, PostMedia.media_id, PostMedia.position)
    )
    ids = [bindparam(f"p_id_{i}", type_=post_id.type) for i in range(slots)]
    return select(post_id, value).where(post_id.in_(ids)).order_by(post_id, position)


def _with_tags_and_media(connection: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The posts' rows as dicts, each with its ``tags`` and ``media_ids`` in order."""
    posts = [row._asdict() for row in rows]
    tags: dict[uuid.UUID, list[str]] = {}
    media: dict[uuid.UUID, list[uuid.UUID]] = {}
    for post in posts:
        tags[post["id"]], media[post["id"]] = post["tags"], post["media_ids"] = [], []
    if posts:
        ids = list(tags)
        slots = _id_slots(len(ids))
        params = {f"p_id_{i}": ids[min(i, len(ids) - 1)] for i in range(slots)}
        for post_id, tag in direct.execute(connection, _children_statement("tags", slots), params):
            tags[post_id].append(tag)
        for post_id, media_id in direct.execute(
            connection, _children_statement("media", slots), params
        ):
            media[post_id].append(media_id)
    return posts


_R = TypeVar("_R")


def _page(
    rows: list[_R], limit: int, column: InstrumentedAttribute[Any]
) -> tuple[list[_R], str | None]:
    """The first ``limit`` of ``rows`` (read with one more) and the next page's cursor."""
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last: Any = rows[-1]  # a row of the post's columns (named like Post's)
        next_cursor = encode_cursor([_cursor_value(last, column), str(last.id)])
    return rows, next_cursor
