"""check_config is what a source's fields are stored as: checking the stored fields again
gives them back unchanged (latest() checks them on every read)."""

from __future__ import annotations

from typing import Any

import pytest

from herald.core.errors import InvalidInput
from herald.sources import sites


@pytest.mark.parametrize(
    ("kind", "url", "query", "settings"),
    [
        ("reddit", None, "r/Python", {}),
        ("reddit", "https://www.reddit.com/r/rust/new/", None, {}),
        ("reddit", None, "async io", {"subreddit": "r/learnpython"}),
        ("hackernews", None, " sqlite ", {"min_points": 5}),
        ("discourse", "https://Forum.example.org/c/dev/7/", "herald", {}),
        ("discourse", "https://example.org/community/latest", None, {}),
    ],
)
def test_stored_fields_check_again_unchanged(
    kind: str, url: str | None, query: str | None, settings: dict[str, Any]
) -> None:
    stored = sites.check_config(kind, url=url, query=query, settings=settings)
    again = sites.check_config(kind, url=stored[0], query=stored[1], settings=stored[2])
    assert again == stored


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'feed' is not a site kind"):
        sites.check_config("feed", url=None, query=None, settings={})
