"""The principal cache: a token seen moments ago skips the database, and revoking it (or
disabling its user) still takes effect at once in this process, and within
HERALD_AUTH_CACHE_SECONDS when another process makes the change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from herald.core.clock import utcnow
from herald.core.db import get_engine, session_scope
from herald.core.security import token_digest
from herald.core.settings import get_settings
from herald.users.auth_cache import principals
from herald.users.models import ApiToken, User
from herald.users.service import authenticate
from tests.conftest import Account, SessionFactory


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(principals, "clock", fake)
    principals.invalidate()
    yield fake
    principals.invalidate()


def _me(client: TestClient, account: Account) -> int:
    return client.get("/api/v1/auth/me", headers=account.headers).status_code


def _seen(client: TestClient, account: Account) -> None:
    """Two requests: the first records the token's use (a change to tokens, so it keeps
    nothing), the second leaves the caller in the cache."""
    assert _me(client, account) == 200
    assert _me(client, account) == 200
    assert principals.get(token_digest(account.token), _now()) is not None


def test_a_token_seen_moments_ago_is_answered_from_the_cache(
    client: TestClient, account: Account, clock: FakeClock
) -> None:
    _seen(client, account)
    clock.now += 4.9
    assert principals.get(token_digest(account.token), _now()) is not None
    clock.now += 0.1  # HERALD_AUTH_CACHE_SECONDS (5) after it was stored
    assert principals.get(token_digest(account.token), _now()) is None


def test_revoking_a_token_in_this_process_takes_effect_at_once(
    client: TestClient, account: Account, clock: FakeClock
) -> None:
    created = client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=account.headers)
    other = Account(**{**account.__dict__, "token": created.json()["token"]})
    _seen(client, other)
    deleted = client.delete(f"/api/v1/auth/tokens/{created.json()['id']}", headers=account.headers)
    assert deleted.status_code == 204
    assert _me(client, other) == 401


def test_disabling_a_user_in_this_process_takes_effect_at_once(
    client: TestClient, account: Account, db: SessionFactory, clock: FakeClock
) -> None:
    _seen(client, account)
    with db() as s:
        s.get_one(User, account.user_id).is_active = False
    assert _me(client, account) == 401


def test_a_change_by_another_process_takes_effect_within_the_cache_time(
    client: TestClient, account: Account, clock: FakeClock
) -> None:
    _seen(client, account)
    # As another process would (its sessions are not this one's): a bare connection.
    with get_engine().begin() as connection:
        connection.execute(text("DELETE FROM api_tokens"))
    assert _me(client, account) == 200  # the documented bound: up to 5 s more
    clock.now += 5
    assert _me(client, account) == 401


def test_a_lookup_that_began_before_a_revocation_does_not_keep_its_answer(
    account: Account, clock: FakeClock
) -> None:
    with session_scope() as s:
        principal = authenticate(s, account.token)
    # A lookup starts (it notes the generation) and reads the row; a revocation commits
    # before the lookup stores what it read.
    before = principals.generation
    with session_scope() as s:
        s.delete(s.scalars(select(ApiToken).where(ApiToken.user_id == account.user_id)).one())
    principals.put(
        token_digest(account.token),
        principal,
        expires_at=None,
        last_used_at=_now(),
        generation=before,
    )
    assert principals.get(token_digest(account.token), _now()) is None


def test_no_cache_when_its_time_is_zero(
    client: TestClient, account: Account, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "auth_cache_seconds", 0.0)
    assert _me(client, account) == 200
    assert _me(client, account) == 200
    assert principals.get(token_digest(account.token), _now()) is None


def _now() -> datetime:
    return utcnow()
