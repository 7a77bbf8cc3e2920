"""Every date and time a client sends is checked against the range Herald can compute with:
an instant at either end of Python's datetime answered 500 (OverflowError) on the
calendar, the slots, scheduling, the post filters and cursors, and token expiry."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.core.dates import EARLIEST, LATEST, check_day, to_utc
from tests.conftest import Account


def test_to_utc_converts_and_refuses_what_overflows() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert to_utc(datetime(2026, 10, 25, 9, tzinfo=plus2)) == datetime(2026, 10, 25, 7, tzinfo=UTC)
    for moment in (
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # year 0 in UTC
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-10))),  # year 10000
        EARLIEST - timedelta(microseconds=1),
        LATEST + timedelta(microseconds=1),
    ):
        with pytest.raises(ValueError, match="outside the dates Herald handles"):
            to_utc(moment)
    with pytest.raises(ValueError, match="no offset"):
        to_utc(datetime(2026, 10, 25, 9))
    assert to_utc(EARLIEST) == EARLIEST
    assert to_utc(LATEST) == LATEST
    assert check_day(date(2026, 1, 1)) == date(2026, 1, 1)
    with pytest.raises(ValueError, match="outside"):
        check_day(date(9999, 12, 31))


def _cursor(value: str) -> str:
    raw = json.dumps([value, "00000000-0000-0000-0000-000000000000"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _ids(client: TestClient, account: Account) -> dict[str, str]:
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "folder", "name": "site", "credentials": {"path": "/tmp/herald-site"}},
        headers=account.headers,
    ).json()["id"]
    post = client.post("/api/v1/posts", json={"title": "Hello"}, headers=account.headers)
    return {"channel": channel, "post": post.json()["id"]}


# (method, path, query, body, where the error is reported). Each answered 500 before.
CASES: list[tuple[str, str, dict[str, str], dict[str, Any] | None, list[str]]] = [
    ("GET", "/api/v1/calendar", {"from": "9999-12-31", "to": "9999-12-31", "tz": "UTC"}, None,
     ["query", "from"]),
    ("GET", "/api/v1/calendar", {"from": "0001-01-01", "tz": "Etc/GMT-14"}, None,
     ["query", "from"]),
    ("GET", "/api/v1/calendar", {"from": "0001-01-01T00:00:00+14:00"}, None, ["query", "from"]),
    ("GET", "/api/v1/calendar", {"from": "9999-12-30", "to": "9999-12-31T23:00:00-10:00"}, None,
     ["query", "from"]),
    ("GET", "/api/v1/channels/{channel}/slots", {"from": "9999-12-31"}, None, ["query", "from"]),
    ("GET", "/api/v1/channels/{channel}/slots", {"from": "2026-01-01", "to": "9999-12-31"}, None,
     ["query", "to"]),
    ("POST", "/api/v1/posts/{post}/schedule", {},
     {"scheduled_at": "9999-12-31T23:59:00-14:00", "channel_ids": ["{channel}"]},
     ["body", "scheduled_at"]),
    ("POST", "/api/v1/posts/{post}/schedule", {},
     {"scheduled_at": "9999-12-31 23:59 Pacific/Pago_Pago", "channel_ids": ["{channel}"]},
     ["body", "scheduled_at"]),
    ("PATCH", "/api/v1/posts/{post}/schedule", {},
     {"scheduled_at": "0001-01-01T00:00:00+14:00"}, ["body", "scheduled_at"]),
    ("GET", "/api/v1/posts", {"created_from": "0001-01-01T00:00:00+14:00"}, None,
     ["query", "created_from"]),
    ("GET", "/api/v1/posts", {"created_to": "9999-12-31T23:59:59-14:00"}, None,
     ["query", "created_to"]),
    ("GET", "/api/v1/posts", {"created_from": "2026-01-01"}, None, ["query", "created_from"]),
    ("GET", "/api/v1/posts", {"cursor": _cursor("0001-01-01T00:00:00+14:00")}, None,
     ["body", "cursor"]),
    ("POST", "/api/v1/auth/tokens", {},
     {"name": "ci", "expires_at": "9999-12-31T23:59:59-14:00"}, ["body", "expires_at"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "loc"),
    CASES,
    ids=[f"{c[0]} {c[1]} {c[2] or c[3]}" for c in CASES],
)
def test_out_of_range_dates_are_422_problems(
    client: TestClient,
    account: Account,
    method: str,
    path: str,
    query: dict[str, str],
    body: dict[str, Any] | None,
    loc: list[str],
) -> None:
    ids = _ids(client, account)
    url = path.format(**ids)
    if body is not None:
        body = json.loads(json.dumps(body).replace("{channel}", ids["channel"]))
    response = client.request(method, url, params=query, json=body, headers=account.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"][0]["loc"][: len(loc)] == loc, problem
    # The message says what to change: the range, or the missing offset.
    assert any(
        hint in problem["detail"]
        for hint in ("outside the dates Herald handles", "timezone", "malformed")
    ), problem["detail"]


def test_the_range_edges_still_work(client: TestClient, account: Account) -> None:
    ids = _ids(client, account)
    for query in (
        {"from": LATEST.date().isoformat(), "tz": "Etc/GMT-14"},
        {"from": EARLIEST.date().isoformat(), "tz": "Etc/GMT+12"},
        {"from": "9998-12-31T23:59:59+00:00"},
    ):
        response = client.get("/api/v1/calendar", params=query, headers=account.headers)
        assert response.status_code == 200, (query, response.text)
        slots = client.get(
            f"/api/v1/channels/{ids['channel']}/slots", params=query, headers=account.headers
        )
        assert slots.status_code == 200, (query, slots.text)
    posts = client.get(
        "/api/v1/posts",
        params={"created_from": "0002-01-01T00:00:00Z", "created_to": "9998-12-31T00:00:00Z"},
        headers=account.headers,
    )
    assert posts.status_code == 200, posts.text
    assert len(posts.json()["items"]) == 1
