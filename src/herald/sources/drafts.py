"""Auto-generate: new items become draft posts, at most a few per check.

A source with an agent hands its new items to the agent: after commit it sends
``herald.agents.draft_items`` (by name: agents build on sources, not the other way), and
the agent starts one run per item, within its quota and with its review. A source
without one makes the draft from the item itself: its title, its summary as the body, a
link to it and an attribution line, its link as the canonical URL. Each item is claimed
first (a conditional UPDATE), so an item never makes two drafts, however many checks or
workers look at it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.core.tx import after_commit
from herald.posts.models import Post, PostState
from herald.posts.service import refresh_seo
from herald.sources.models import ItemUse, Source, SourceItem
from herald.worker import app as celery_app

# The agents' task that starts a run per item (herald.agents.tasks).
AGENT_TASK = "herald.agents.draft_items"

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


@dataclass
class Drafted:
    posts: list[uuid.UUID] = field(default_factory=list)  # drafts made from items
    to_agent: list[uuid.UUID] = field(default_factory=list)  # items handed to the agent


def from_items(session: Session, source: Source, item_ids: list[uuid.UUID], limit: int) -> Drafted:
    """Draft posts from up to ``limit`` of these items, newest first, or hand them to
    the source's agent. Items past the limit stay available, undrafted."""
    done = Drafted()
    if not item_ids or limit <= 0:
        return done
    items = session.scalars(
        select(SourceItem)
        .where(SourceItem.id.in_(item_ids))
        .order_by(SourceItem.sort_at.desc(), SourceItem.id.desc())
    ).all()
    for item in items:
        if len(done.posts) + len(done.to_agent) >= limit:
            break
        if not _claim(session, item.id):
            continue
        if source.agent_id is not None:
            done.to_agent.append(item.id)
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
        refresh_seo(post)
        session.add(post)
        session.flush()  # the post first: the item use points at it
        session.add(ItemUse(item_id=item.id, post_id=post.id, agent_id=None))
        done.posts.append(post.id)
    session.flush()
    if done.to_agent:
        args = (str(source.agent_id), [str(i) for i in done.to_agent])
        after_commit(session, lambda: celery_app.send_task(AGENT_TASK, args))
    return done
