"""Publishing from the dashboard, and deliveries updated live from the event stream.

The real app under uvicorn with Debian's Chromium (the fixtures of test_dashboard). No
worker runs: the test runs the ``deliver`` task body itself, as a worker would, and the
page learns of the outcome only from ``GET /api/v1/events``: nothing polls.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Route, expect

from herald.publishing.tasks import deliver
from tests.conftest import Account
from tests.web.test_dashboard import page, server  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SCREENSHOT = Path("/tmp/herald-dashboard-publishing.png")
NARROW_SCREENSHOT = Path("/tmp/herald-dashboard-publishing-narrow.png")
LIVE = 10_000  # ms: how long a live update may take to show

pytestmark = [
    pytest.mark.integration,  # a real browser against a real server
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


# --- helpers ---------------------------------------------------------------------------


class Api:
    def __init__(self, base: str, account: Account) -> None:
        self.client = httpx.Client(base_url=base + "/api/v1", headers=account.headers)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def channel(self, name: str, platform: str, credentials: dict[str, Any]) -> str:
        body = {"platform": platform, "name": name, "credentials": credentials}
        return str(self.call("POST", "/channels", 201, json=body)["id"])

    def post(self, title: str) -> str:
        return str(self.call("POST", "/posts", 201, json={"title": title, "body": "Hi."})["id"])

    def publications(self, post_id: str) -> dict[str, dict[str, Any]]:
        """The post's deliveries by channel id."""
        rows = self.call("GET", f"/posts/{post_id}/publications")
        return {row["channel_id"]: row for row in rows}


@pytest.fixture
def make_api(server: str) -> Iterator[Callable[[Account], Api]]:  # noqa: F811
    made: list[Api] = []

    def make(account: Account) -> Api:
        made.append(Api(server, account))
        return made[-1]

    yield make
    for api in made:
        api.close()


def watch_errors(tab: Page, allowed: tuple[str, ...] = ()) -> list[str]:
    """Uncaught errors and console errors, except Chromium's note on each 4xx/5xx answer."""
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error"
            and not msg.text.startswith(("Failed to load resource", *allowed))
            else None
        ),
    )
    return errors


class ApiTraffic:
    """The page's calls to the API (the event stream aside), as they start and end."""

    def __init__(self, tab: Page) -> None:
        self.tab = tab
        self.started: list[str] = []
        self.running = 0
        self.last_change = time.monotonic()
        tab.on("request", self._start)
        tab.on("requestfinished", self._end)
        tab.on("requestfailed", self._end)

    @staticmethod
    def _counts(url: str) -> bool:
        return "/api/v1/" in url and "/api/v1/events" not in url

    def _start(self, request: Any) -> None:
        if self._counts(request.url):
            self.started.append(request.url)
            self.running += 1
            self.last_change = time.monotonic()

    def _end(self, request: Any) -> None:
        if self._counts(request.url):
            self.running -= 1
            self.last_change = time.monotonic()

    def wait_quiet(self, quiet: float = 0.5, timeout: float = 10.0) -> None:
        """Until no call has run for ``quiet`` seconds: what the page started has ended.

        (Playwright's "networkidle" fires once per load, so it says nothing about later work.)
        """
        deadline = time.monotonic() + timeout
        while self.running or time.monotonic() - self.last_change < quiet:
            assert time.monotonic() < deadline, f"the page kept calling the API: {self.started}"
            self.tab.wait_for_timeout(50)


def sign_in(tab: Page, base: str, account: Account) -> None:
    tab.goto(base + "/")
    tab.get_by_label("Email").fill(account.email)
    tab.get_by_label("Password").fill("correct horse battery")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.locator("#user-email")).to_have_text(account.email)


def post_row(tab: Page, title: str) -> Locator:
    return tab.locator("#posts-list > li").filter(has_text=title)


def delivery(row: Locator, channel: str) -> Locator:
    return row.locator(".delivery").filter(has_text=channel)


# --- tests -----------------------------------------------------------------------------


def test_publish_from_the_page_and_watch_the_delivery_go_live(
    server: str,  # noqa: F811
    page: Page,  # noqa: F811
    make_account: Any,
    make_api: Callable[[Account], Api],
    tmp_path: Path,
) -> None:
    account: Account = make_account("editor@example.com")
    api = make_api(account)
    site = tmp_path / "site"
    site.mkdir()
    channel_id = api.channel("Company site", "folder", {"path": str(site)})
    post_id = api.post("Launch notes")
    errors = watch_errors(page)
    traffic = ApiTraffic(page)

    sign_in(page, server, account)
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "live")
    expect(live).to_have_text(re.compile(r"\bLive\b"))
    row = post_row(page, "Launch notes")
    expect(row.locator('[data-role="post-state"]')).to_have_text("Draft")

    # Publish: the panel lists the channels as checkboxes; send to the one ticked.
    row.get_by_role("button", name="Publish Launch notes").click()
    choice = row.get_by_role("checkbox", name=re.compile("Company site"))
    expect(choice).to_be_enabled()
    choice.check()
    row.get_by_role("button", name="Send", exact=True).click()
    expect(row.locator("form.publish")).to_have_count(0)
    company = delivery(row, "Company site")
    badge = company.locator('[data-role="delivery-state"]')
    expect(badge).to_have_text("Queued")
    expect(company).to_contain_text("Attempt 0/4")
    expect(company.get_by_role("button", name="Cancel delivery to Company site")).to_be_visible()
    expect(row.locator('[data-role="post-state"]')).to_have_text("Scheduled")

    # Once the page has settled it asks the API nothing by itself: no polling. (The
    # delivery's "queued" event may arrive before or after the publish answer; either way
    # the page re-reads the post once or twice, then stops.)
    traffic.wait_quiet()
    settled = len(traffic.started)
    page.wait_for_timeout(1500)
    assert traffic.started[settled:] == []

    # Deliver as a worker would; the page hears of it over the event stream.
    publication = api.publications(post_id)[channel_id]
    assert publication["state"] == "queued"
    started = time.monotonic()
    assert deliver(publication["id"]) == "published"
    expect(badge).to_have_text("Published", timeout=LIVE)
    expect(row.locator('[data-role="post-state"]')).to_have_text("Published", timeout=LIVE)
    print(f"live update after {time.monotonic() - started:.2f} s")
    later = traffic.started[settled:]
    assert any("/posts/" in url for url in later), "the update came without a re-read?"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload

    expect(company).to_contain_text("Attempt 1/4")
    # The folder's receipt is a file:// address: shown as text, never a link.
    file_url = api.publications(post_id)[channel_id]["external_url"]
    assert file_url.startswith("file://")
    expect(company.locator(".delivery-url")).to_have_text(file_url)
    expect(company.locator("a")).to_have_count(0)
    expect(company.get_by_role("button")).to_have_count(0)  # nothing to cancel or retry
    assert list(site.glob("*.md")), "the post was not written"
    assert errors == []


def test_failed_and_held_deliveries_show_their_errors_and_a_retry(
    server: str,  # noqa: F811
    page: Page,  # noqa: F811
    make_account: Any,
    make_api: Callable[[Account], Api],
    tmp_path: Path,
) -> None:
    account: Account = make_account("editor@example.com")
    api = make_api(account)
    good_dir, gone_dir = tmp_path / "good", tmp_path / "gone"
    good_dir.mkdir()
    gone_dir.mkdir()
    good = api.channel("Good site", "folder", {"path": str(good_dir)})
    gone = api.channel("Old site", "folder", {"path": str(gone_dir)})
    # A webhook to a path the app does not have: answered 404, a permanent failure.
    hook = api.channel(
        "Team hook", "webhook", {"url": f"{server}/no-such-hook", "secret": "s" * 20}
    )
    post_id = api.post("Doomed post")
    errors = watch_errors(page)

    sign_in(page, server, account)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    row = post_row(page, "Doomed post")
    expect(row.locator('[data-role="post-state"]')).to_have_text("Draft")

    # Published elsewhere (the API, another tab): the page did not list these deliveries,
    # yet their events bring the post's state.
    api.call("POST", f"/posts/{post_id}/publish", 202, json={"channel_ids": [good, gone, hook]})
    expect(row.locator('[data-role="post-state"]')).to_have_text("Scheduled", timeout=LIVE)
    row.get_by_role("button", name="Deliveries of Doomed post").click()
    expect(row.locator(".delivery")).to_have_count(3)
    expect(row.locator('[data-role="delivery-state"]')).to_have_text(["Queued"] * 3)

    shutil.rmtree(gone_dir)
    ids = api.publications(post_id)
    assert deliver(ids[good]["id"]) == "published"
    assert deliver(ids[gone]["id"]) == "auth"
    assert deliver(ids[hook]["id"]) == "failed"

    good_row, gone_row, hook_row = (
        delivery(row, name) for name in ("Good site", "Old site", "Team hook")
    )
    state = '[data-role="delivery-state"]'
    expect(good_row.locator(state)).to_have_text("Published", timeout=LIVE)
    # The deleted folder: held until the channel is fixed; it can be cancelled meanwhile.
    expect(gone_row.locator(state)).to_have_text("Retry wait", timeout=LIVE)
    expect(gone_row.locator(".delivery-error")).to_contain_text("is not a directory")
    expect(gone_row).to_contain_text("Held: update the channel")
    expect(gone_row.get_by_role("button", name="Cancel delivery to Old site")).to_be_visible()
    expect(gone_row.get_by_role("button", name=re.compile("^Retry"))).to_have_count(0)
    # The webhook's 404: failed for good, with the receiver's words and a Retry button.
    expect(hook_row.locator(state)).to_have_text("Failed", timeout=LIVE)
    expect(hook_row.locator(".delivery-error")).to_contain_text("webhook answered 404")
    expect(hook_row.get_by_role("button", name="Retry delivery to Team hook")).to_be_visible()
    expect(hook_row.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
    expect(row.locator('[data-role="post-state"]')).to_have_text("Scheduled")
    # The refused folder marked its channel; the channel list shows it without a reload.
    channel_item = page.locator("#channels-list li").filter(has_text="Old site")
    expect(channel_item.locator(".badge")).to_have_text("Needs reconnect", timeout=LIVE)

    # The publish panel offers only active channels; the others show why not.
    row.get_by_role("button", name="Publish Doomed post").click()
    expect(row.get_by_role("checkbox", name=re.compile("Good site"))).to_be_enabled()
    held = row.locator("label.choice").filter(has_text="Old site")
    expect(held.get_by_role("checkbox")).to_be_disabled()
    expect(held.locator(".badge")).to_have_text("Needs reconnect")

    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(NARROW_SCREENSHOT), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    row.get_by_role("button", name="Close").click()
    expect(row.locator("form.publish")).to_have_count(0)

    # Retry the failed one: back in the queue, its last error kept for reference.
    hook_row.get_by_role("button", name="Retry delivery to Team hook").click()
    expect(hook_row.locator(state)).to_have_text("Queued", timeout=LIVE)
    expect(hook_row.locator(".delivery-error")).to_contain_text("Last error:")
    expect(hook_row.get_by_role("button", name="Cancel delivery to Team hook")).to_be_visible()
    assert api.publications(post_id)[hook]["state"] == "queued"

    # Cancel the held one.
    gone_row.get_by_role("button", name="Cancel delivery to Old site").click()
    expect(gone_row.locator(state)).to_have_text("Cancelled", timeout=LIVE)
    expect(gone_row.get_by_role("button")).to_have_count(0)
    assert errors == []


def test_the_stream_is_reopened_after_a_refusal_and_the_page_catches_up(
    server: str,  # noqa: F811
    page: Page,  # noqa: F811
    make_account: Any,
    make_api: Callable[[Account], Api],
    tmp_path: Path,
) -> None:
    """A browser's EventSource gives up for good on a 503: the page reopens it itself,
    and re-reads what it shows, so a change made while it was away still appears."""

    account: Account = make_account("editor@example.com")
    api = make_api(account)
    site = tmp_path / "site"
    site.mkdir()
    channel_id = api.channel("Company site", "folder", {"path": str(site)})
    post_id = api.post("Written offline")
    errors = watch_errors(page, allowed=("EventSource's response has a MIME type",))

    refused: list[str] = []
    problem: dict[str, Any] = {
        "title": "Events unavailable",
        "status": 503,
        "detail": "Redis is away (test).",
    }

    def refuse(route: Route) -> None:
        if blocked:
            refused.append(route.request.resource_type)
            route.fulfill(
                status=503, content_type="application/problem+json", body=json.dumps(problem)
            )
        else:
            route.continue_()

    blocked = True
    page.route(re.compile(r"/api/v1/events(\?|$)"), refuse)
    sign_in(page, server, account)
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "reconnecting")
    expect(live).to_have_attribute("title", str(problem["detail"]), timeout=LIVE)
    assert "eventsource" in refused and "fetch" in refused  # the stream, then the probe

    row = post_row(page, "Written offline")
    row.get_by_role("button", name="Publish Written offline").click()
    row.get_by_role("checkbox", name=re.compile("Company site")).check()
    row.get_by_role("button", name="Send", exact=True).click()
    badge = delivery(row, "Company site").locator('[data-role="delivery-state"]')
    expect(badge).to_have_text("Queued")
    page.wait_for_load_state("networkidle")

    # Published while the page hears nothing.
    assert deliver(api.publications(post_id)[channel_id]["id"]) == "published"
    page.wait_for_timeout(300)
    expect(badge).to_have_text("Queued")

    blocked = False
    started = time.monotonic()
    expect(live).to_have_attribute("data-state", "live", timeout=20_000)
    expect(badge).to_have_text("Published", timeout=LIVE)
    expect(row.locator('[data-role="post-state"]')).to_have_text("Published")
    print(f"back and caught up after {time.monotonic() - started:.2f} s")
    # Backing off: not a retry storm while refused.
    assert len(refused) < 12, refused
    assert errors == []
