"""Uploading images, attaching them to posts, and what an adapter then sees."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.posts.models import Post
from herald.publishing.delivery import post_content
from tests.conftest import Account, MakeAccount


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=kind)
    return buffer.getvalue()


def upload(
    client: TestClient,
    account: Account,
    data: bytes,
    *,
    filename: str = "photo.png",
    content_type: str = "image/png",
    alt_text: str | None = "A red rectangle",
) -> tuple[int, dict[str, Any]]:
    """The status and the JSON body of an upload."""
    form = {"alt_text": alt_text} if alt_text is not None else {}
    response = client.post(
        "/api/v1/media",
        files={"file": (filename, data, content_type)},
        data=form,
        headers=account.headers,
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


@pytest.mark.parametrize(
    ("kind", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_upload_identifies_the_image_by_its_content(
    client: TestClient, account: Account, kind: str, mime: str
) -> None:
    data = image_bytes(kind)
    # The client's name and type are wrong on purpose: Herald reads the bytes.
    status, body = upload(client, account, data, filename="x.txt", content_type="text/plain")
    assert status == 201, body
    assert body["content_type"] == mime
    assert (body["width"], body["height"]) == (8, 6)
    assert body["size"] == len(data)
    assert body["alt_text"] == "A red rectangle"
    assert str(body["filename"]).startswith("x.")
    content = client.get(str(body["url"]), headers=account.headers)
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-type"] == mime


def test_not_an_image_is_415_and_nothing_is_kept(client: TestClient, account: Account) -> None:
    status, body = upload(client, account, b"#!/bin/sh\necho hi\n", filename="a.png")
    assert status == 415
    assert body["type"].endswith("unsupported-media-type")
    assert "image/png" in body["detail"]
    assert client.get("/api/v1/media", headers=account.headers).json() == []


def test_truncated_image_is_refused(client: TestClient, account: Account) -> None:
    data = image_bytes("PNG", (64, 64))
    status, body = upload(client, account, data[: len(data) // 2])
    assert status in (415, 422), body
    assert client.get("/api/v1/media", headers=account.headers).json() == []


def test_too_large_is_413(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def files() -> int:
        return sum(1 for p in get_settings().media_dir.rglob("*") if p.is_file())

    before = files()
    monkeypatch.setattr(get_settings(), "media_max_bytes", 1000)
    status, body = upload(client, account, image_bytes("PNG", (400, 400)) + b"\0" * 2000)
    assert status == 413
    assert "HERALD_MEDIA_MAX_BYTES" in body["detail"]
    assert files() == before


def test_alt_text_limit_and_update(client: TestClient, account: Account) -> None:
    status, body = upload(client, account, image_bytes(), alt_text="x" * 1501)
    assert status == 422
    status, body = upload(client, account, image_bytes(), alt_text=None)
    assert status == 201
    assert body["alt_text"] == ""
    url = f"/api/v1/media/{body['id']}"
    patched = client.patch(url, json={"alt_text": "  Now described  "}, headers=account.headers)
    assert patched.status_code == 200
    assert patched.json()["alt_text"] == "Now described"


def test_post_carries_images_in_order_and_in_use_cannot_be_deleted(
    client: TestClient, account: Account
) -> None:
    first = upload(client, account, image_bytes("PNG"))[1]
    second = upload(client, account, image_bytes("JPEG"))[1]
    post = client.post(
        "/api/v1/posts",
        json={"title": "With images", "media_ids": [second["id"], first["id"]]},
        headers=account.headers,
    ).json()
    assert post["media_ids"] == [second["id"], first["id"]]

    refused = client.delete(f"/api/v1/media/{first['id']}", headers=account.headers)
    assert refused.status_code == 409
    assert "PATCH" in refused.json()["detail"]

    patched = client.patch(
        f"/api/v1/posts/{post['id']}", json={"media_ids": [second["id"]]}, headers=account.headers
    )
    assert patched.json()["media_ids"] == [second["id"]]
    path = next(get_settings().media_dir.rglob(f"{first['id']}.*"))
    assert client.delete(f"/api/v1/media/{first['id']}", headers=account.headers).status_code == 204
    assert not Path(path).exists()

    unknown = client.patch(
        f"/api/v1/posts/{post['id']}",
        json={"media_ids": [str(uuid.uuid4())]},
        headers=account.headers,
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"].startswith("No such image")


def test_another_workspace_cannot_see_or_use_an_image(
    client: TestClient,
    make_account: MakeAccount,
) -> None:
    owner = make_account("a@example.com", workspace="a")
    other = make_account("b@example.com", workspace="b")
    media = upload(client, owner, image_bytes())[1]
    assert client.get(f"/api/v1/media/{media['id']}", headers=other.headers).status_code == 404
    assert client.get(str(media["url"]), headers=other.headers).status_code == 404
    stolen = client.post(
        "/api/v1/posts", json={"title": "x", "media_ids": [media["id"]]}, headers=other.headers
    )
    assert stolen.status_code == 422


def test_adapters_see_the_images_with_alt_text(client: TestClient, account: Account) -> None:
    media = upload(client, account, image_bytes())[1]
    post = client.post(
        "/api/v1/posts", json={"title": "x", "media_ids": [media["id"]]}, headers=account.headers
    ).json()
    with session_scope() as session:
        content = post_content(session, session.get_one(Post, uuid.UUID(post["id"])))
    (item,) = content.media
    assert item.alt_text == "A red rectangle"
    assert item.content_type == "image/png"
    assert item.read() == image_bytes()
