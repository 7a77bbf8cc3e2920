"""The benchmarks' shared harness: which environment variables a benchmark clears."""

from __future__ import annotations

import os

import pytest
from bench._harness import SUITE_VARIABLES, child_env, clear_settings


def test_herald_settings_are_cleared_and_the_suites_variables_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A benchmark clears Herald's settings before setting its own. HERALD_PLATFORM_SPECS
    # shares the prefix but is the suite's: without it, the platform fakes a benchmark
    # runs answered 500 to every request in a clean clone under CI=true.
    monkeypatch.setenv("HERALD_PLATFORM_SPECS", "/specs")
    monkeypatch.setenv("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setenv("HERALD_RATE_LIMIT_SCALE", "7")
    env = child_env(database_url="sqlite:///x.db")
    assert env["HERALD_PLATFORM_SPECS"] == "/specs"
    assert env["HERALD_TEST_REDIS_URL"] == "redis://127.0.0.1:1"
    assert env["HERALD_DATABASE_URL"] == "sqlite:///x.db"
    assert "HERALD_RATE_LIMIT_SCALE" not in env
    # The suite's own HERALD_DATA_DIR and broker (tests/conftest.py) are settings too.
    assert "HERALD_BROKER_URL" not in env and "HERALD_DATA_DIR" not in env

    with monkeypatch.context() as scoped:
        for name in [k for k in os.environ if k.startswith("HERALD_")]:
            scoped.setenv(name, os.environ[name])  # restored after the clear below
        clear_settings()
        left = sorted(k for k in os.environ if k.startswith("HERALD_"))
    assert "HERALD_PLATFORM_SPECS" in left and "HERALD_TEST_REDIS_URL" in left
    assert set(left) <= SUITE_VARIABLES
