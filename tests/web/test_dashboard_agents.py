"""The dashboard's Agents panel in a real browser (the fixtures of test_dashboard: Debian's
Chromium, the real app under uvicorn on loopback, SQLite, the suite's Redis).

A feed source's items are stored directly (fetching them is the Sources panel's test). No
worker runs: the test runs the generation job's task body itself, as a worker would; the
page follows its run by polling the job (woken by its ``job.state`` events), and learns of
a decision made elsewhere from the ``post.reviewed`` event alone.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import expect

from herald.agents.provider_tasks import test_provider as run_provider_test
from herald.agents.tasks import generate_post
from herald.core.db import session_scope
from herald.sources.models import SourceItem
from tests.agents.rows import add_channel, add_source, reviewer_in
from tests.conftest import Account
from tests.fakes.openai import OpenAIServer
from tests.web.test_dashboard import page, server  # noqa: F401 - fixtures
from tests.web.test_dashboard_publishing import LIVE, sign_in, watch_errors
from tests.web.test_dashboard_sources import pending_job

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SCREENSHOT = Path("/tmp/herald-dashboard-agents.png")

pytestmark = [
    pytest.mark.integration,  # a real browser against a real server
    pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True),
]

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
# Markup in a story: the page shows the draft's text, never elements made from it.
STORIES = [
    (
        "Rust 2.0 ships a faster borrow checker",
        "The Rust team released version 2.0 today. The borrow checker is twice as fast on "
        "large crates. Compile times drop by a third for most projects. <b>Async closures</b> "
        "are stable at last.",
    ),
    (
        "Python 3.15 removes the GIL by default",
        "Python 3.15 is the first release without the global interpreter lock by default. "
        "Threads now run Python code in parallel on every core. Extension modules must "
        "declare that they are thread-safe.",
    ),
    (
        "Go adds iterators to the standard library",
        "Go 1.27 adds iterator functions across the standard library. Maps, slices and "
        "strings gain range-over-func helpers. The change keeps the compatibility promise.",
    ),
    (
        "Zig reaches its first stable release",
        "Zig 1.0 is out after nine years of development. The compiler builds itself in "
        "seconds. Cross-compiling to every target works from one download.",
    ),
]


def store_items(account: Account, source_id: str, stories: list[tuple[str, str]]) -> list[str]:
    """Items as a check would have stored them (newest last in ``stories``); their ids."""
    rows = []
    with session_scope() as s:
        for n, (title, text) in enumerate(stories):
            link = f"https://news.example.org/{uuid.uuid4().hex[:8]}"
            rows.append(
                SourceItem(
                    workspace_id=account.workspace_id,
                    source_id=uuid.UUID(source_id),
                    site="feed",
                    key=f"link:{link}",
                    link=link,
                    title=title,
                    summary_html=f"<p>{text}</p>",
                    summary_text=text,
                    content_hash=hashlib.sha256(text.encode()).hexdigest(),
                    published_at=T0 + timedelta(hours=n),
                    sort_at=T0 + timedelta(hours=n),
                )
            )
        s.add_all(rows)
        s.flush()
        return [str(row.id) for row in rows]


def review_row(tab: Page, title: str) -> Locator:
    return tab.locator("#review-list > li").filter(has_text=title)


def run_now(tab: Page, agent: Locator) -> dict[str, Any]:
    """Click Run now and run the job it started, as a worker would."""
    with tab.expect_response(lambda r: r.url.endswith("/generate-post") and r.status == 202):
        agent.get_by_role("button", name="Run now Morning digest").click()
    result: dict[str, Any] = generate_post(pending_job("agent.generate"))
    assert result["success"], result
    return result


def test_add_an_agent_run_it_and_review_its_drafts(
    server: str,  # noqa: F811 - fixture
    page: Page,  # noqa: F811 - fixture
    make_account: Any,
) -> None:
    account: Account = make_account("editor@example.com", workspace="Northwind")
    source_id = add_source(account.workspace_id, "News")
    channel_id = add_channel(account.workspace_id, "Blog")
    add_channel(account.workspace_id, "Elsewhere")
    store_items(account, source_id, STORIES[:2])
    errors = watch_errors(page)
    sign_in(page, server, account)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#review-status")).to_have_text("Nothing waiting for review.")
    expect(page.locator("#providers-status")).to_have_text(re.compile("built-in digest"))

    # Add an agent; a bad cron is the API's 422, shown on the schedule field.
    page.locator("summary", has_text="Add agent").click()
    form = page.locator("#agent-form")
    form.get_by_label("Label").fill("Morning digest")
    form.get_by_label("Topic").fill("Programming languages this week")
    form.get_by_label("Keywords").fill("Rust, Python")
    form.get_by_label("News").check()
    form.get_by_label("Blog").check()
    cron = form.get_by_label("Schedule (cron)")
    cron.fill("0 9 * * FUNDAY")
    form.get_by_label("Time zone").fill("Europe/Warsaw")
    form.get_by_label("Drafts").fill("10")
    form.get_by_role("button", name="Add agent").click()
    expect(form.locator("#agent-cron-error")).not_to_be_empty()
    expect(cron).to_be_focused()
    expect(page.locator("#agents-list > li")).to_have_count(0)
    cron.fill("0 9 * * MON")
    form.get_by_role("button", name="Add agent").click()
    agent = page.locator("#agents-list > li").filter(has_text="Morning digest")
    expect(agent).to_have_count(1)
    # The next runs are the API's answer, read in the agent's zone: Mondays at 09:00.
    monday = r"Mon(day)?, \w{3} \d{1,2}, \d{4}, 9:00\sAM"
    expect(page.locator("#agents-status")).to_have_text(
        re.compile(rf"Next runs \(Europe/Warsaw\): {monday}; {monday}; {monday}\.$")
    )
    expect(agent.locator('[data-role="agent-schedule"]')).to_have_text(
        "0 9 * * MON (Europe/Warsaw)"
    )
    expect(agent.locator('[data-role="agent-provider"]')).to_have_text("digest (digest)")
    expect(agent.locator('[data-role="agent-review"]')).to_have_text("Review required")
    expect(agent.locator('[data-role="agent-next-run"]')).to_have_text(
        re.compile(rf"^Next run {monday}$")
    )

    # Run now: the page follows the job to its end and links the draft.
    first = run_now(page, agent)
    note = agent.locator('[data-role="agent-note"]')
    expect(note).to_contain_text("SUCCESS", timeout=LIVE)
    expect(agent.locator('[data-role="agent-draft"]')).to_have_text(first["title"])
    row = review_row(page, first["title"])
    expect(row).to_have_count(1)
    expect(row.locator('[data-role="review-agent"]')).to_have_text("Morning digest")
    expect(row.locator('[data-role="word-count"]')).to_have_text(f"{first['word_count']} words")
    expect(row.locator('[data-role="seo-warnings"]')).to_have_text(re.compile("SEO warning"))

    # Its runs: state, tokens, cost, latency.
    agent.get_by_role("button", name="Runs of Morning digest").click()
    runs = agent.locator('[data-role="runs"] tbody tr')
    expect(runs).to_have_count(1)
    expect(runs.first.locator('[data-role="run-state"]')).to_have_text("Succeeded")

    # Usage this month: one run of the agent, with its bar.
    expect(page.locator("#usage-totals")).to_contain_text("1 run")
    usage = page.locator('[data-role="usage"] tbody tr')
    expect(usage).to_have_count(1)
    expect(usage.first).to_contain_text("Morning digest")
    expect(usage.first.locator('[data-field="runs"]')).to_have_text("1")

    # Open the draft: its body as text, its SEO metrics, the items it drew on.
    agent.locator('[data-role="agent-draft"]').click()
    expect(row.get_by_role("button", name=f"Review {first['title']}")).to_be_focused()
    row.get_by_role("button", name=f"Review {first['title']}").click()
    body = row.locator('[data-role="review-body"]')
    expect(body).to_contain_text("Rust 2.0 ships a faster borrow checker")
    expect(row.locator(".review-body b, .review-body script")).to_have_count(0)
    expect(row.locator('[data-field="word_count"]')).to_have_text(str(first["word_count"]))
    expect(row.get_by_role("link", name=STORIES[1][0])).to_have_attribute(
        "rel", "noopener noreferrer"
    )
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # The agent's channel is picked; approving publishes to it now.
    approve = row.locator('[data-role="approve-form"]')
    expect(approve.get_by_label("Blog")).to_be_checked()
    expect(approve.get_by_label("Elsewhere")).not_to_be_checked()
    approve.get_by_role("button", name=f"Approve {first['title']}").click()
    expect(page.locator("#review-status")).to_have_text(f"Approved “{first['title']}”: 1 delivery.")
    expect(page.locator("#review-list > li")).to_have_count(0)
    with httpx.Client(base_url=server + "/api/v1", headers=account.headers) as api:
        deliveries = api.get(f"/posts/{first['post_id']}/publications").json()
    assert [d["channel_id"] for d in deliveries] == [channel_id]

    # A second draft, from new items; rejecting it needs a note.
    store_items(account, source_id, STORIES[2:])
    second = run_now(page, agent)
    expect(agent.locator('[data-role="agent-draft"]')).to_have_text(second["title"], timeout=LIVE)
    row = review_row(page, second["title"])
    row.get_by_role("button", name=f"Review {second['title']}").click()
    reject = row.locator('[data-role="reject-form"]')
    reject.get_by_role("button", name=f"Reject {second['title']}").click()
    why = reject.get_by_label("Why reject it")
    expect(reject.locator('[data-role="error"]')).to_have_text(re.compile("Write a note"))
    expect(why).to_be_focused()
    expect(row).to_have_count(1)
    why.fill("Too short on Zig.")
    reject.get_by_role("button", name=f"Reject {second['title']}").click()
    expect(page.locator("#review-list > li")).to_have_count(0)
    expect(page.locator("#review-status")).to_have_text(f"Rejected “{second['title']}”.")
    with httpx.Client(base_url=server + "/api/v1", headers=account.headers) as api:
        rejected = api.get(f"/posts/{second['post_id']}").json()
    assert (rejected["state"], rejected["review_note"]) == ("rejected", "Too short on Zig.")

    # A reviewer sees the agents and their runs, but nothing to add, run or remove, and
    # approves. Runs started elsewhere come into the queue from their job.state events,
    # and a decision made elsewhere takes a draft out from the post.reviewed event.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server, reviewer_in(account))
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(agent).to_have_count(1)
    expect(page.locator("#agent-create")).to_be_hidden()
    expect(page.locator("#provider-create")).to_be_hidden()
    expect(agent.get_by_role("button", name="Runs of Morning digest")).to_be_visible()
    expect(agent.get_by_role("button", name=re.compile("^(Run now|Delete)"))).to_have_count(0)
    elixir, kotlin = store_items(
        account,
        source_id,
        [("Elixir types land", "Elixir 2.0 checks types."), ("Kotlin 3", "Kotlin 3 is out.")],
    )
    agent_id = agent.get_attribute("data-id")
    with httpx.Client(base_url=server + "/api/v1", headers=account.headers) as api:
        drafts = []
        for item_id in (elixir, kotlin):
            wanted = {"agent_id": agent_id, "item_ids": [item_id]}
            started = api.post("/tasks/generate-post", json=wanted)
            assert started.status_code == 202, started.text
            drafts.append(generate_post(started.json()["task_id"]))
        expect(page.locator("#review-list > li")).to_have_count(2, timeout=LIVE)

        # The reviewer approves one, to be published at a time (this browser's zone: UTC).
        row = review_row(page, drafts[0]["title"])
        row.get_by_role("button", name=f"Review {drafts[0]['title']}").click()
        approve = row.locator('[data-role="approve-form"]')
        approve.get_by_label("At", exact=True).check()
        approve.get_by_label("Publish at").fill("2027-01-04T10:30")
        approve.get_by_role("button", name=f"Approve {drafts[0]['title']}").click()
        expect(review_row(page, drafts[0]["title"])).to_have_count(0)
        (delivery,) = api.get(f"/posts/{drafts[0]['post_id']}/publications").json()
        assert (delivery["channel_id"], delivery["due_at"]) == (
            channel_id,
            "2027-01-04T10:30:00Z",
        )
        assert (
            api.get(f"/posts/{drafts[0]['post_id']}")
            .json()["reviewed_by_email"]
            .startswith("reviewer-")
        )

        # The other is decided elsewhere: it leaves the page's queue.
        decided = api.post(f"/posts/{drafts[1]['post_id']}/reject", json={"note": "No."})
        assert decided.status_code == 200, decided.text
    expect(page.locator("#review-list > li")).to_have_count(0, timeout=LIVE)
    assert errors == []


def test_add_and_test_an_openai_provider(
    server: str,  # noqa: F811 - fixture
    page: Page,  # noqa: F811 - fixture
    make_account: Any,
    openai_server: OpenAIServer,
) -> None:
    account: Account = make_account("editor@example.com", workspace="Northwind")
    errors = watch_errors(page)
    sign_in(page, server, account)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    page.locator("summary", has_text="Add provider").click()
    form = page.locator("#provider-form")
    form.get_by_label("Kind").select_option("digest")
    expect(form.get_by_label("API key")).to_be_hidden()
    form.get_by_label("Kind").select_option("openai")
    form.get_by_label("Label").fill("Local")
    base_url = form.get_by_label("Base URL")
    base_url.fill("ftp://models.example/v1")
    form.get_by_label("Model").fill("gpt-4o-mini")
    key = form.get_by_label("API key")
    expect(key).to_have_attribute("type", "password")
    key.fill("sk-never-shown")
    form.get_by_label("Input price").fill("0.15")
    form.get_by_label("Output price").fill("0.6")
    form.get_by_role("button", name="Add provider").click()
    expect(form.locator("#provider-base-url-error")).not_to_be_empty()
    expect(base_url).to_be_focused()
    base_url.fill(openai_server.base_url)
    form.get_by_role("button", name="Add provider").click()

    row = page.locator("#providers-list > li").filter(has_text="Local")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("key stored")
    expect(row).to_contain_text("$0.15 in / $0.60 out per million tokens")
    # The key is write-only: gone from the form, and nowhere in the page.
    page.locator("summary", has_text="Add provider").click()
    expect(key).to_have_value("")
    assert "sk-never-shown" not in page.content()

    # Test: the job's answer, and the call in this month's usage.
    with page.expect_response(lambda r: r.url.endswith("/test") and r.status == 202):
        row.get_by_role("button", name="Test Local").click()
    run_provider_test(pending_job("provider_test"))
    expect(row.locator('[data-role="provider-note"]')).to_have_text(
        re.compile(r"^SUCCESS: “OK” in \d+ ms, \d+ tokens, \$"), timeout=LIVE
    )
    assert openai_server.headers[0]["authorization"] == "Bearer sk-never-shown"
    expect(page.locator("#usage-totals")).to_have_text(re.compile(r"^0 runs, [1-9]\d* tokens"))

    # Agents can pick it.
    page.locator("summary", has_text="Add agent").click()
    expect(page.locator("#agent-provider option")).to_have_text(
        ["The workspace's default", "Local (openai)"]
    )

    row.get_by_role("button", name="Delete provider “Local”").click()
    row.get_by_role("button", name="Confirm: delete provider “Local”").click()
    expect(page.locator("#providers-list > li")).to_have_count(0)
    expect(page.locator("#providers-status")).to_have_text("Deleted “Local”.")
    assert errors == []
