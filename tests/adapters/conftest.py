"""What the adapter tests share beyond the contract suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.specs import require_specs


@pytest.fixture
def platform_specs() -> Path:
    """The platform specs folder: a test that needs it skips locally without it, and
    fails in CI."""
    return require_specs()
