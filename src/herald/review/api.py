"""The review routes: approve, reject, and send back for review (under /posts)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.posts.schemas import PostRead
from herald.publishing.schemas import PublicationRead
from herald.review import service
from herald.review.schemas import Approved, ApproveRequest, RejectRequest
from herald.scheduling.slots_api import QueuedRead
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/posts", tags=["review"], responses=problem_responses(401))


@router.post("/{post_id}/approve", responses=problem_responses(404, 409, 422))
def approve_post(
    post_id: uuid.UUID, body: ApproveRequest, principal: PrincipalDep, session: SessionDep
) -> Approved:
    """Approve a post waiting for review (`in_review`) and make its deliveries: now, at
    `schedule`, or in each channel's next free slot. Who approved it and when is kept on
    the post. A post that is not waiting (someone decided first) is a 409."""
    result = service.approve(session, principal, post_id, body.channel_ids, body.schedule)
    return Approved(
        post=PostRead.model_validate(result.post),
        publications=[PublicationRead.model_validate(p) for p in result.publications],
        queued=[QueuedRead.model_validate(q) for q in result.queued],
    )


@router.post("/{post_id}/reject", responses=problem_responses(404, 409, 422))
def reject_post(
    post_id: uuid.UUID, body: RejectRequest, principal: PrincipalDep, session: SessionDep
) -> PostRead:
    """Reject a post waiting for review, saying why; it can be edited and sent back with
    POST /api/v1/posts/{post_id}/submit."""
    return PostRead.model_validate(service.reject(session, principal, post_id, body.note))


@router.post("/{post_id}/submit", responses=problem_responses(404, 409))
def submit_post(post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> PostRead:
    """Send a rejected post, or a draft with nothing delivered, for review (`in_review`);
    the last decision is cleared."""
    return PostRead.model_validate(service.submit(session, principal, post_id))
