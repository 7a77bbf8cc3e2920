"""The price table: a provider's own prices, then HERALD_MODEL_PRICES over the defaults,
then unknown; money in micro-units, rounded half up."""

from __future__ import annotations

import pytest

from herald.agents.prices import DEFAULT_PRICES, Prices, cost_micros, prices_for
from herald.agents.providers.base import Usage
from herald.core.settings import Settings, get_settings


def test_the_documented_defaults() -> None:
    assert prices_for("openai", "gpt-4o-mini", None, None) == Prices(0.15, 0.60, "table")
    assert prices_for("openai", "gpt-4.1", None, None) == Prices(2.00, 8.00, "table")
    assert DEFAULT_PRICES["gpt-4o"] == (2.50, 10.00)
    # A dated snapshot is priced as its family (the longest name leading it).
    assert prices_for("openai", "gpt-4.1-mini-2025-04-14", None, None) == Prices(
        0.40, 1.60, "table"
    )


def test_a_providers_own_prices_win_and_the_digest_is_free() -> None:
    assert prices_for("openai", "gpt-4o-mini", 1.0, 2.0) == Prices(1.0, 2.0, "provider")
    # One of the two set: the other still from the table.
    assert prices_for("openai", "gpt-4o-mini", 0.1, None) == Prices(0.1, 0.60, "provider")
    assert prices_for("digest", "extractive", None, None) == Prices(0.0, 0.0, "provider")


def test_a_model_nobody_priced_costs_nothing_and_says_so() -> None:
    assert prices_for("openai", "llama3.2", None, None) == Prices(0.0, 0.0, "unknown")
    assert prices_for("openai", None, None, None).source == "unknown"


def test_the_setting_is_merged_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_MODEL_PRICES", '{"llama3.2": [0.05, 0.1], "gpt-4o": [3, 12]}')
    prices = Settings().model_prices
    assert prices == {"llama3.2": (0.05, 0.1), "gpt-4o": (3.0, 12.0)}
    monkeypatch.setattr(get_settings(), "model_prices", prices)
    assert prices_for("openai", "llama3.2", None, None) == Prices(0.05, 0.1, "table")
    assert prices_for("openai", "gpt-4o", None, None) == Prices(3.0, 12.0, "table")
    assert prices_for("openai", "gpt-4o-mini", None, None) == Prices(0.15, 0.60, "table")


@pytest.mark.parametrize(
    "value", ['{"m": [1]}', '{"m": [-1, 2]}', '{"m": "cheap"}', "not json", '{"m": [1, "x"]}']
)
def test_a_bad_setting_says_what_to_write(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HERALD_MODEL_PRICES", value)
    with pytest.raises(ValueError, match=r"input, output"):
        Settings()


def test_cost_in_micro_units_rounded_half_up() -> None:
    mini = Prices(0.15, 0.60, "table")
    # 1000 * 0.15 + 500 * 0.60 = 450 micro-dollars, exactly (no float drift).
    assert cost_micros(Usage(1000, 500), mini) == 450
    assert cost_micros(Usage(1_000_000, 1_000_000), mini) == 750_000
    assert cost_micros(Usage(1, 0), Prices(0.5, 0, "provider")) == 1  # 0.5 rounds up
    assert cost_micros(Usage(1, 0), Prices(0.49, 0, "provider")) == 0
    assert cost_micros(Usage(3, 0), Prices(0.15, 0, "table")) == 0  # 0.45
    assert cost_micros(Usage(10, 0), Prices(0.15, 0, "table")) == 2  # 1.5 rounds up
    assert cost_micros(Usage(123, 456), Prices(0.0, 0.0, "unknown")) == 0
