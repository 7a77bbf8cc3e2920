from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from herald.agents.models import ProviderKind, ProviderState

_BASE_URL = (
    "openai: the API's base URL, up to and including its version, e.g. "
    "`https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama) or "
    "`http://localhost:8080/v1` (llama.cpp); Herald posts to `{base_url}/chat/completions`. "
    "digest: leave out."
)
_MODEL = "openai: the model's name as the server knows it, e.g. `gpt-4o-mini`, `llama3.2`."
_KEY = (
    "openai: the API key, sent as `Authorization: Bearer`; optional for local servers. "
    "Encrypted at rest and never returned."
)
_PRICE = (
    "USD per million {} tokens. Unset: the price table's entry for the model "
    "(HERALD_MODEL_PRICES over Herald's defaults)."
)
_TIMEOUT = "Seconds to wait for the model's answer (1 to 600)."


class ProviderCreate(BaseModel):
    kind: ProviderKind
    name: str = Field(min_length=1, max_length=100, examples=["openai-mini"])
    base_url: str | None = Field(None, max_length=2048, description=_BASE_URL)
    model: str | None = Field(None, min_length=1, max_length=200, description=_MODEL)
    api_key: str | None = Field(None, min_length=1, max_length=4096, description=_KEY)
    input_price_per_million: float | None = Field(
        None, ge=0, le=1_000_000, description=_PRICE.format("input")
    )
    output_price_per_million: float | None = Field(
        None, ge=0, le=1_000_000, description=_PRICE.format("output")
    )
    timeout_seconds: float = Field(60.0, ge=1, le=600, description=_TIMEOUT)


class ProviderUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    base_url: str | None = Field(None, max_length=2048, description=_BASE_URL)
    model: str | None = Field(None, min_length=1, max_length=200, description=_MODEL)
    api_key: str | None = Field(
        None, min_length=1, max_length=4096, description=_KEY + " `null` removes it."
    )
    input_price_per_million: float | None = Field(
        None, ge=0, le=1_000_000, description=_PRICE.format("input") + " `null`: unset."
    )
    output_price_per_million: float | None = Field(
        None, ge=0, le=1_000_000, description=_PRICE.format("output") + " `null`: unset."
    )
    timeout_seconds: float | None = Field(None, ge=1, le=600, description=_TIMEOUT)


class ProviderRead(BaseModel):
    id: uuid.UUID
    kind: ProviderKind
    name: str
    base_url: str | None
    model: str | None
    has_api_key: bool
    input_price_per_million: float = Field(description="The price in effect (USD).")
    output_price_per_million: float = Field(description="The price in effect (USD).")
    price_source: Literal["provider", "table", "unknown"] = Field(
        description="Where the prices come from: the provider's own, the price table, or "
        "`unknown` (no price known for the model: its calls are recorded as costing 0)."
    )
    timeout_seconds: float
    state: ProviderState = Field(
        description="`needs_reconnect` after the server refused the key (401/403); "
        "changing the key, model or base URL makes it `active` again."
    )
    state_reason: str | None
    created_at: datetime
    updated_at: datetime


class ProviderTestStarted(BaseModel):
    task_id: str
    status: str = "pending"
    message: str
