"""The API docs (/docs, /redoc) and every other page Herald serves work offline.

Debian's Chromium, driven by Playwright, against the real app under uvicorn; the browser
may reach only loopback (the ``page`` fixture refuses and reports any other host).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from playwright.sync_api import expect

from tests.web.test_dashboard import page, server  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOT = Path("/tmp/herald-docs.png")

pytestmark = [
    pytest.mark.integration,  # a real browser against a real server
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


def watch_errors(tab: Page) -> list[str]:
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


# Every page Herald serves to a browser (the dashboard, the two API docs, Swagger UI's
# OAuth landing page); the JSON documents and /metrics load nothing.
PAGES = ("/", "/docs", "/docs/oauth2-redirect", "/redoc")


def test_docs_assets_are_served_by_herald(server: str) -> None:  # noqa: F811
    for path, content_type in (
        ("/docs/assets/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/assets/swagger-ui.css", "text/css"),
        ("/docs/assets/redoc.standalone.js", "text/javascript"),
        ("/docs/assets/favicon.png", "image/png"),
    ):
        response = httpx.get(server + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(content_type), path
    for page_path in ("/docs", "/redoc"):
        html = httpx.get(server + page_path).text
        assert "/docs/assets/" in html
        assert "https://" not in html, page_path


def test_swagger_ui_renders_every_operation_offline(server: str, page: Page) -> None:  # noqa: F811

    operations = sum(
        # The schema is built on the first request: seconds on a loaded machine.
        len(item)
        for item in httpx.get(server + "/openapi.json", timeout=60).json()["paths"].values()
    )
    errors = watch_errors(page)
    page.goto(server + "/docs")
    expect(page.locator(".information-container .title")).to_contain_text("Herald")
    expect(page.locator(".opblock")).to_have_count(operations)
    # An operation opens, with its problem+json errors documented.
    page.locator("#operations-posts-create_post_api_v1_posts_post .opblock-summary").click()
    expect(page.locator(".response-col_status", has_text="422")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOT))
    assert errors == []


def test_redoc_renders_offline(server: str, page: Page) -> None:  # noqa: F811

    errors = watch_errors(page)
    page.goto(server + "/redoc")
    expect(page.locator("h1")).to_contain_text("Herald")
    expect(page.locator("[data-section-id='tag/posts']")).to_have_count(1)
    # ReDoc's sidebar shows Redocly's logo from Redocly's host: the page's CSP makes the
    # browser refuse it (no request goes out; the image hides itself). Nothing else fails.
    assert len(errors) <= 1, errors
    for error in errors:
        assert "https://cdn.redoc.ly/redoc/logo-mini.svg" in error, error
        assert "violates the following Content Security Policy" in error, error


def test_no_page_loads_anything_from_another_host(server: str, page: Page) -> None:  # noqa: F811
    for path in PAGES:
        response = page.goto(server + path, wait_until="networkidle")
        assert response is not None
        assert response.status == 200, path
    # The page fixture fails the test if any of them asked another host for anything.
