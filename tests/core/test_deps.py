"""The request's session dependency: a seat at the database per request, at most the
pool's size at once, so requests cannot take every connection and then wait for threads
held by requests waiting for connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.requests import Request

from herald.app import create_app
from herald.core.db import get_engine, reset_engine
from herald.core.deps import Overloaded, get_session
from herald.core.settings import get_settings
from tests.conftest import Account


@pytest.fixture
def one_connection(db_backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A pool of one connection (and two of overflow), given up on after 0.2 s."""
    settings = get_settings()
    monkeypatch.setattr(settings, "database_pool_size", 1)
    monkeypatch.setattr(settings, "database_pool_timeout_seconds", 0.2)
    reset_engine()
    yield
    reset_engine()


def _request(method: str) -> Request:
    return Request({"type": "http", "method": method, "path": "/", "headers": []})


def test_a_request_past_the_pools_size_waits_then_is_told_to_come_back(
    one_connection: None,
) -> None:
    async def scenario() -> None:
        first = get_session(_request("GET"))
        session = await first.__anext__()
        assert session.execute(text("SELECT 1")).scalar() == 1
        # The one seat is taken: the next request waits, and past the timeout is a 503.
        second = get_session(_request("GET"))
        with pytest.raises(Overloaded) as raised:
            await second.__anext__()
        assert raised.value.status_code == 503
        assert raised.value.headers["Retry-After"] == "1"
        with pytest.raises(StopAsyncIteration):
            await first.__anext__()  # the first one ends: its seat is free again
        third = get_session(_request("POST"))
        assert (await third.__anext__()).execute(text("SELECT 1")).scalar() == 1
        with pytest.raises(StopAsyncIteration):
            await third.__anext__()

    asyncio.run(scenario())


def test_every_connection_in_use_is_a_503_with_retry_after_not_a_500(
    one_connection: None, account: Account
) -> None:
    engine = get_engine()
    held = [engine.connect() for _ in range(3)]  # the pool and its overflow
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            response = client.get("/api/v1/posts", headers=account.headers)
    finally:
        for connection in held:
            connection.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/overloaded")
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/posts", headers=account.headers).status_code == 200
