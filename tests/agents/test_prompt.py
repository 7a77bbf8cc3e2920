"""The prompt: what the system message asks for, what the user message holds, and the
budget that keeps it bounded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from herald.agents.prompt import (
    INSTRUCTIONS_CHARS,
    ITEM_CHARS,
    ITEMS_BUDGET,
    MAX_ITEMS,
    PROMPT_TOKENS,
    cut,
    messages_for,
)
from herald.agents.providers.base import GenerationRequest, SourceText
from herald.agents.tokens import estimate_messages


def item(n: int, text: str = "Some news.", **fields: object) -> SourceText:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "title": f"Item {n}",
        "text": text,
        "link": f"https://news.example/{n}",
        **fields,
    }
    return SourceText(**values)  # type: ignore[arg-type]


def test_the_system_message_says_what_and_how() -> None:
    request = GenerationRequest(
        topic="Rust",
        tone="friendly",
        target_words=450,
        language="pl",
        instructions="We say 'you', never 'one'.",
    )
    system, user = messages_for(request)
    assert (system["role"], user["role"]) == ("system", "user")
    text = system["content"]
    assert "Polish (pl)" in text and "about 450 words" in text and "Tone: friendly." in text
    assert "We say 'you', never 'one'." in text
    assert "one '# ' title line" in text and "Cite the sources with links" in text
    bare = messages_for(GenerationRequest(topic="Rust", language="xx"))[0]["content"]
    assert "Tone" not in bare and "brand voice" not in bare and "'xx'" in bare


def test_the_user_message_holds_the_topic_keywords_and_items() -> None:
    when = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    request = GenerationRequest(
        topic="Rust this month",
        keywords=["rust", "cargo"],
        keyword="rust 1.90",
        items=[
            item(1, author="Ann", source_name="Rust Blog", published_at=when),
            item(2, link=None),
        ],
    )
    user = messages_for(request)[1]["content"]
    assert user.startswith(
        "Topic: Rust this month\nKeywords: rust, cargo\nFocus keyword: rust 1.90"
    )
    assert (
        "## Item 1: Item 1\nSource: Rust Blog\nAuthor: Ann\nDate: 2026-11-20\n"
        "Link: https://news.example/1\nText: Some news."
    ) in user
    assert "## Item 2: Item 2\nText: Some news." in user  # no link: none invented


def test_no_items_says_so() -> None:
    user = messages_for(GenerationRequest(topic="Rust"))[1]["content"]
    assert "no source items" in user


def test_the_items_are_cut_to_a_budget() -> None:
    long = "word " * 5000
    one = messages_for(GenerationRequest(topic="t", items=[item(1, long)]))[1]["content"]
    assert ITEM_CHARS - 10 < len(one.split("Text: ")[1]) <= ITEM_CHARS
    many = [item(n, long) for n in range(50)]
    user = messages_for(GenerationRequest(topic="t", items=many))[1]["content"]
    texts = [part.split("\n")[0] for part in user.split("Text: ")[1:]]
    assert len(texts) == MAX_ITEMS
    assert sum(map(len, texts)) <= ITEMS_BUDGET
    assert f"## Item {MAX_ITEMS + 1}:" not in user


def test_cut_keeps_words_whole() -> None:
    assert cut("one two three", 100) == "one two three"
    assert cut("one  two\nthree", 100) == "one two three"
    assert cut("alpha beta gamma", 12) == "alpha beta…"
    assert len(cut("x" * 50, 10)) <= 10


def test_the_prompt_fits_its_token_budget_whatever_the_items() -> None:
    # Japanese counts about a token a letter: 20 items of it would be ~12,000 tokens.
    dense = "日本語の記事です。" * 400
    many = [item(n, dense, title="長い題名" * 100) for n in range(20)]
    request = GenerationRequest(topic="話題" * 1000, instructions="声" * 5000, items=many)
    messages = messages_for(request)
    assert estimate_messages(messages) <= PROMPT_TOKENS
    user = messages[1]["content"]
    assert "## Item 1:" in user and "Link: https://news.example/0" in user
    assert len(messages[0]["content"]) < INSTRUCTIONS_CHARS + 1000
    # Plain English items fit without cutting anything further.
    english = [item(n, "word " * 200) for n in range(5)]
    plain = messages_for(GenerationRequest(topic="t", items=english))
    assert plain[1]["content"].count("word") == 5 * 200
    assert estimate_messages(messages_for(GenerationRequest(topic="x" * 9000))) <= PROMPT_TOKENS
