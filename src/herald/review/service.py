"""Review: drafts that wait in ``in_review`` until a person approves or rejects them.

An agent's draft (unless the agent auto-publishes) waits in ``in_review``; publishing,
scheduling and queueing refuse it (``publishing.actions.request``) until it is approved.
Approving turns it into a plain draft and, in the same transaction, makes its deliveries:
now, at a time, or in each channel's next free slot, to the channels given or else the
agent's. Rejecting keeps it out with a note saying why; the author edits it and sends it
back with :func:`submit`.

Each decision is one conditional UPDATE on the post's state, so two reviewers deciding
at once give one decision and one 409, never two.

Errors::

    HeraldError
    ├── NotFound       404: no such post (or another workspace's)
    ├── Conflict       409: the post is not waiting for review (someone decided first)
    └── InvalidInput   422: an empty or too long note, a time in the past, a schedule
                       without channels
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.agents.models import Agent
from herald.channels.models import Channel
from herald.core.clock import utcnow
from herald.core.errors import Conflict, InvalidInput
from herald.events.service import publish_after_commit
from herald.posts.models import Post, PostState
from herald.posts.service import get_post
from herald.publishing import actions
from herald.publishing.models import Publication
from herald.scheduling.service import PAST_TOLERANCE
from herald.scheduling.slots import QueuedDelivery, queue_post
from herald.users.principal import Principal
from herald.webhooks import outbox

NOTE_MAX_LENGTH = 2000
APPROVED = "approved"
REJECTED = "rejected"

Schedule = Literal["queue"] | datetime | None


@dataclass(frozen=True)
class ApproveResult:
    """The approved post and the deliveries approving made (or found already there);
    ``queued`` tells each one's slot when it was queued."""

    post: Post
    publications: list[Publication] = field(default_factory=list)
    queued: list[QueuedDelivery] = field(default_factory=list)


def approve(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    channel_ids: list[uuid.UUID] | None = None,
    schedule: Schedule = None,
) -> ApproveResult:
    """Approve a post waiting for review: it becomes a draft, the reviewer and the time
    are recorded, and its deliveries are made.

    ``channel_ids`` None means the agent's channels when an agent wrote it (those still
    in the workspace), else none; an empty list approves without publishing.
    ``schedule``: None publishes now, a time schedules, ``"queue"`` takes each channel's
    next free slot.
    """
    if isinstance(schedule, datetime) and schedule < utcnow() - PAST_TOLERANCE:
        raise InvalidInput(
            f"schedule {schedule.isoformat()} is in the past; leave it out to publish now",
            field="schedule",
        )
    post = _decide(
        session,
        principal,
        post_id,
        PostState.IN_REVIEW,
        state=PostState.DRAFT,
        reviewed_by=principal.user_id,
        reviewed_at=utcnow(),
        review_decision=APPROVED,
        review_note=None,
    )
    targets = _targets(session, principal, post, channel_ids)
    result = ApproveResult(post)
    if not targets:
        if schedule is not None:
            raise InvalidInput(
                "schedule needs channels to deliver to: give channel_ids "
                "(this post has no agent channels to fall back on)",
                field="channel_ids",
            )
    elif schedule == "queue":
        queued = queue_post(session, principal, post.id, targets)
        result = ApproveResult(post, [q.publication for q in queued], queued)
    else:
        due_at = schedule if isinstance(schedule, datetime) else None
        result = ApproveResult(
            post, actions.publish(session, principal, post.id, targets, due_at=due_at)
        )
    session.refresh(post)  # the deliveries moved its state on
    _announce(session, principal, post, APPROVED)
    return result


def reject(session: Session, principal: Principal, post_id: uuid.UUID, note: str) -> Post:
    """Reject a post waiting for review, with a note saying why; it stays out until it
    is edited and sent back (:func:`submit`)."""
    note = note.strip()
    if not note:
        raise InvalidInput(
            "note: say why the post is rejected, so its author can fix it", field="note"
        )
    if len(note) > NOTE_MAX_LENGTH:
        raise InvalidInput(f"note: at most {NOTE_MAX_LENGTH} characters", field="note")
    post = _decide(
        session,
        principal,
        post_id,
        PostState.IN_REVIEW,
        state=PostState.REJECTED,
        reviewed_by=principal.user_id,
        reviewed_at=utcnow(),
        review_decision=REJECTED,
        review_note=note,
    )
    _announce(session, principal, post, REJECTED)
    return post


def submit(session: Session, principal: Principal, post_id: uuid.UUID) -> Post:
    """Send a rejected post (or a draft with nothing delivered) back for review; the last
    decision is cleared, so the queue shows it as new (live: ``post.reviewed`` with the
    decision "submitted")."""
    post = _decide(
        session,
        principal,
        post_id,
        PostState.REJECTED,
        PostState.DRAFT,
        state=PostState.IN_REVIEW,
        reviewed_by=None,
        reviewed_at=None,
        review_decision=None,
        review_note=None,
    )
    _announce(session, principal, post, "submitted")
    return post


def review_queue(session: Session, principal: Principal, limit: int = 100) -> list[Post]:
    """Posts waiting for review, oldest first (the order a reviewer works through them)."""
    return list(
        session.scalars(
            select(Post)
            .where(Post.workspace_id == principal.workspace_id, Post.state == PostState.IN_REVIEW)
            .order_by(Post.created_at, Post.id)
            .limit(limit)
        )
    )


def _decide(
    session: Session,
    principal: Principal,
    post_id: uuid.UUID,
    *from_states: PostState,
    **values: Any,
) -> Post:
    """Move the post from one of ``from_states`` with ``values``, in one conditional
    UPDATE: whoever comes second changes nothing and gets a 409 saying where it is."""
    session.flush()
    changed = session.execute(
        update(Post)
        .where(
            Post.id == post_id,
            Post.workspace_id == principal.workspace_id,
            Post.state.in_(from_states),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    post = get_post(session, principal, post_id)  # 404 for a missing or foreign post
    session.refresh(post)
    if not getattr(changed, "rowcount", 0):
        raise Conflict(_not_waiting(post, from_states))
    return post


def _not_waiting(post: Post, wanted: tuple[PostState, ...]) -> str:
    """Why a decision cannot be made on ``post``, and what to do instead."""
    if PostState.IN_REVIEW in wanted:
        if post.state == PostState.REJECTED:
            return (
                f"Post {post.id} was already rejected{_by(post)}; edit it and send it back "
                f"with POST /api/v1/posts/{post.id}/submit."
            )
        if post.review_decision == APPROVED:
            return f"Post {post.id} was already approved{_by(post)}; it is {post.state} now."
        return (
            f"Post {post.id} is not waiting for review (it is {post.state}); there is "
            "nothing to approve or reject: publish or schedule it as it is."
        )
    if post.state == PostState.IN_REVIEW:
        return f"Post {post.id} is already waiting for review."
    return (
        f"Post {post.id} is {post.state}: only a draft with nothing delivered or a rejected "
        "post can be sent for review."
    )


def _by(post: Post) -> str:
    who = f" by {post.reviewed_by_email}" if post.reviewed_by_email else ""
    when = f" at {post.reviewed_at.isoformat()}" if post.reviewed_at else ""
    return who + when


def _targets(
    session: Session,
    principal: Principal,
    post: Post,
    channel_ids: list[uuid.UUID] | None,
) -> list[uuid.UUID]:
    """The channels to deliver to: those given, else the agent's still in the workspace."""
    if channel_ids is not None:
        return list(dict.fromkeys(channel_ids))
    if post.agent_id is None:
        return []
    agent = session.get(Agent, post.agent_id)
    if agent is None or agent.workspace_id != principal.workspace_id:
        return []
    wanted: list[uuid.UUID] = []
    for raw in agent.channel_ids:
        try:
            wanted.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    present = set(
        session.scalars(
            select(Channel.id).where(
                Channel.id.in_(wanted), Channel.workspace_id == principal.workspace_id
            )
        )
    )
    return [cid for cid in dict.fromkeys(wanted) if cid in present]


def _announce(session: Session, principal: Principal, post: Post, decision: str) -> None:
    """The live ``post.reviewed`` event, after commit: the dashboard re-reads the post;
    and, for a decision, the event webhooks' one, in this transaction (outbox)."""
    data = {
        "post_id": post.id,
        "decision": decision,
        "state": str(post.state),
        "reviewer_id": principal.user_id,
        "reviewer_email": principal.email,
    }
    publish_after_commit(session, principal.workspace_id, "post.reviewed", data)
    if decision in (APPROVED, REJECTED):  # a submission is not a review
        outbox.record(session, principal.workspace_id, "post.reviewed", data)
