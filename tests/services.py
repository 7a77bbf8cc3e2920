"""Real services for the suite: a missing one skips locally and fails in CI (CI=true)."""

from __future__ import annotations

import os

import psycopg
import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("HERALD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def service_missing(name: str, why: str) -> None:
    message = f"{name} is not available ({why})"
    if IN_CI:
        pytest.fail(message + "; CI requires it", pytrace=False)
    pytest.skip(message)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason."""

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


def redis_available(url: str = REDIS_URL) -> str | None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return None
    except redis.RedisError as exc:
        return str(exc)
