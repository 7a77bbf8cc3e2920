"""Auto-generate: new items become draft posts, at most a few per check.

A source with an agent starts one run of the agent per new item (the item is the run's
material and its title the topic; the agent's quota and review apply). A source without
one makes the draft from the item itself: its title, its summary as the body, a link to
it and an attribution line, its link as the canonical URL. Each item is claimed first (a
conditional UPDATE), so an item never makes two drafts, however many checks or workers
look at it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.agents import generate, reserve
from herald.agents.models import Agent, RunTrigger
from herald.core.clock import utcnow
from herald.core.errors import HeraldError
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


@dataclass
class Drafted:
    posts: list[uuid.UUID] = field(default_factory=list)  # drafts made from items
    runs: list[uuid.UUID] = field(default_factory=list)  # agent runs started
    refused: str | None = None  # why the agent's quota stopped the runs


def _agent(session: Session, source: Source) -> Agent | None:
    if source.agent_id is None:
        return None
    agent = session.get(Agent, source.agent_id)
    if agent is None or agent.workspace_id != source.workspace_id or not agent.enabled:
        return None
    return agent


def from_items(session: Session, source: Source, item_ids: list[uuid.UUID], limit: int) -> Drafted:
    """Draft posts (or start the source's agent) from up to ``limit`` of these items,
    newest first. Items past the limit stay available, undrafted."""
    done = Drafted()
    if not item_ids or limit <= 0:
        return done
    items = session.scalars(
        select(SourceItem)
        .where(SourceItem.id.in_(item_ids))
        .order_by(SourceItem.sort_at.desc(), SourceItem.id.desc())
    ).all()
    agent = _agent(session, source)
    for item in items:
        if len(done.posts) + len(done.runs) >= limit:
            break
        if not _claim(session, item.id):
            continue
        if agent is not None:
            try:
                with session.begin_nested():
                    run = generate.start_run(
                        session,
                        agent,
                        trigger=RunTrigger.SOURCE,
                        owner_id=agent.created_by,
                        topic=item.title[:300] or None,
                        item_ids=[item.id],
                    )
            except HeraldError as exc:  # over quota, or the provider needs reconnecting
                reserve.refused(
                    session, agent, trigger=RunTrigger.SOURCE, now=utcnow(), error=exc.message
                )
                done.refused = exc.message
                break
            done.runs.append(run.id)
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
        done.posts.append(post.id)
    session.flush()
    return done
