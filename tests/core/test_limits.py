"""What a request may carry: a body limit (413), bounded free-form documents (422), and
no NUL character anywhere (422, on both backends: PostgreSQL answered 500)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import select
import socket
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from herald.app import create_app
from herald.core.limits import BodyLimit
from herald.core.settings import get_settings
from tests.conftest import Account
from tests.servers import serve

MiB = 1024 * 1024


@pytest.fixture
def server(db_backend: str) -> Iterator[str]:
    """The app under a real uvicorn, as `herald api` serves it."""

    with serve(create_app()) as url:
        yield url


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return status, headers, body


@pytest.mark.parametrize(
    ("path", "content_type", "says"),
    [
        ("/api/v1/auth/login", "application/json", "1,048,576 bytes (HERALD_MAX_REQUEST_BYTES)"),
        ("/api/v1/media", "multipart/form-data; boundary=x", "(HERALD_MEDIA_MAX_BYTES)"),
    ],
)
def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_sent(
    server: str, path: str, content_type: str, says: str
) -> None:
    # The 50 MB sign-in body of the audit: only the headers go out; the answer must come
    # without Herald waiting for (or reading) a byte of the body.
    with _connect(server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: herald\r\nContent-Type: {content_type}\r\n"
            "Content-Length: 52428800\r\n\r\n".encode()
        )
        status, headers, body = _read_response(sock)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 413
    assert problem["type"].endswith("/payload-too-large")
    assert says in problem["detail"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(server: str) -> None:
    chunk = b" " * 65536
    sent = 0
    with _connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: herald\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # Keep sending until Herald answers (or far past the limit, which is a failure).
        while sent < 40 * MiB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            sock.sendall(b"0\r\n\r\n")
        status, headers, body = _read_response(sock)
    assert status == 413, body
    assert headers["content-type"] == "application/problem+json"
    assert sent < 40 * MiB


def test_the_middleware_stops_reading_right_after_the_limit() -> None:
    """Nothing past the limit is read: the app sees the error on the read that passes it."""
    pulls = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulls
        pulls += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def read_everything(scope: Any, receive: Any, send: Any) -> None:
        while True:
            await receive()

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    middleware = BodyLimit(read_everything, limit_for=lambda scope: (10 * 1024, "TEST_LIMIT"))
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    assert pulls == 11  # 11 KiB: the first read past 10 KiB
    assert sent[0]["status"] == 413
    assert b"10,240 bytes (TEST_LIMIT)" in sent[1]["body"]


def _noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_media_uploads_keep_their_own_limit(client: TestClient, account: Account) -> None:
    settings = get_settings()
    saved = settings.media_max_bytes
    settings.media_max_bytes = 3 * MiB
    try:
        image = _noise_png(800)  # about 1.9 MB: past the JSON limit, within the media one
        assert MiB < len(image) < 3 * MiB
        ok = client.post(
            "/api/v1/media", files={"file": ("a.png", image, "image/png")}, headers=account.headers
        )
        assert ok.status_code == 201, ok.text
        big = _noise_png(1100)  # about 3.6 MB
        refused = client.post(
            "/api/v1/media", files={"file": ("b.png", big, "image/png")}, headers=account.headers
        )
    finally:
        settings.media_max_bytes = saved
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert "HERALD_MEDIA_MAX_BYTES" in refused.json()["detail"]


def _webhook(credentials: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"platform": "webhook", "name": "hook", "credentials": credentials, **extra}


URL = "https://example.com/hook"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        # The audit's 10 MB webhook secret was stored.
        (_webhook({"url": URL, "secret": "s" * 10_000_000}), 413, "HERALD_MAX_REQUEST_BYTES"),
        (_webhook({"url": URL, "secret": "s" * 9000}), 422, "'secret' is longer than 8,192"),
        (_webhook({"url": URL, "secret": "s" * 40, **{f"k{i}": 1 for i in range(60)}}), 422,
         "more than 50 keys"),
        (_webhook({"url": URL, "secret": "s" * 40}, settings={"a": [[[[[[1]]]]]]}), 422,
         "nested deeper than 5 levels"),
        (_webhook({"url": URL + "/" + "x" * 9000, "secret": "s" * 40}), 422, "'url' is longer"),
        ({**_webhook({"url": URL, "secret": "s" * 40}), "platform": "p" * 1000}, 422,
         "at most 50 characters"),
    ],
    ids=["10MB-secret", "9000-char-secret", "60-keys", "deep-settings", "long-url", "platform"],
)  # fmt: skip
def test_credentials_and_settings_are_bounded(
    client: TestClient, account: Account, body: dict[str, Any], status: int, says: str
) -> None:
    response = client.post("/api/v1/channels", json=body, headers=account.headers)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    assert client.get("/api/v1/channels", headers=account.headers).json() == []


def test_a_body_of_unknown_keys_is_bounded_by_the_limit(client: TestClient) -> None:
    # 800k unknown keys (13 MB) took 3.7 s to parse before anything looked at them.
    body = json.dumps({f"k{i}": 0 for i in range(800_000)})
    response = client.post(
        "/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


# --- NUL characters ----------------------------------------------------------------------


def _nul_cases() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/api/v1/auth/login", {"json": {"email": "a\x00@x.io", "password": "pw"}}),
        ("GET", "/api/v1/posts?q=%00", {}),
        ("GET", "/api/v1/posts?tag=news%00", {}),
        ("GET", "/api/v1/jobs/abc%00def", {}),
        ("GET", "/api/v1/tasks/status/abc%00def", {}),
        ("POST", "/api/v1/posts", {"json": {"title": "Hello\x00"}}),
        ("POST", "/api/v1/posts", {"json": {"title": "Hi", "tags": ["ok", "n\x00"]}}),
        ("POST", "/api/v1/channels", {"json": _webhook({"url": URL, "secret": "s" * 20 + "\x00"})}),
        ("POST", "/api/v1/channels", {"json": _webhook({"url": URL, "x\x00": "s" * 20})}),
        ("POST", "/api/v1/auth/tokens", {"json": {"name": "ci\x00"}}),
        ("POST", "/api/v1/media", {"files": {"file": ("a.png", b"\x89PNG", "image/png")},
                                   "data": {"alt_text": "red\x00"}}),
        ("GET", "/api/v1/calendar?tz=UTC%00", {}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "kwargs"), _nul_cases(), ids=[f"{m} {u}" for m, u, _ in _nul_cases()]
)
def test_nul_anywhere_is_a_422_on_both_backends(
    client: TestClient, account: Account, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    response = client.request(method, url, headers=account.headers, **kwargs)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "NUL character" in problem["detail"]
    assert problem["errors"][0]["type"] == "string_nul"


def test_nul_is_located_in_the_body(client: TestClient, account: Account) -> None:
    body = _webhook({"url": URL, "secret": "s" * 20 + "\x00"})
    problem = client.post("/api/v1/channels", json=body, headers=account.headers).json()
    assert problem["errors"][0]["loc"] == ["body", "credentials", "secret"]
    assert problem["detail"].startswith("credentials.secret: contains a NUL character")


def test_an_escaped_backslash_before_u0000_is_just_text(
    client: TestClient, account: Account
) -> None:
    # JSON "C:\\u0000" is the six characters \u0000 after "C:", not a NUL.
    title = "C:\\u0000 and \\\\u0000"
    response = client.post("/api/v1/posts", json={"title": title}, headers=account.headers)
    assert response.status_code == 201, response.text
    assert response.json()["title"] == title
