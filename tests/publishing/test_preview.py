"""GET /posts/{id}/preview: exactly what a channel would be sent, without sending it."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from herald.adapters.text import find_urls, graphemes
from tests.adapters.contract import THREAD_BODY, THREAD_LINKS
from tests.conftest import Account
from tests.publishing.test_platforms import add_channel as channel


def post(client: TestClient, account: Account, **fields: object) -> str:
    response = client.post(
        "/api/v1/posts", json={"title": "Notes", **fields}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def preview(client: TestClient, account: Account, post_id: str, channel_id: str) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/posts/{post_id}/preview",
        params={"channel_id": channel_id},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


def test_bluesky_preview_shows_the_thread_in_graphemes(
    client: TestClient, account: Account
) -> None:
    bluesky = channel(
        client,
        account,
        "bluesky",
        {
            "identifier": "herald.example.com",
            "app_password": "abcd-efgh-ijkl-mnop",
            "service": "https://pds.invalid",
        },
    )
    shown = preview(client, account, post(client, account, body=THREAD_BODY), bluesky)
    assert shown["thread"] is True
    assert shown["unit"] == "graphemes"
    assert shown["limit"] == 300
    parts = shown["parts"]
    assert len(parts) > 1
    for part in parts:
        assert part["length"] == graphemes(part["text"]) <= 300
    for link in THREAD_LINKS:
        assert any(link in part["text"] for part in parts)
    assert [p["index"] for p in parts] == list(range(1, len(parts) + 1))


def test_preview_names_images_that_will_not_go_out(client: TestClient, account: Account) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    media = client.post(
        "/api/v1/media",
        files={"file": ("a.png", buffer.getvalue(), "image/png")},
        data={"alt_text": "dots"},
        headers=account.headers,
    ).json()
    devto = channel(client, account, "devto", {"api_key": "k" * 24})
    shown = preview(
        client, account, post(client, account, body="Hi", media_ids=[media["id"]]), devto
    )
    assert shown["thread"] is False
    assert shown["media"] == []
    (warning,) = shown["warnings"]
    assert "a.png" in warning and "will not be sent" in warning


def test_preview_of_another_workspaces_channel_is_404(
    client: TestClient, make_account: Any
) -> None:
    owner = make_account("a@example.com", workspace="a")
    other = make_account("b@example.com", workspace="b")
    hook = channel(client, owner, "folder", {"path": "/tmp"})
    mine = post(client, other, body="x")
    response = client.get(
        f"/api/v1/posts/{mine}/preview", params={"channel_id": hook}, headers=other.headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_url_helpers_agree_with_the_preview() -> None:
    assert [THREAD_BODY[a:b] for a, b in find_urls(THREAD_BODY)][:2] == list(THREAD_LINKS)
