"""The dashboard's Webhooks panel in a real browser (the fixtures of test_dashboard: Debian's
Chromium, the real app under uvicorn on loopback, SQLite, the suite's Redis).

The endpoint is the suite's local EventReceiver. No worker runs: the test runs the due
deliveries' attempts itself (``tests.webhooks.run_due``), as workers would, and refreshes
the delivery log; an endpoint Herald disables reaches the page by its live event.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import expect

from herald.webhooks.events import NAMES
from herald.webhooks.models import DeliveryState
from tests.agents.rows import reviewer_in
from tests.conftest import Account
from tests.fakes.event_receiver import EventReceiver
from tests.web.test_dashboard import page, server  # noqa: F401 - fixtures
from tests.web.test_dashboard_publishing import LIVE, sign_in, watch_errors
from tests.webhooks import run_due

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SCREENSHOT = Path("/tmp/herald-dashboard-webhooks.png")

pytestmark = [
    pytest.mark.integration,  # a real browser against a real server
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def event_receiver() -> Iterator[EventReceiver]:
    with EventReceiver() as receiver:
        yield receiver


def webhook_row(tab: Page, url: str) -> Locator:
    return tab.locator("#webhooks-list > li").filter(has_text=url)


def log_rows(row: Locator) -> Locator:
    return row.locator('[data-role="deliveries"] tbody tr')


def add_webhook(base: str, account: Account, receiver: EventReceiver) -> str:
    """An endpoint for every event, made through the API; its id."""
    with httpx.Client(base_url=base + "/api/v1", headers=account.headers) as api:
        body = {"url": receiver.url, "events": ["*"], "secret": receiver.secret}
        answer = api.post("/webhooks", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


def api_webhooks(base: str, account: Account) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base + "/api/v1", headers=account.headers) as api:
        answer = api.get("/webhooks")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found


def test_add_test_redeliver_disable_rotate_and_delete_an_endpoint(
    server: str,  # noqa: F811 - fixture
    page: Page,  # noqa: F811 - fixture
    make_account: Any,
    event_receiver: EventReceiver,
) -> None:
    account: Account = make_account("ops@example.com", workspace="Northwind")
    errors = watch_errors(page)
    url = event_receiver.url
    sign_in(page, server, account)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    panel = page.locator("#webhooks-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#webhooks-status")).to_have_text(re.compile("No endpoints yet"))

    # The form offers every event type Herald sends, and "all of them".
    page.locator("summary", has_text="Add endpoint").click()
    form = page.locator("#webhook-form")
    offered = form.locator('input[name="events"]').evaluate_all("els => els.map(e => e.value)")
    assert sorted(offered) == sorted({"*", *NAMES})
    every = form.get_by_label("All events")
    every.check()
    expect(form.get_by_label("delivery.failed")).to_be_disabled()
    every.uncheck()
    expect(form.get_by_label("delivery.failed")).to_be_enabled()

    # A bad URL: the API's 422 is shown on the URL field, which gets the focus.
    address = form.get_by_label("URL")
    address.fill("hooks.example.com/h")
    form.get_by_label("webhook.test").check()
    form.get_by_role("button", name="Add endpoint").click()
    expect(form.locator("#webhook-url-error")).to_contain_text("http:// or https://")
    expect(address).to_have_attribute("aria-invalid", "true")
    expect(address).to_be_focused()
    expect(page.locator("#webhooks-list > li")).to_have_count(0)

    address.fill(url)
    form.get_by_label("Description").fill("Ops receiver")
    form.get_by_label("delivery.failed").check()
    form.get_by_role("button", name="Add endpoint").click()
    row = webhook_row(page, url)
    expect(row).to_have_count(1)
    expect(row.locator('[data-role="webhook-state"]')).to_have_text("Active")
    expect(row.locator('[data-role="webhook-events"] .tag')).to_have_text(
        ["delivery.failed", "webhook.test"]
    )
    expect(row).to_contain_text("Ops receiver")

    # The secret, once: shown after the add with a hint to copy it, then gone for good.
    box = page.locator("#webhook-secret")
    expect(box).to_be_visible()
    expect(box).to_contain_text("never shows it again")
    secret = page.locator("#webhook-secret-value").inner_text()
    assert secret.startswith("whsec_")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    box.get_by_role("button", name="Copy").click()
    expect(box.locator('[data-role="copy-note"]')).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_role("button", name="I have stored it").click()
    expect(box).to_be_hidden()
    assert secret not in page.content()
    page.reload()
    expect(webhook_row(page, url)).to_have_count(1)
    assert secret not in page.content()
    event_receiver.secret = secret  # the receiver checks signatures with the shown secret

    # Send a test: it shows in the delivery log as pending until a worker sends it.
    row = webhook_row(page, url)
    with page.expect_response(lambda r: r.url.endswith("/test") and r.status == 202):
        row.get_by_role("button", name=f"Send a test event to {url}").click()
    expect(page.locator("#webhooks-status")).to_contain_text("Test event sent")
    entries = log_rows(row)
    expect(entries).to_have_count(1)
    expect(entries.locator('[data-role="event-type"]')).to_have_text("webhook.test")
    expect(entries.locator('[data-role="delivery-state"]')).to_have_text("Pending")
    assert run_due() == [DeliveryState.DELIVERED]
    row.get_by_role("button", name=f"Refresh the delivery log of {url}").click()
    expect(entries.locator('[data-role="delivery-state"]')).to_have_text("Delivered")
    expect(entries.locator('[data-role="attempts"]')).to_have_text("1")
    expect(entries.locator('[data-role="last-status"]')).to_have_text("200")
    assert [e["type"] for e in event_receiver.events.values()] == ["webhook.test"]
    assert event_receiver.bad_signatures == 0

    # Redeliver: the same event again, which the receiver counts as a duplicate.
    with page.expect_response(lambda r: r.url.endswith("/redeliver") and r.status == 202):
        entries.get_by_role("button", name=re.compile("^Redeliver webhook.test")).click()
    expect(entries.locator('[data-role="delivery-state"]')).to_have_text("Pending")
    assert run_due() == [DeliveryState.DELIVERED]
    row.get_by_role("button", name=f"Refresh the delivery log of {url}").click()
    expect(entries.locator('[data-role="attempts"]')).to_have_text("2")
    assert event_receiver.duplicates == 1

    # Disable: the reason shows, and the API's refusal to redeliver is in the alert area.
    row.get_by_role("button", name=f"Disable {url}").click()
    expect(row.locator('[data-role="webhook-state"]')).to_have_text("Disabled")
    expect(row.locator('[data-role="disabled-reason"]')).to_have_text(
        "Disabled: disabled by a person"
    )
    entries.get_by_role("button", name=re.compile("^Redeliver webhook.test")).click()
    expect(page.locator("#webhooks-alert")).to_contain_text("enable it first")
    row.get_by_role("button", name=f"Enable {url}").click()
    expect(row.locator('[data-role="webhook-state"]')).to_have_text("Active")
    expect(row.locator('[data-role="disabled-reason"]')).to_have_count(0)
    expect(page.locator("#webhooks-alert")).to_be_empty()

    # Rotate the secret: the new one is shown once, like the first.
    row.get_by_role("button", name=f"Rotate the secret of {url}").click()
    expect(box).to_be_visible()
    expect(box).to_contain_text("old one still signs for 24 hours")
    rotated = page.locator("#webhook-secret-value").inner_text()
    assert rotated.startswith("whsec_") and rotated != secret
    page.get_by_role("button", name="I have stored it").click()
    assert rotated not in page.content()

    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # Delete, after asking once more.
    row.get_by_role("button", name=f"Delete webhook {url}").click()
    row.get_by_role("button", name=f"Confirm: delete webhook {url}").click()
    expect(page.locator("#webhooks-list > li")).to_have_count(0)
    expect(page.locator("#webhooks-status")).to_contain_text("Deleted the endpoint")
    assert api_webhooks(server, account) == []
    assert errors == []


def test_an_endpoint_herald_disables_shows_why_at_once(
    server: str,  # noqa: F811 - fixture
    page: Page,  # noqa: F811 - fixture
    make_account: Any,
    event_receiver: EventReceiver,
) -> None:
    account: Account = make_account("ops@example.com", workspace="Northwind")
    errors = watch_errors(page)
    webhook_id = add_webhook(server, account, event_receiver)
    sign_in(page, server, account)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    row = webhook_row(page, event_receiver.url)
    expect(row.locator('[data-role="webhook-state"]')).to_have_text("Active")
    expect(row.locator('[data-role="webhook-events"] .tag')).to_have_text(["All events"])

    # The receiver answers 410 Gone: Herald disables the endpoint, and its live event
    # brings the reason into the page (no reload, no refresh).
    event_receiver.answer_status = 410
    with httpx.Client(base_url=server + "/api/v1", headers=account.headers) as api:
        assert api.post(f"/webhooks/{webhook_id}/test").status_code == 202
    assert run_due() == [DeliveryState.FAILED]
    expect(row.locator('[data-role="disabled-reason"]')).to_have_text(
        "Disabled: the endpoint answered 410 Gone", timeout=LIVE
    )
    expect(row.locator('[data-role="webhook-state"]')).to_have_text("Disabled")
    assert errors == []


def test_a_reviewer_gets_no_webhooks_panel_and_the_page_does_not_ask(
    server: str,  # noqa: F811 - fixture
    page: Page,  # noqa: F811 - fixture
    make_account: Any,
    event_receiver: EventReceiver,
) -> None:
    account: Account = make_account("ops@example.com", workspace="Northwind")
    add_webhook(server, account, event_receiver)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/webhooks" in r.url else None)
    sign_in(page, server, reviewer_in(account))
    expect(page.locator("#user-role")).to_have_text("Reviewer")
    # The agents' panel loads alongside the webhooks' one (after the role is known).
    expect(page.locator("#agents-status")).to_have_text(re.compile("No agents yet"))
    expect(page.locator("#webhooks-panel")).to_be_hidden()
    assert asked == []
    assert event_receiver.url not in page.content()
