from __future__ import annotations

import re
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


def _clean_words(values: list[str] | None, noun: str) -> list[str] | None:
    """Trimmed, deduplicated in order; a blank or overlong entry is refused by name."""
    if values is None:
        return None
    seen: dict[str, None] = {}
    for value in values:
        word = value.strip()
        if not word:
            raise ValueError(f"{noun}s cannot be empty")
        if len(word) > 100:
            raise ValueError(f"a {noun} is at most 100 characters")
        seen.setdefault(word, None)
    return list(seen)


def _clean_tags(values: list[str] | None) -> list[str] | None:
    return _clean_words(values, "tag")


def _clean_keywords(values: list[str] | None) -> list[str] | None:
    return _clean_words(values, "keyword")


# BCP 47-ish: a 2-3 letter language, then optional subtags ("en", "pt-BR", "zh-Hant-TW").
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def _language_tag(value: str | None) -> str | None:
    if value is None:
        return None
    tag = value.strip().replace("_", "-")
    if not _LANGUAGE_TAG.fullmatch(tag):
        raise ValueError("language is a language tag such as en, de or pt-BR")
    return tag


LanguageTag = Annotated[str, Field(max_length=16), AfterValidator(_language_tag)]


class SeoHeadings(BaseModel):
    counts: dict[str, int] = Field(description="Headings in the body per level, h1 to h6.")
    h1_count: int = Field(description="H1s on the page: the title is one.")
    levels_in_order: bool = Field(description="No level skipped going down (H2 then H4).")


class SeoLinks(BaseModel):
    total: int
    external: int = Field(description="Absolute http(s) links.")


class SeoImages(BaseModel):
    total: int
    with_alt: int
    alt_coverage: float | None = Field(description="Percent of images with alt text.")


class SeoWarning(BaseModel):
    code: str
    message: str


class SeoLimits(BaseModel):
    title_max_chars: int
    meta_description_min_chars: int
    meta_description_max_chars: int
    keyword_density_max_percent: float
    words_per_minute: int


class SeoMetrics(BaseModel):
    """What herald.posts.seo.compute measures, as stored on the post."""

    language: str = Field(description="The language read (a post without one: en).")
    word_count: int
    reading_time_minutes: int
    flesch_reading_ease: float | None = Field(description="None: not scored in this language.")
    flesch_kincaid_grade: float | None = Field(description="A US school grade: English only.")
    readability_formula: str | None
    keywords: list[str] = Field(description="The keywords measured: the post's, else its tags.")
    keyword_occurrences: dict[str, int]
    keyword_density: dict[str, float] = Field(description="Occurrences per 100 words.")
    title_length: int
    meta_description_length: int = Field(description="The excerpt's length.")
    headings: SeoHeadings
    links: SeoLinks
    images: SeoImages
    limits: SeoLimits
    warnings: list[SeoWarning]
    computed_at: datetime | None = None


class PostSeo(SeoMetrics):
    post_id: uuid.UUID


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

    # SEO
    keywords: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="The words the post is written for (keyword density); empty: its tags.",
    )
    short_body: str | None = Field(
        None, max_length=500, description="The text for short-post platforms."
    )
    language: LanguageTag | None = Field(None, description="A language tag: en, de, pt-BR.")

    _keywords = field_validator("keywords")(classmethod(lambda cls, v: _clean_keywords(v)))


class PostUpdate(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=300)
    body: str | None = Field(None, max_length=200_000)
    excerpt: str | None = Field(None, max_length=2000)
    tags: list[str] | None = Field(None, max_length=50)
    canonical_url: Url | None = None
    media_ids: list[uuid.UUID] | None = Field(None, max_length=10)

    _tags = field_validator("tags")(classmethod(lambda cls, v: _clean_tags(v)))

    # SEO
    keywords: list[str] | None = Field(None, max_length=20)
    short_body: str | None = Field(None, max_length=500)
    language: LanguageTag | None = None

    _keywords = field_validator("keywords")(classmethod(lambda cls, v: _clean_keywords(v)))


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

    # SEO
    keywords: list[str]
    short_body: str | None
    language: str | None
    seo: SeoMetrics | None


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
