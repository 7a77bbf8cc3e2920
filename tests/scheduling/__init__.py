"""Helpers shared by the slot, queue and calendar tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from herald.core.clock import set_clock
from herald.core.db import session_scope
from herald.scheduling.slots_api import routers
from herald.users.models import User
from herald.users.principal import Principal
from tests.conftest import Account


def include_slot_routers(client: TestClient) -> TestClient:
    """Mount the slot routers under /api/v1 unless app.py already does."""

    app: Any = client.app
    paths = {getattr(route, "path", "") for route in app.routes}
    if "/api/v1/calendar" not in paths:
        for router in routers:
            app.include_router(router, prefix="/api/v1")
    return client


@contextmanager
def frozen(moment: datetime) -> Iterator[None]:
    set_clock(lambda: moment)
    try:
        yield
    finally:
        set_clock(None)


def make_channel(client: TestClient, account: Account, name: str = "site") -> str:
    body = {"platform": "folder", "name": name, "credentials": {"path": f"/tmp/herald-{name}"}}
    response = client.post("/api/v1/channels", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_post(client: TestClient, account: Account, title: str = "Hello") -> str:
    response = client.post("/api/v1/posts", json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def set_slots(
    client: TestClient,
    account: Account,
    channel_id: str,
    timezone: str,
    slots: list[dict[str, Any]],
) -> dict[str, Any]:
    response = client.put(
        f"/api/v1/channels/{channel_id}/slots/config",
        json={"timezone": timezone, "slots": slots},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


def principal_of(account: Account) -> Any:
    with session_scope() as session:
        user = session.get_one(User, account.user_id)
        return Principal(user.id, user.workspace_id, user.email, user.role)


def as_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)
