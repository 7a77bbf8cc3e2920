"""The digest provider: a readable draft from items, chosen by LexRank, with no model."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from herald.agents.providers.base import (
    ErrorKind,
    GenerationRequest,
    ProviderConfig,
    ProviderError,
    SourceText,
    TextProvider,
)
from herald.agents.providers.digest import (
    MODEL,
    NO_ITEMS,
    DigestProvider,
    lexrank,
    split_sentences,
)
from herald.agents.tokens import estimate_tokens
from herald.posts import seo

CONFIG = ProviderConfig(kind="digest", name="digest")


def item(n: int, title: str, text: str, **fields: object) -> SourceText:
    return SourceText(id=uuid.UUID(int=n), title=title, text=text, **fields)  # type: ignore[arg-type]


RUST = item(
    1,
    "Rust 1.80 released",
    "The Rust team has released version 1.80 of the Rust compiler. "
    "It stabilises LazyCell and LazyLock, two types for lazy initialisation in Rust. "
    "Exclusive ranges in patterns are now stable in Rust too. "
    "The release also checks cfg names and values. "
    "Users can update the Rust toolchain with rustup.",
    link="https://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html",
    author="The Release Team",
    source_name="Rust Blog",
    published_at=datetime(2024, 7, 25, 12, tzinfo=UTC),
)
LAZY = item(
    2,
    "LazyLock explained",
    "LazyLock is a new type in the Rust standard library. "
    "It replaces the lazy_static crate for most uses. "
    "A LazyLock value is computed on first access and then cached. "
    "Many crates will drop their lazy_static dependency.",
    link="https://example.com/lazylock",
    source_name="This Week in Rust",
)
LINK_ONLY = item(3, "Discussion on HN", "", link="https://news.ycombinator.com/item?id=1")


def request(**fields: object) -> GenerationRequest:
    base = GenerationRequest(
        topic="Rust news", keywords=["LazyLock", "python"], items=[RUST, LAZY, LINK_ONLY]
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def words(markdown: str) -> int:
    return int(seo.compute("", markdown, None, [], "en")["word_count"])


def test_it_is_a_text_provider() -> None:
    provider: TextProvider = DigestProvider(CONFIG)
    assert provider.generate(request()).call.model == MODEL


def test_a_readable_digest_of_three_items() -> None:
    generation = DigestProvider(CONFIG).generate(request(target_words=200))
    draft = generation.draft
    # The title: the topic and the top item (the one most like the others).
    assert draft.title == "Rust news: Rust 1.80 released"
    intro = draft.body.split("\n\n")[0]
    assert intro == (
        "This digest gathers 3 items on Rust news from Rust Blog and This Week in Rust. "
        "It covers LazyLock."  # "python" is in no item: not claimed
    )
    headings = re.findall(r"^## (.+)$", draft.body, flags=re.MULTILINE)
    assert headings == ["Rust 1.80 released", "LazyLock explained", "Discussion on HN"]
    assert (
        "*Rust Blog, by The Release Team, 2024-07-25* · [Read more at blog.rust-lang.org]"
        "(https://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html)"
    ) in draft.body
    assert "*This Week in Rust* · [Read more at example.com](https://example.com/lazylock)" in (
        draft.body
    )
    # Markdown in the items' words is escaped, not interpreted.
    assert r"lazy\_static" in draft.body
    assert draft.excerpt == intro
    assert draft.short_text == (
        "Rust news: Rust 1.80 released https://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html"
    )
    assert generation.call.usage.estimated
    assert generation.call.usage.input_tokens > 50
    assert generation.call.usage.output_tokens == estimate_tokens(f"{draft.title}\n{draft.body}")
    assert generation.call.outcome == "ok"
    assert generation.call.latency_ms >= 0


def test_a_link_only_item_gets_its_section() -> None:
    draft = DigestProvider(CONFIG).generate(request(items=[LINK_ONLY])).draft
    assert draft.body.split("\n\n")[1:] == [
        "## Discussion on HN",
        "[Read more at news.ycombinator.com](https://news.ycombinator.com/item?id=1)\n",
    ]
    # No title, no source: the link's host names the section; a non-web link is not linked.
    bare = item(4, "", "", link="javascript:alert(1)")
    body = DigestProvider(CONFIG).generate(request(items=[bare], topic="")).draft.body
    assert "## Item 1" in body
    assert "javascript" not in body


def test_ranking_keeps_the_central_sentences_in_their_order() -> None:
    # Three sentences about one subject and two asides: the subject wins, in text order.
    text = (
        "The city council approved the new bicycle lanes on Monday. "
        "My neighbour owns a very old grey cat. "
        "The bicycle lanes will connect the station to the university. "
        "Lunch was served at noon. "
        "Council members said the lanes make cycling to the university safer."
    )
    sentences = split_sentences(text)
    assert len(sentences) == 5
    provider = DigestProvider(CONFIG)
    draft = provider.generate(
        GenerationRequest(topic="", items=[item(1, "Lanes", text)], target_words=38)
    ).draft
    paragraph = draft.body.split("\n\n")[2].strip()
    assert paragraph == " ".join(sentences[i] for i in (0, 2, 4))


def test_lexrank_scores_the_hub_highest() -> None:
    hub = {"a": 0.6, "b": 0.6, "c": 0.53}
    vectors = [hub, {"a": 1.0}, {"b": 1.0}, {"c": 1.0}, {"z": 1.0}]
    scores = lexrank(vectors)
    assert sum(scores) == pytest.approx(1.0)
    assert scores.index(max(scores)) == 0
    assert scores[4] == min(scores)  # alike to nothing: only the random jump reaches it
    # A query moves the weight toward what it mentions.
    assert lexrank(vectors, {"z": 1.0})[4] > scores[4]


def long_item(n: int, subject: str) -> SourceText:
    sentences = [
        f"Sentence {i} about {subject} says that the {subject} project shipped part {i} "
        f"of its plan with care."
        for i in range(40)
    ]
    return item(n, f"{subject.title()} update", " ".join(sentences), source_name="Feed")


@pytest.mark.parametrize("target", [150, 400, 900])
def test_the_length_aims_at_the_target(target: int) -> None:
    items = [long_item(n, subject) for n, subject in enumerate(["alpha", "beta", "gamma"])]
    draft = (
        DigestProvider(CONFIG)
        .generate(GenerationRequest(topic="Projects", items=items, target_words=target))
        .draft
    )
    # Whole sentences (17 words here) are chosen: within 10% or one sentence.
    assert abs(words(draft.body) + words(draft.title) - target) <= max(0.1 * target, 17)
    # Every item with text says something.
    assert draft.body.count("Sentence") >= 3


def test_an_item_with_little_text_leaves_its_share_to_the_others() -> None:
    items = [long_item(1, "alpha"), item(2, "Short", "Just one sentence here.")]
    draft = (
        DigestProvider(CONFIG)
        .generate(GenerationRequest(topic="Projects", items=items, target_words=300))
        .draft
    )
    assert "Just one sentence here." in draft.body
    assert abs(words(draft.body) + words(draft.title) - 300) <= 30


def test_same_request_same_draft() -> None:
    provider = DigestProvider(CONFIG)
    first = provider.generate(request(target_words=120)).draft
    assert DigestProvider(CONFIG).generate(request(target_words=120)).draft == first


def test_german_sentences() -> None:
    text = (
        "Die Regierung hat am 3. Oktober z. B. neue Regeln beschlossen. "
        "Dr. Müller sagt, das sei gut! Ab 1. Januar gilt das Gesetz usw. für alle.\n\n"
        "Ein neuer Absatz beginnt hier"
    )
    assert split_sentences(text, "de") == [
        "Die Regierung hat am 3. Oktober z. B. neue Regeln beschlossen.",
        "Dr. Müller sagt, das sei gut!",
        "Ab 1. Januar gilt das Gesetz usw. für alle.",
        "Ein neuer Absatz beginnt hier",
    ]
    # In English a number before a dot ends the sentence; "Dr." still does not.
    assert split_sentences("We met on day 3. Then Dr. Who left.", "en") == [
        "We met on day 3.",
        "Then Dr. Who left.",
    ]


def test_the_digest_speaks_the_language() -> None:
    draft = DigestProvider(CONFIG).generate(request(language="de-AT", keywords=[])).draft
    assert draft.excerpt == (
        "Dieser Überblick fasst 3 Beiträge zum Thema Rust news aus Rust Blog und "
        "This Week in Rust zusammen."
    )
    assert "*Rust Blog, von The Release Team, 2024-07-25* · [Weiterlesen bei blog" in draft.body

    def polish(n: int) -> str:
        items = [item(i, f"T{i}", "Tekst.") for i in range(n)]
        return (
            DigestProvider(CONFIG)
            .generate(GenerationRequest(topic="", items=items, language="pl"))
            .draft.excerpt
        )

    assert polish(1) == "Ten przegląd zbiera 1 artykuł."
    assert polish(3) == "Ten przegląd zbiera 3 artykuły."
    assert polish(5) == "Ten przegląd zbiera 5 artykułów."
    assert polish(12) == "Ten przegląd zbiera 12 artykułów."
    assert polish(22) == "Ten przegląd zbiera 22 artykuły."
    # A language without phrases of its own: English ones.
    assert (
        DigestProvider(CONFIG)
        .generate(request(language="ja"))
        .draft.excerpt.startswith("This digest gathers 3 items")
    )


def test_stop_words_follow_the_language() -> None:
    # Alike only in German function words, the last three sentences would look like one
    # cluster and win; with German stop words left out, the two about the cat win.
    text = (
        "Die Katze schläft. Die Katze frisst. Der und die oder das Auto. "
        "Der und die oder das Haus. Der und die oder das Boot."
    )
    chosen = {}
    for language in ("de", "en"):
        draft = (
            DigestProvider(CONFIG)
            .generate(
                GenerationRequest(
                    topic="", items=[item(1, "T", text)], target_words=5, language=language
                )
            )
            .draft
        )
        chosen[language] = draft.body.split("\n\n")[2].strip()
    assert chosen == {"de": "Die Katze schläft.", "en": "Der und die oder das Auto."}


def test_no_items_is_a_permanent_error() -> None:
    with pytest.raises(ProviderError) as raised:
        DigestProvider(CONFIG).generate(request(items=[]))
    assert raised.value.kind is ErrorKind.PERMANENT
    assert raised.value.message == NO_ITEMS
    assert raised.value.call.outcome == "permanent"
    assert raised.value.call.usage.output_tokens == 0


def test_short_text_fits_280_with_its_link() -> None:
    long_title = item(1, "word " * 100, "Some text here.", link="https://example.com/" + "a" * 40)
    draft = DigestProvider(CONFIG).generate(request(items=[long_title], topic="")).draft
    assert len(draft.short_text) <= 280
    assert draft.short_text.endswith(" https://example.com/" + "a" * 40)
    assert "…" in draft.short_text
    long_intro = [item(n, "t", "x", source_name=f"Source number {n} " * 5) for n in range(9)]
    draft = DigestProvider(CONFIG).generate(request(items=long_intro)).draft
    assert len(draft.excerpt) <= 300
    assert draft.excerpt.endswith("…")
    assert "and 5 more sources." in draft.body
