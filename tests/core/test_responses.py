"""model_response sends the bytes FastAPI would have sent for the same model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, Response
from fastapi.testclient import TestClient

from herald.core.pagination import Page
from herald.core.responses import model_response
from herald.publishing.schemas import PublicationRead


def test_the_json_is_what_fastapi_would_send() -> None:
    when = datetime(2026, 12, 6, 23, 1, 2, 345678, tzinfo=UTC)
    publication = PublicationRead(
        id=uuid.uuid4(), post_id=uuid.uuid4(), channel_id=uuid.uuid4(), task_id="t-1",
        state="queued", attempt=0, max_attempts=5, due_at=when, external_id=None,
        external_url="https://example.com/é?q=\u2028", last_error='"quoted" \\ text',
        error_kind=None, published_at=None, created_at=when, updated_at=when, attempts=[],
    )  # fmt: skip
    page = Page[PublicationRead](items=[publication], next_cursor=None)
    app = FastAPI()

    @app.get("/fastapi")
    def by_fastapi() -> Page[PublicationRead]:
        return page

    @app.get("/ours", response_model=Page[PublicationRead], status_code=202)
    def by_us() -> Response:
        return model_response(page, status_code=202)

    with TestClient(app) as client:
        theirs, ours = client.get("/fastapi"), client.get("/ours")
    assert ours.status_code == 202
    assert ours.content == theirs.content
    assert ours.headers["content-type"] == theirs.headers["content-type"]
