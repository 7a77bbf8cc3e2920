from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from herald.agents.models import ReviewMode, RunState, RunTrigger
from herald.core.types import StrictInt

MAX_KEYWORDS = 20
MAX_IDS = 50
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")

# Money in the currency's units, as a decimal with at most 6 places (micro-units are what
# is stored); read back as a JSON number.
MoneyIn = Annotated[Decimal, Field(ge=0, le=1_000_000_000, decimal_places=6, allow_inf_nan=False)]
Money = Annotated[float, Field(description="In the currency's units (see `currency`).")]


def to_micros(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 1_000_000)


def from_micros(value: int) -> float:
    # Exact to the micro-unit: the shortest repr of the float n/10**6 is the decimal itself
    # (for sums below 2**53 micro-units).
    return value / 1_000_000


def clean_keywords(value: list[str]) -> list[str]:
    """Whitespace collapsed, empties dropped, duplicates (case-insensitive) dropped."""
    seen: set[str] = set()
    cleaned = []
    for raw in value:
        keyword = " ".join(raw.split())
        if keyword and keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            cleaned.append(keyword)
    if len(cleaned) > MAX_KEYWORDS:
        raise ValueError(f"at most {MAX_KEYWORDS} keywords, not {len(cleaned)}")
    return cleaned


def check_language(value: str) -> str:
    value = value.strip()
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(f"give a language tag such as 'en', 'pl' or 'pt-BR', not {value!r}")
    return value


Keywords = Annotated[
    list[Annotated[str, Field(max_length=100)]],
    Field(
        max_length=100,
        description=f"At most {MAX_KEYWORDS} after cleaning (trimmed, "
        "duplicates dropped, case-insensitive).",
    ),
    AfterValidator(clean_keywords),
]
Language = Annotated[
    str, Field(min_length=2, max_length=16, examples=["en"]), AfterValidator(check_language)
]
Name = Annotated[str, Field(min_length=1, max_length=100, examples=["Weekly digest"])]
Topic = Annotated[str, Field(min_length=1, max_length=500, examples=["Python packaging news"])]
Instructions = Annotated[str, Field(max_length=4000, description="The brand voice.")]
Cron = Annotated[
    str,
    Field(
        max_length=120,
        examples=["0 9 * * MON"],
        description="Standard 5-field cron (minute hour day-of-month month day-of-week), "
        "read in `timezone`; names (MON, JAN), ranges, lists, steps and @daily-style "
        "aliases. A local time skipped by a DST change runs once when the clocks jump; "
        "a repeated one runs once, the first time.",
    ),
]
Zone = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Warsaw"])]
TargetWords = Annotated[StrictInt, Field(ge=50, le=5000)]
SourceIds = Annotated[
    list[uuid.UUID], Field(max_length=MAX_IDS, description="This workspace's sources.")
]
ChannelIds = Annotated[
    list[uuid.UUID], Field(max_length=MAX_IDS, description="This workspace's channels.")
]
# Drafts are a 32-bit column; tokens a 64-bit one (kept within what a JSON number holds).
Drafts = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
Tokens = Annotated[StrictInt, Field(ge=0, le=2**53)]


class QuotaIn(BaseModel):
    """Monthly limits (calendar months in the workspace's zone); null or left out: none.
    In a PATCH, only the limits given change."""

    drafts_per_month: Drafts | None = None
    tokens_per_month: Tokens | None = None
    cost_per_month: MoneyIn | None = Field(
        None, description="In the currency's units, e.g. 5.5 (at most 6 decimal places)."
    )


class QuotaRead(BaseModel):
    drafts_per_month: int | None
    tokens_per_month: int | None
    cost_per_month: Money | None


class AgentCreate(BaseModel):
    name: Name
    topic: Topic
    keywords: Keywords = Field(default_factory=list)
    tone: str | None = Field(None, max_length=100, examples=["friendly, concise"])
    target_words: TargetWords = 600
    language: Language = "en"
    instructions: Instructions | None = None
    source_ids: SourceIds = Field(default_factory=list)
    channel_ids: ChannelIds = Field(default_factory=list)
    schedule_cron: Cron | None = None
    timezone: Zone = "UTC"
    enabled: bool = True
    provider_id: uuid.UUID | None = Field(
        None, description="This workspace's provider; null: the workspace's default."
    )
    review: ReviewMode = Field(
        ReviewMode.REQUIRED,
        description="`required`: drafts wait for approval; `auto_publish`: they go "
        "straight into the target channels' next free queue slots (needs channel_ids).",
    )
    quota: QuotaIn = Field(default_factory=QuotaIn)


class AgentUpdate(BaseModel):
    name: Name | None = None
    topic: Topic | None = None
    keywords: Keywords | None = None
    tone: str | None = Field(None, max_length=100)
    target_words: TargetWords | None = None
    language: Language | None = None
    instructions: Instructions | None = None
    source_ids: SourceIds | None = None
    channel_ids: ChannelIds | None = None
    schedule_cron: Cron | None = Field(None, description="null: no schedule.")
    timezone: Zone | None = None
    enabled: bool | None = None
    provider_id: uuid.UUID | None = None
    review: ReviewMode | None = None
    quota: QuotaIn | None = None


class ProviderRef(BaseModel):
    id: uuid.UUID | None = Field(description="null: the built-in digest.")
    name: str
    kind: str
    origin: Literal["agent", "workspace", "builtin"] = Field(
        description="Where it comes from: the agent's own, the workspace's default, or "
        "the built-in digest."
    )


class AgentRead(BaseModel):
    id: uuid.UUID
    name: str
    topic: str
    keywords: list[str]
    tone: str | None
    target_words: int
    language: str
    instructions: str | None
    source_ids: list[uuid.UUID]
    channel_ids: list[uuid.UUID]
    schedule_cron: str | None
    timezone: str
    enabled: bool
    provider_id: uuid.UUID | None
    provider: ProviderRef = Field(description="The provider its runs use.")
    review: ReviewMode
    quota: QuotaRead
    next_run_at: datetime | None = Field(description="UTC; null without a schedule or disabled.")
    next_runs: list[datetime] = Field(
        description="The next 3 occurrences, with the offset of the agent's zone."
    )
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RunRead(BaseModel):
    id: uuid.UUID
    state: RunState
    trigger: RunTrigger
    scheduled_for: datetime | None = Field(description="The cron occurrence, for scheduled runs.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    post_id: uuid.UUID | None = Field(description="The draft made.")
    topic: str | None
    keyword: str | None
    provider_kind: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cost: Money
    latency_ms: int | None
    attempts: int
    error: str | None
    job_id: str | None


class AgentSettingsUpdate(BaseModel):
    default_provider_id: uuid.UUID | None = Field(
        None, description="This workspace's provider; null: the built-in digest."
    )
    instructions: Instructions | None = None
    timezone: Zone | None = Field(None, description="The zone quota months are counted in.")
    quota: QuotaIn | None = None


class AgentSettingsRead(BaseModel):
    default_provider_id: uuid.UUID | None
    default_provider: ProviderRef
    instructions: str | None
    timezone: str
    quota: QuotaRead
    updated_at: datetime | None = Field(description="null: never changed (the defaults).")


# -- the usage report ---------------------------------------------------------------------


class QuotaLeftRead(BaseModel):
    drafts: int | None
    tokens: int | None
    cost: Money | None


class UsageRow(BaseModel):
    key: str | None = Field(
        description="The agent's or provider's id (null: provider tests; a provider id "
        "null: the built-in digest), the model, or the day (YYYY-MM-DD)."
    )
    label: str
    runs: int = Field(description="Distinct runs (provider tests count none).")
    calls: int = Field(description="Provider calls (ledger rows).")
    input_tokens: int
    output_tokens: int
    tokens: int
    cost: Money
    latency_p50_ms: int | None = Field(description="Nearest-rank percentile of the calls.")
    latency_p95_ms: int | None
    quota_left: QuotaLeftRead | None = Field(
        description="Left this month of the agent's limits (group_by=agent; totals: the "
        "workspace's); null: no limits."
    )


UsageGroup = Literal["agent", "provider", "model", "day"]


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    group_by: UsageGroup
    timezone: str = Field(description="The workspace's zone (days and quota months).")
    currency: str
    rows: list[UsageRow]
    totals: UsageRow
