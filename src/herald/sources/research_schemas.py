"""What the research endpoints take and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald.core.types import IsoDateTime, StrictInt
from herald.jobs.models import JobState

FIXED_SITES = ("reddit", "hackernews")
MAX_SITES = 10
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class ResearchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=500, description="The words to search for.")
    sources: list[str | dict[str, str]] = Field(
        min_length=1,
        max_length=MAX_SITES,
        description='Sites to search: "reddit", "hackernews", or {"discourse": "<forum URL>"}.',
        examples=[["reddit", "hackernews", {"discourse": "https://forum.example.org"}]],
    )
    since: IsoDateTime | None = Field(
        None, description="Only items published at or after this time (UTC if no offset)."
    )
    limit: StrictInt = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Most items kept per site."
    )

    @field_validator("query")
    @classmethod
    def _words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is blank: give the words to search for")
        return value.strip()

    @field_validator("sources")
    @classmethod
    def _sites(cls, value: list[str | dict[str, str]]) -> list[str | dict[str, str]]:
        for site in value:
            if isinstance(site, str):
                if site == "discourse":
                    raise ValueError(
                        'a Discourse forum is given with its URL: {"discourse": "https://…"}'
                    )
                if site not in FIXED_SITES:
                    raise ValueError(
                        f'{site!r} is not a site: use "reddit", "hackernews" or '
                        '{"discourse": "<forum URL>"}'
                    )
            elif list(site) != ["discourse"]:
                raise ValueError(
                    f'{site!r}: a forum is given as {{"discourse": "<forum URL>"}}, alone'
                )
        return value


class ResearchAccepted(BaseModel):
    task_id: str
    status: str = "pending"
    message: str


class SiteDigest(BaseModel):
    """One site's share of the results."""

    site: str  # "reddit", "hackernews", or "discourse"
    label: str  # the site, or a forum's host
    url: str | None
    items: int
    pages: int | None = Field(description="Pages read; None until the site is done.")
    total_score: int
    total_comments: int
    top_titles: list[str]
    done: bool
    error: str | None


class ResearchItem(BaseModel):
    id: uuid.UUID
    site: str
    title: str
    link: str | None
    summary_text: str
    author: str | None
    published_at: datetime | None
    score: int | None
    comments: int | None
    comments_url: str | None
    rank: float = Field(description="The blend of score and recency results are sorted by.")


class ResearchRead(BaseModel):
    task_id: str
    query: str
    status: JobState
    ready: bool
    successful: bool
    failed: bool
    progress: dict[str, Any] | None
    message: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    item_count: int
    sites: list[SiteDigest]
    items: list[ResearchItem]


class ResearchSummary(BaseModel):
    task_id: str
    query: str
    sites: list[str]
    status: JobState
    ready: bool
    progress: dict[str, Any] | None
    message: str | None
    created_at: datetime
    finished_at: datetime | None
