"""The fakes' own plumbing (tests/fakes/base.py, tests/fakes/specs.py): what every
adapter test relies on without saying so."""

from __future__ import annotations

import pytest

from tests import services
from tests.fakes import specs


def test_a_missing_specs_folder_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(specs, "specs_dir", lambda: None)
    monkeypatch.setattr(services, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        specs.require_specs()
    monkeypatch.setattr(services, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception):
        specs.require_specs()


def test_the_specs_folder_is_found_here(platform_specs: object) -> None:
    assert specs.specs_dir() == platform_specs
