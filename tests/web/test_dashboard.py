"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against the
real app served by uvicorn on a loopback port (SQLite, the suite's Redis as broker).

No worker runs here: the test runs the channel check's task body itself, the way a
worker would, and the page's own polling picks up the outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Route, expect, sync_playwright
from sqlalchemy import select

from herald.app import create_app
from herald.channels.tasks import verify_channel
from herald.core.db import session_scope
from herald.jobs.models import Job
from tests.conftest import Account
from tests.servers import serve
from tests.services import service_missing

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# Quiet, offline Chromium: nothing but the page under test touches the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SCREENSHOT = Path("/tmp/herald-dashboard.png")
NARROW_SCREENSHOT = Path("/tmp/herald-dashboard-narrow.png")

pytestmark = [
    pytest.mark.integration,  # a real browser against a real server
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def server(db_backend: str, redis_broker: str) -> Iterator[str]:
    """The real app under uvicorn in a thread; yields its base URL."""

    with serve(create_app()) as url:
        yield url


@pytest.fixture
def page(server: str) -> Iterator[Page]:
    """A Chromium tab that may reach only loopback: a request for any other host is
    refused, and fails the test (Herald's pages must work on a machine with no internet)."""
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} does not exist")

    other_hosts: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            other_hosts.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", loopback_only)
            # CI runs these beside the rest of the suite on 2 cores: ReDoc laying out every
            # operation took more than Playwright's default 5 s there once. A slow page
            # still fails, after a wait no healthy run comes near.
            context.set_default_timeout(60_000)
            expect.set_options(timeout=30_000)
            yield context.new_page()
        finally:
            browser.close()
    assert other_hosts == [], "the page asked another host for something"


def test_static_assets_are_served_with_their_content_types(server: str) -> None:
    for path, content_type in (
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
    ):
        response = httpx.get(server + path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        assert response.headers["content-type"].startswith(content_type), path
        assert response.headers["cache-control"] == "no-cache", path


def test_sign_in_write_a_post_add_and_test_a_channel(
    server: str, page: Page, make_account: Any, tmp_path: Path
) -> None:
    account: Account = make_account("editor@example.com", workspace="Northwind")
    site = tmp_path / "site-content"
    site.mkdir()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    # Chromium logs every 4xx/5xx answer ("Failed to load resource"); those are expected
    # here (the wrong password, health's 503 while no worker runs). Anything else is a bug.
    page.on(
        "console",
        lambda msg: (
            page_errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )

    page.goto(server + "/")

    # A wrong password shows the API's problem detail and keeps the sign-in form.
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-form [role=alert]")).to_have_text("Wrong email or password.")
    expect(page.locator("#app-view")).to_be_hidden()

    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#user-email")).to_have_text(account.email)
    expect(page.locator("#workspace-name")).to_have_text("Northwind")
    # Live updates: the page holds the workspace's event stream open.
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    health = page.locator("#health-list li")
    expect(health).to_have_count(4)
    expect(health.filter(has_text="Database")).to_have_class(re.compile(r"\bup\b"))
    expect(health.filter(has_text="Broker")).to_have_class(re.compile(r"\bup\b"))
    expect(health.filter(has_text="Workers")).to_have_class(re.compile(r"\bdown\b"))

    # Create a post; it appears in the list with its tags.
    page.locator("summary", has_text="New post").click()
    page.get_by_label("Title").fill("Hello from the browser")
    page.locator("#post-body").fill("# Hi\n\nWritten in **Markdown**.")
    page.get_by_label("Tags").fill("news, launch")
    page.get_by_role("button", name="Create post").click()
    post = page.locator("#posts-list li").filter(has_text="Hello from the browser")
    expect(post).to_have_count(1)
    expect(post.locator(".tag")).to_have_text(["news", "launch"])
    expect(post.locator(".badge")).to_have_text("Draft")

    # Add a folder channel: listed as active, and its path is nowhere in the page.
    page.locator("summary", has_text="Add channel").click()
    page.get_by_label("Platform").select_option("folder")
    page.get_by_label("Name").fill("Company site")
    page.get_by_label("Path").fill(str(site))
    page.get_by_role("button", name="Add channel").click()
    channel = page.locator("#channels-list li").filter(has_text="Company site")
    expect(channel).to_have_count(1)
    expect(channel.locator(".badge")).to_have_text("Active")
    page.locator("summary", has_text="Add channel").click()  # folded away after the add
    expect(page.get_by_label("Path")).to_have_value("")
    assert str(site) not in page.content()

    # Test it: the API records a job and sends it to the broker; run it as a worker would.
    with page.expect_response(lambda r: r.url.endswith("/test") and r.status == 202):
        page.get_by_role("button", name="Test Company site").click()
    with session_scope() as s:
        job_id = s.scalars(select(Job.id)).one()
    assert verify_channel(job_id)["ok"] is True
    expect(channel.locator(".check")).to_have_text(re.compile(r"^SUCCESS"), timeout=10_000)
    expect(channel.locator(".badge")).to_have_text("Active")
    assert str(site) not in page.content()

    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # A phone-sized screen: one column, nothing wider than the viewport.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(NARROW_SCREENSHOT), full_page=True)
    assert page_errors == []

    # Signing out forgets the token and the data.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    expect(page.locator("#live")).to_be_hidden()
    assert "Hello from the browser" not in page.content()
    assert page_errors == []
