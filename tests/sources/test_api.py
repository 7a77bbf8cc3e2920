"""The sources API: create, read, update, delete; items, newest first, with a cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from herald.core.db import session_scope
from herald.sources.entries import Entry
from herald.sources.items import store_entries
from tests.conftest import Account, MakeAccount

pytestmark = pytest.mark.usefixtures("db_backend")

FEED = {"kind": "feed", "name": "Example", "url": "https://news.example.org/feed.xml"}


def test_a_feed_source_is_created_read_updated_and_deleted(
    client: TestClient, account: Account
) -> None:
    created = client.post("/api/v1/sources", json=FEED, headers=account.headers)
    assert created.status_code == 201, created.text
    source = created.json()
    assert (source["interval_minutes"], source["enabled"], source["checks"]) == (30, True, 0)
    assert source["subscribed_at"] is None and source["has_credentials"] is False
    url = f"/api/v1/sources/{source['id']}"

    patched = client.patch(
        url, json={"interval_minutes": 5, "enabled": False}, headers=account.headers
    )
    assert patched.status_code == 200
    assert (patched.json()["interval_minutes"], patched.json()["enabled"]) == (5, False)
    assert patched.json()["disabled_reason"] == "disabled by a person"
    listed = client.get("/api/v1/sources", headers=account.headers).json()
    assert [s["name"] for s in listed] == ["Example"]

    assert client.delete(url, headers=account.headers).status_code == 204
    assert client.get(url, headers=account.headers).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "feed", "name": "x"}, "url"),
        ({"kind": "feed", "name": "x", "url": "ftp://example.org/feed"}, "url"),
        ({"kind": "feed", "name": "x", "url": "feed.xml"}, "url"),
        ({**FEED, "query": "python"}, "query"),
        ({**FEED, "interval_minutes": 0}, "interval_minutes"),
        ({**FEED, "kind": "gopher"}, "kind"),
    ],
)
def test_bad_input_is_a_clear_422(
    client: TestClient, account: Account, body: dict[str, object], field: str
) -> None:
    answer = client.post("/api/v1/sources", json=body, headers=account.headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in answer.text


def test_a_private_address_is_refused_when_not_allowed(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from herald.core.settings import get_settings  # noqa: PLC0415 - the test's own setting

    monkeypatch.setattr(get_settings(), "allowed_private_networks", [])
    body = {**FEED, "url": "http://169.254.169.254/latest/meta-data"}
    answer = client.post("/api/v1/sources", json=body, headers=account.headers)
    assert answer.status_code == 422


def test_names_are_unique_and_other_workspaces_see_nothing(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    first = client.post("/api/v1/sources", json=FEED, headers=account.headers)
    assert client.post("/api/v1/sources", json=FEED, headers=account.headers).status_code == 409
    other = make_account(workspace="elsewhere")
    url = f"/api/v1/sources/{first.json()['id']}"
    assert client.get(url, headers=other.headers).status_code == 404
    assert client.get(f"{url}/items", headers=other.headers).status_code == 404
    assert client.post(f"{url}/check", headers=other.headers).status_code == 404
    assert client.get("/api/v1/items", headers=other.headers).json()["items"] == []


def test_items_page_newest_first_and_filter(client: TestClient, account: Account) -> None:
    source_id = uuid.UUID(
        client.post("/api/v1/sources", json=FEED, headers=account.headers).json()["id"]
    )
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    entries = [
        Entry(
            site="feed",
            title=f"Rust release {n}" if n % 2 else f"Python release {n}",
            guid=f"g{n}",
            summary_text=f"notes {n}",
            published_at=t0 + timedelta(hours=n),
        )
        for n in range(7)
    ]
    with session_scope() as s:
        store_entries(s, workspace_id=account.workspace_id, entries=entries, source_id=source_id)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(
            f"/api/v1/sources/{source_id}/items", params=params, headers=account.headers
        ).json()
        seen += [i["title"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e.title for e in reversed(entries)]

    found = client.get(
        "/api/v1/items",
        params={"q": "rust", "since": (t0 + timedelta(hours=2)).isoformat()},
        headers=account.headers,
    ).json()
    assert [i["title"] for i in found["items"]] == ["Rust release 5", "Rust release 3"]
    bad = client.get("/api/v1/items", params={"cursor": "nope"}, headers=account.headers)
    assert bad.status_code == 422
