"""Site tests: the fakes on loopback, the fixed sites pointed at them, waits recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.discourse import FakeDiscourse
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.reddit import FakeReddit
from tests.sources.sites.helpers import Waits, fixed_sites, recorded_waits


@pytest.fixture
def waits() -> Iterator[Waits]:
    with recorded_waits() as recorded:
        yield recorded


@pytest.fixture
def reddit(waits: Waits) -> Iterator[FakeReddit]:
    with FakeReddit() as fake, fixed_sites(fake, None):
        yield fake


@pytest.fixture
def hackernews(waits: Waits) -> Iterator[FakeHackerNews]:
    with FakeHackerNews() as fake, fixed_sites(None, fake):
        yield fake


@pytest.fixture
def forum(waits: Waits) -> Iterator[FakeDiscourse]:
    with FakeDiscourse() as fake:
        yield fake
