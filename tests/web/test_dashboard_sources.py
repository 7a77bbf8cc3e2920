"""The dashboard's Sources panel in a real browser (the fixtures of test_dashboard: Debian's
Chromium, the real app under uvicorn on loopback, SQLite, the suite's Redis).

A feed is served by the local FeedServer (the suite's ``feed_server`` fixture). No worker
runs: the test runs the check's and the connection test's task bodies itself, as a worker
would; the page follows its own jobs by polling them (woken by their ``job.state``
events), and learns of a check it did not start from the event stream alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from herald.core.db import session_scope
from herald.jobs.models import Job, JobState
from herald.sources.tasks import check_source_job, probe_source_job
from tests.conftest import Account
from tests.fakes.feed_server import FeedServer
from tests.web.test_dashboard import page, server  # noqa: F401 - fixtures
from tests.web.test_dashboard_publishing import LIVE, sign_in, watch_errors

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SCREENSHOT = Path("/tmp/herald-dashboard-sources.png")

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)

OLDEST = ("oldest", "Oldest story", "Mon, 30 Nov 2026 08:00:00 +0000", "Ada")
NEWEST = ("newest", "Newest story", "Sat, 05 Dec 2026 08:00:00 +0000", "Grace")
UNDATED = ("undated", "Undated note", None, None)
# Markup in a summary: the page shows its text, never its elements.
SUMMARY = "<p>Read <b>this</b> first.<script>document.title = 'owned'</script></p>"


def rss(*entries: tuple[str, str, str | None, str | None]) -> str:
    parts = "".join(
        f"<item><title>{escape(title)}</title><link>https://news.example.org/{key}</link>"
        f'<guid isPermaLink="false">{key}</guid>'
        + (f"<pubDate>{date}</pubDate>" if date else "")
        + (f"<author>{author}@example.org ({author})</author>" if author else "")
        + f"<description>{escape(SUMMARY)}</description></item>"
        for key, title, date, author in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Example News</title><link>https://news.example.org/</link>"
        f"<description>News</description>{parts}</channel></rss>"
    )


def pending_job(kind: str) -> str:
    """The id of the one job of this kind the API recorded and no worker has run yet."""
    with session_scope() as s:
        return s.scalars(
            select(Job.id).where(Job.kind == kind, Job.state == JobState.PENDING)
        ).one()


def source_row(tab: Page, name: str) -> Locator:
    return tab.locator("#sources-list > li").filter(has_text=name)


def test_add_check_test_and_follow_a_feed_source(
    server: str,  # noqa: F811 - fixture
    page: Page,  # noqa: F811 - fixture
    make_account: Any,
    feed_server: FeedServer,
) -> None:
    feeds = feed_server
    account: Account = make_account("reader@example.com", workspace="Northwind")
    errors = watch_errors(page)
    feeds.put("/feed.xml", rss(NEWEST, UNDATED, OLDEST))
    sign_in(page, server, account)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#sources-status")).to_have_text(re.compile("No sources yet"))

    # The form shows the fields of the kind picked.
    page.locator("summary", has_text="Add source").click()
    form = page.locator("#source-form")
    kind = form.get_by_label("Kind")
    kind.select_option("hackernews")
    expect(form.locator("#source-url")).to_be_hidden()
    expect(form.locator("#source-query")).to_be_visible()
    kind.select_option("feed")
    expect(form.locator("#source-query")).to_be_hidden()

    # A bad URL: the API's 422 is shown on the URL field, which gets the focus.
    form.get_by_label("Label").fill("Example news")
    url = form.get_by_label("Feed or page URL")
    url.fill("feed.xml")
    form.get_by_role("button", name="Add source").click()
    expect(form.locator("#source-url-error")).to_have_text(re.compile("absolute http"))
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(url).to_be_focused()
    expect(page.locator("#sources-list > li")).to_have_count(0)

    url.fill(feeds.url("/feed.xml"))
    form.get_by_label("Check every (minutes)").fill("15")
    form.get_by_label("Backfill").fill("2")
    form.get_by_role("button", name="Add source").click()
    row = source_row(page, "Example news")
    expect(row).to_have_count(1)
    expect(form.locator("#source-url-error")).to_be_empty()
    expect(row.locator('[data-role="source-state"]')).to_have_text("Not checked yet")
    expect(row).to_contain_text("Every 15 min")
    expect(row).to_contain_text(feeds.url("/feed.xml"))

    # Check now: the page starts the job; a worker (here, the test) runs it.
    with page.expect_response(lambda r: r.url.endswith("/check") and r.status == 202):
        row.get_by_role("button", name="Check now Example news").click()
    check_source_job(pending_job("source.check"))
    note = row.locator('[data-role="source-note"]')
    expect(note).to_have_text("2 new, 0 updated, 0 drafts.", timeout=LIVE)
    expect(row.locator('[data-role="source-state"]')).to_have_text("OK")
    expect(row).to_contain_text("Last check")

    # Its items, newest first (an undated one by when it was first seen); backfill took
    # the two newest dated ones as new, the rest is the baseline.
    row.get_by_role("button", name="Items of Example news").click()
    items = row.locator(".feed-item")
    expect(items).to_have_count(3)
    titles = row.locator('.feed-item [data-role="item-title"]')
    expect(titles).to_have_text(["Undated note", "Newest story", "Oldest story"])
    link = row.get_by_role("link", name="Newest story")
    expect(link).to_have_attribute("href", "https://news.example.org/newest")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    expect(items.nth(0).locator('[data-role="published"]')).to_have_text("undated")
    expect(items.nth(1)).to_contain_text("Grace")
    expect(row.locator('[data-role="baseline"]')).to_have_count(1)
    expect(items.nth(0).locator('[data-role="baseline"]')).to_have_text("Baseline")
    expect(items.nth(1).locator(".item-preview")).to_have_text("Read this first.")
    expect(row.locator(".feed-items b, .feed-items script")).to_have_count(0)

    # Test: the connection test's answer, field by field.
    with page.expect_response(lambda r: r.url.endswith("/test") and r.status == 202):
        row.get_by_role("button", name="Test Example news").click()
    probe_source_job(pending_job("source.test"))
    facts = row.locator('[data-role="test-result"]')
    expect(facts.locator('[data-field="reachable"]')).to_have_text("yes", timeout=LIVE)
    expect(facts.locator('[data-field="status"]')).to_have_text("200")
    expect(facts.locator('[data-field="title"]')).to_have_text("Example News")
    expect(facts.locator('[data-field="item_count"]')).to_have_text("3")
    expect(facts.locator('[data-field="format"]')).to_have_text("RSS 2.0")
    expect(facts.locator('[data-field="conditional_get"]')).to_have_text("yes")

    # A check the page did not start (another tab, the CLI), drafting posts: the event
    # stream alone brings the new items, the edit and the drafts into the page.
    fresh = [
        (f"fresh-{n}", f"Fresh story {n}", f"Sun, 06 Dec 2026 01:{n:02d}:00 +0000", None)
        for n in range(1, 21)
    ]
    edit = (NEWEST[0], "Newest story, corrected", NEWEST[2], NEWEST[3])
    feeds.put("/feed.xml", rss(*reversed(fresh), edit, UNDATED, OLDEST))
    source_id = row.get_attribute("data-id")
    with httpx.Client(base_url=server + "/api/v1", headers=account.headers) as api:
        started = api.post(f"/sources/{source_id}/check", json={"auto_generate": True})
        assert started.status_code == 202, started.text
    result = check_source_job(started.json()["task_id"])
    assert (len(result["new"]), len(result["updated"]), len(result["drafts"])) == (20, 1, 3)
    # The open list is read again from the top: a page of 20, newest first.
    expect(titles.nth(1)).to_have_text("Fresh story 20", timeout=LIVE)
    expect(titles).to_have_count(20)
    expect(page.locator("#posts-list > li")).to_have_count(3)
    newest = items.filter(has_text="Fresh story 20")
    draft = newest.get_by_role("button", name="Fresh story 20")
    expect(draft).to_be_visible()
    draft.click()  # the draft in the Posts panel
    expect(
        page.locator("#posts-list > li")
        .filter(has_text="Fresh story 20")
        .get_by_role("button", name=re.compile("^Publish"))
    ).to_be_focused()

    # Load more: the next page, after the cursor; focus goes to its first item.
    row.get_by_role("button", name="Load more items of Example news").click()
    expect(titles).to_have_count(23)
    expect(row.get_by_role("link", name="Fresh story 1", exact=True)).to_be_focused()
    expect(row.get_by_role("button", name=re.compile("^Load more"))).to_have_count(0)
    expect(items.filter(has_text="Newest story, corrected")).to_contain_text("edited")

    # Pause and resume (PATCH enabled).
    row.get_by_role("button", name="Pause Example news").click()
    expect(row.locator('[data-role="source-state"]')).to_have_text("Paused")
    resume = row.get_by_role("button", name="Resume Example news")
    expect(resume).to_be_focused()
    resume.click()
    expect(row.locator('[data-role="source-state"]')).to_have_text("OK")

    # A check that fails: its error, on the check and on the source's state.
    feeds.behave("/feed.xml", status=500, times=1)
    with page.expect_response(lambda r: r.url.endswith("/check") and r.status == 202):
        row.get_by_role("button", name="Check now Example news").click()
    check_source_job(pending_job("source.check"))
    expect(note).to_have_text(re.compile(r"^Failed: .*500"), timeout=LIVE)
    expect(row.locator('[data-role="source-state"]')).to_have_text("Failing")
    expect(row.locator(".source-why")).to_contain_text("500")

    # The label is taken: the 409 is shown on the label field.
    page.locator("summary", has_text="Add source").click()
    form.get_by_label("Label").fill("Example news")
    url.fill(feeds.url("/other.xml"))
    form.get_by_role("button", name="Add source").click()
    expect(form.locator("#source-name-error")).to_have_text(re.compile("already exists"))
    expect(form.get_by_label("Label")).to_be_focused()
    expect(page.locator("#sources-list > li")).to_have_count(1)

    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.evaluate("document.title") == "Herald"

    # Delete asks once more in place.
    delete = row.get_by_role("button", name="Delete source “Example news”")
    delete.click()
    row.get_by_role("button", name="Confirm: delete source “Example news”").click()
    expect(page.locator("#sources-list > li")).to_have_count(0)
    expect(page.locator("#sources-status")).to_have_text("Deleted “Example news”.")
    assert errors == []
