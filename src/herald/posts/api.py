from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from herald.core.dates import UtcDateTime
from herald.core.deps import SessionDep
from herald.core.errors import problem_responses
from herald.core.pagination import Page
from herald.core.responses import model_response
from herald.posts import service
from herald.posts.models import PostState
from herald.posts.schemas import (
    PostCreate,
    PostFilters,
    PostRead,
    PostSeo,
    PostSort,
    PostUpdate,
)
from herald.users.deps import PrincipalDep

router = APIRouter(prefix="/posts", tags=["posts"], responses=problem_responses(401))


@router.get("", response_model=Page[PostRead], responses=problem_responses(422))
def list_posts(
    principal: PrincipalDep,
    session: SessionDep,
    state: Annotated[list[PostState] | None, Query(description="Repeat to match any.")] = None,
    tag: Annotated[str | None, Query(max_length=100, description="One tag.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text search.")] = None,
    created_from: Annotated[
        UtcDateTime | None, Query(description="Inclusive, ISO 8601 with an offset.")
    ] = None,
    created_to: Annotated[
        UtcDateTime | None, Query(description="Exclusive, ISO 8601 with an offset.")
    ] = None,
    sort: PostSort = PostSort.CREATED_DESC,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the page before.")
    ] = None,
) -> Response:
    filters = PostFilters(
        state=state, tag=tag, q=q, created_from=created_from, created_to=created_to
    )
    posts, next_cursor = service.list_post_reads(
        session, principal, filters=filters, sort=sort, limit=limit, cursor=cursor
    )
    # One validation of the whole page from its dicts, not one per post.
    page = Page[PostRead].model_validate({"items": posts, "next_cursor": next_cursor})
    return model_response(page)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(422))
def create_post(body: PostCreate, principal: PrincipalDep, session: SessionDep) -> PostRead:
    return PostRead.model_validate(service.create_post(session, principal, body))


@router.get("/{post_id}", response_model=PostRead, responses=problem_responses(404))
def get_post(post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> Response:
    return model_response(
        PostRead.model_validate(service.get_post_read(session, principal, post_id))
    )


@router.get("/{post_id}/seo", responses=problem_responses(404))
def get_post_seo(post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> PostSeo:
    """The post's SEO metrics and warnings, as computed when it was last saved."""
    return PostSeo.model_validate(service.get_seo(session, principal, post_id))


@router.patch("/{post_id}", responses=problem_responses(404, 422))
def update_post(
    post_id: uuid.UUID, body: PostUpdate, principal: PrincipalDep, session: SessionDep
) -> PostRead:
    return PostRead.model_validate(service.update_post(session, principal, post_id, body))


@router.delete(
    "/{post_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
def delete_post(post_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> None:
    service.delete_post(session, principal, post_id)
