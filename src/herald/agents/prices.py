"""What a provider call costs: a price table per model, in USD per million tokens.

A provider's own prices (set on the provider) win; else the model's entry in
``HERALD_MODEL_PRICES`` (a JSON object merged over :data:`DEFAULT_PRICES`); else the
documented default below. The digest makes no call that costs money. A model nobody
priced (a local Ollama or llama.cpp model, usually) costs 0 and says so with
``source="unknown"``, so a reader of the ledger can tell "free" from "not priced".

Money is kept in integer micro-units (a millionth of the currency): tokens times a price
per million tokens is micro-units exactly, and sums of integers do not drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from herald.agents.providers.base import Usage
from herald.core.settings import get_settings

PriceSource = Literal["provider", "table", "unknown"]

# USD per million tokens (input, output), standard tier (no batch, no cached input), as
# published on OpenAI's pricing page; checked 2026-12-06 against copies of that page
# taken 2026-11-05 and 2026-05-07 (the 4.x family is still billed at these prices).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


@dataclass(frozen=True)
class Prices:
    input: float  # per million input tokens
    output: float  # per million output tokens
    source: PriceSource


def price_table() -> dict[str, tuple[float, float]]:
    """The defaults with ``HERALD_MODEL_PRICES`` merged over them."""
    return {**DEFAULT_PRICES, **get_settings().model_prices}


def _table_entry(model: str) -> tuple[float, float] | None:
    table = price_table()
    if model in table:
        return table[model]
    # A dated snapshot ("gpt-4o-mini-2024-07-18") is priced as its family, the longest
    # name that leads it.
    leading = [name for name in table if model.startswith(name + "-")]
    return table[max(leading, key=len)] if leading else None


def prices_for(
    kind: str, model: str | None, provider_in: float | None, provider_out: float | None
) -> Prices:
    """The prices of one call: the provider's own (either one set: the other is 0 unless
    the table has it), else the table's, else unknown (0)."""
    if kind == "digest":
        return Prices(0.0, 0.0, "provider")
    entry = _table_entry(model or "")
    if provider_in is not None or provider_out is not None:
        table_in, table_out = entry or (0.0, 0.0)
        return Prices(
            table_in if provider_in is None else provider_in,
            table_out if provider_out is None else provider_out,
            "provider",
        )
    if entry is not None:
        return Prices(entry[0], entry[1], "table")
    return Prices(0.0, 0.0, "unknown")


def cost_micros(usage: Usage, prices: Prices) -> int:
    """Micro-units: tokens times the price per million tokens, rounded half up (Decimal,
    so 0.15 is 0.15 and not the float just below it)."""
    exact = Decimal(usage.input_tokens) * Decimal(str(prices.input)) + Decimal(
        usage.output_tokens
    ) * Decimal(str(prices.output))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
