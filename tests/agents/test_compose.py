"""A model's Markdown made into a draft: title, body, Sources when links are missing,
excerpt and short variant."""

from __future__ import annotations

import uuid

from herald.agents.compose import EXCERPT_CHARS, SHORT_CHARS, draft_from_markdown
from herald.agents.providers.base import GenerationRequest, SourceText

ITEMS = [
    SourceText(
        id=uuid.uuid4(),
        title="Rust 1.90",
        text="",
        link="https://blog.rust-lang.org/1.90",
        source_name="Rust Blog",
        author="Ann",
    ),
    SourceText(id=uuid.uuid4(), title="Cargo", text="", link="https://example.org/cargo/"),
]
REQUEST = GenerationRequest(topic="Rust news", items=ITEMS)


def test_title_from_the_first_h1_and_the_body_without_it() -> None:
    markdown = (
        "# What's *new* in Rust\n\nRust 1.90 is out ([notes](https://blog.rust-lang.org/1.90)).\n\n"
        "## Cargo\n\nSee [Cargo](https://example.org/cargo).\n\n# Another h1 stays\n"
    )
    draft = draft_from_markdown(markdown, REQUEST)
    assert draft.title == "What's new in Rust"
    assert draft.body.startswith("Rust 1.90 is out")
    assert "# Another h1 stays" in draft.body and "## Sources" not in draft.body
    assert draft.excerpt == "Rust 1.90 is out (notes)."
    assert draft.short_text == "What's new in Rust https://blog.rust-lang.org/1.90"


def test_missing_links_get_a_sources_section() -> None:
    draft = draft_from_markdown("# Title\n\nRust got faster.\n", REQUEST)
    assert draft.body == (
        "Rust got faster.\n\n## Sources\n\n"
        "- [Rust 1.90](https://blog.rust-lang.org/1.90) — Rust Blog, Ann\n"
        "- [Cargo](https://example.org/cargo/)\n"
    )
    assert draft.short_text == "Title https://blog.rust-lang.org/1.90"


def test_a_link_in_code_is_not_a_link_and_a_hash_in_code_is_not_a_title() -> None:
    markdown = "```\n# not a title\n```\n\n`https://blog.rust-lang.org/1.90`\n"
    draft = draft_from_markdown(markdown, REQUEST)
    assert draft.title == "Rust news"  # the topic
    assert draft.body.startswith("```\n# not a title\n```")
    assert "## Sources" in draft.body


def test_empty_answer_and_no_topic() -> None:
    draft = draft_from_markdown("", GenerationRequest(topic="", items=ITEMS))
    assert draft.title == "Rust 1.90" and draft.excerpt == ""
    assert draft.body.startswith("## Sources")
    alone = draft_from_markdown("", GenerationRequest(topic=""))
    assert (alone.title, alone.body, alone.short_text) == ("Draft", "", "Draft")


def test_excerpt_and_short_text_are_bounded() -> None:
    words = " ".join(["longword"] * 200)
    markdown = f"# {words}\n\n{words}\n\n[x](https://blog.rust-lang.org/1.90) [y](https://example.org/cargo)"
    draft = draft_from_markdown(markdown, REQUEST)
    assert len(draft.excerpt) <= EXCERPT_CHARS and draft.excerpt.endswith("…")
    assert len(draft.short_text) <= SHORT_CHARS
    assert draft.short_text.endswith(" https://blog.rust-lang.org/1.90")
    huge = "https://example.org/" + "a" * 300
    lone = draft_from_markdown(f"# T\n\n[z]({huge})", GenerationRequest(topic="t"))
    assert lone.short_text == "T"  # a link too long to fit is left out
