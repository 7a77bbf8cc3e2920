from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    UrlConstraints,
    field_validator,
)

from herald.core.dates import UtcDateTime
from herald.posts.models import PostState

Tag = str
URL_MAX_LENGTH = 2048  # the column that keeps it (posts.canonical_url)


def _fits(url: AnyHttpUrl) -> AnyHttpUrl:
    # Measured as stored: normalising can lengthen it (a bare host gains a "/").
    if len(str(url)) > URL_MAX_LENGTH:
        raise ValueError(f"a URL is at most {URL_MAX_LENGTH} characters")
    return url


Url = Annotated[AnyHttpUrl, UrlConstraints(max_length=URL_MAX_LENGTH), AfterValidator(_fits)]


def _clean_tags(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    seen: dict[str, None] = {}
    for value in values:
        tag = value.strip()
        if not tag:
            raise ValueError("tags cannot be empty")
        if len(tag) > 100:
            raise ValueError("a tag is at most 100 characters")
        seen.setdefault(tag, None)
    return list(seen)


class PostCreate(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field("", max_length=200_000, description="Markdown.")
    excerpt: str | None = Field(None, max_length=2000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    canonical_url: Url | None = None
    media_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=10, description="Images from POST /media, in order."
    )

    _tags = field_validator("tags")(classmethod(lambda cls, v: _clean_tags(v)))


class PostUpdate(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=300)
    body: str | None = Field(None, max_length=200_000)
    excerpt: str | None = Field(None, max_length=2000)
    tags: list[str] | None = Field(None, max_length=50)
    canonical_url: Url | None = None
    media_ids: list[uuid.UUID] | None = Field(None, max_length=10)

    _tags = field_validator("tags")(classmethod(lambda cls, v: _clean_tags(v)))


class PostRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    body: str
    excerpt: str | None
    tags: list[str]
    canonical_url: str | None
    media_ids: list[uuid.UUID]
    state: PostState
    author_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    # Review
    agent_id: uuid.UUID | None = Field(description="The agent that wrote it; null: a person.")
    reviewed_by: uuid.UUID | None = Field(description="Who approved or rejected it last.")
    reviewed_by_email: str | None
    reviewed_at: datetime | None
    review_decision: str | None = Field(description="`approved` or `rejected`; null: none yet.")
    review_note: str | None = Field(description="Why it was rejected.")


class PostSort(StrEnum):
    CREATED_DESC = "-created_at"
    CREATED_ASC = "created_at"
    UPDATED_DESC = "-updated_at"
    UPDATED_ASC = "updated_at"
    TITLE_ASC = "title"
    TITLE_DESC = "-title"


class PostFilters(BaseModel):
    state: list[PostState] | None = None
    tag: str | None = None
    q: str | None = Field(None, description="Text to find in the title, body or excerpt.")
    created_from: UtcDateTime | None = None
    created_to: UtcDateTime | None = None
