"""Auto-generate: new items become draft posts, at most a few per check.

Until a source has an agent (the agents feature), a draft is made from the item itself:
its title, its summary as the body, a link to it and an attribution line, its link as
the canonical URL. Each item is claimed first (a conditional UPDATE), so an item never
makes two drafts, however many checks or workers look at it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.posts.models import Post, PostState
from herald.sources.models import ItemUse, Source, SourceItem

TITLE_MAX = 300


def _body(item: SourceItem, source: Source) -> str:
    parts = [item.summary_text.strip()] if item.summary_text.strip() else []
    if item.link:
        parts.append(f"[Read it at the source]({item.link})")
    by = f" by {item.author}" if item.author else ""
    parts.append(f"*From {source.title or source.name}{by}.*")
    return "\n\n".join(parts)


def _claim(session: Session, item_id: uuid.UUID) -> bool:
    claimed = session.execute(
        update(SourceItem)
        .where(SourceItem.id == item_id, SourceItem.auto_drafted.is_(False))
        .values(auto_drafted=True)
    )
    return bool(getattr(claimed, "rowcount", 0))


def from_items(
    session: Session, source: Source, item_ids: list[uuid.UUID], limit: int
) -> list[uuid.UUID]:
    """Draft posts from up to ``limit`` of these items, newest first; returns the posts'
    ids. Items past the limit stay available, undrafted."""
    if not item_ids or limit <= 0:
        return []
    items = session.scalars(
        select(SourceItem)
        .where(SourceItem.id.in_(item_ids))
        .order_by(SourceItem.sort_at.desc(), SourceItem.id.desc())
    ).all()
    made: list[uuid.UUID] = []
    for item in items:
        if len(made) >= limit:
            break
        if not _claim(session, item.id):
            continue
        title = (item.title or item.summary_text or item.link or "Untitled").strip()
        post = Post(
            workspace_id=source.workspace_id,
            author_id=None,
            title=title[:TITLE_MAX],
            body=_body(item, source),
            excerpt=item.summary_text[:500] or None,
            canonical_url=item.link[:2048] if item.link else None,
            state=PostState.DRAFT,
        )
        session.add(post)
        session.flush()  # the post first: the item use points at it
        session.add(ItemUse(item_id=item.id, post_id=post.id, agent_id=None))
        made.append(post.id)
    session.flush()
    return made
