"""SEO metrics on crafted Markdown: each number, each threshold's warning, each language."""

from __future__ import annotations

import json
from typing import Any

import pytest
from textstat.textstat import textstatistics

from herald.posts import seo

GOOD_EXCERPT = "A short walk through the new bicycle lanes and what they change for riders."


def metrics(
    body: str,
    *,
    title: str = "Bicycle lanes",
    excerpt: str | None = GOOD_EXCERPT,
    keywords: list[str] | None = None,
    language: str | None = "en",
) -> dict[str, Any]:
    return seo.compute(title, body, excerpt, keywords or [], language)


def codes(result: dict[str, Any]) -> list[str]:
    return [w["code"] for w in result["warnings"]]


def test_words_and_reading_time() -> None:
    body = (
        "# Ignored? No: headings are read.\n\n"
        "Some *emphasis*, a [link text](https://example.com/a-b-c) and `code`.\n\n"
        "```python\nnot = prose + at_all\n```\n\n"
        "![an alt text is not prose](x.png)\n"
    )
    result = metrics(body)
    # "Ignored No headings are read" 5 + "Some emphasis a link text and code" 7; the link's
    # address, the code block and the image's alt are not read.
    assert result["word_count"] == 12
    assert result["reading_time_minutes"] == 1
    assert metrics("word " * 238)["reading_time_minutes"] == 1
    assert metrics("word " * 239)["reading_time_minutes"] == 2
    assert metrics("")["reading_time_minutes"] == 0
    assert metrics("")["word_count"] == 0


def test_readability_in_english_matches_textstat() -> None:
    body = "The cat sat on the mat. It was a sunny day.\n\nThe dog slept."
    result = metrics(body)
    # textstat's own object, on its own language setting: seo uses its per-call functions.
    reference = textstatistics()
    reference.set_lang("en_US")
    text = "The cat sat on the mat. It was a sunny day. The dog slept."
    assert result["flesch_reading_ease"] == round(reference.flesch_reading_ease(text), 1)
    assert result["flesch_kincaid_grade"] == round(reference.flesch_kincaid_grade(text), 1)
    assert result["readability_formula"] == "Flesch (1948)"
    assert result["flesch_reading_ease"] > 90  # easy text scores high


def test_readability_per_language() -> None:
    body = "Die Katze sitzt auf der Matte. Der Hund schläft im Garten."
    german = metrics(body, language="de-AT")
    english = metrics(body, language="en")
    assert german["language"] == "de"
    assert german["readability_formula"] == "Amstad (1978)"
    # Amstad's constants differ from Flesch's: the same text scores differently.
    assert german["flesch_reading_ease"] != english["flesch_reading_ease"]
    assert german["flesch_kincaid_grade"] is None  # a US grade says nothing about German
    assert "readability_unavailable" not in codes(german)


def test_unsupported_language_falls_back_with_a_warning() -> None:
    result = metrics("Kot siedzi na macie. Pies śpi.", language="pl")
    assert result["flesch_reading_ease"] is None
    assert result["flesch_kincaid_grade"] is None
    assert result["word_count"] == 6  # everything else is measured
    [warning] = [w for w in result["warnings"] if w["code"] == "readability_unavailable"]
    assert warning["message"] == (
        "Readability is not scored for language 'pl'; it is for de, en, es, fr, it, nl, ru."
    )
    # No language: read as English.
    assert metrics("The cat sat.", language=None)["readability_formula"] == "Flesch (1948)"


def test_hard_text_is_flagged() -> None:
    hard = (
        "Notwithstanding institutional considerations, organisational interdependencies "
        "necessitate comprehensive multidisciplinary reconceptualisation of administrative "
        "responsibilities characterising contemporary governmental establishments."
    )
    result = metrics(hard)
    assert result["flesch_reading_ease"] < seo.READING_EASE_HARD
    assert "hard_to_read" in codes(result)
    assert "hard_to_read" not in codes(metrics("The cat sat on the mat."))


def test_keyword_density() -> None:
    body = "Rust is fast. I like rust, and RUST likes me. Trust no one.\n\nRust-lang too."
    result = metrics(body, keywords=["rust", "Rust", "memory safety", "like rust"])
    # 16 words ("Rust-lang" is two); "rust" whole words only, any case, not "Trust": 4.
    assert result["word_count"] == 16
    assert result["keywords"] == ["rust", "memory safety", "like rust"]  # one per spelling
    assert result["keyword_occurrences"] == {"rust": 4, "memory safety": 0, "like rust": 1}
    assert result["keyword_density"] == {"rust": 25.0, "memory safety": 0.0, "like rust": 6.25}
    messages = {w["message"] for w in result["warnings"]}
    assert "Keyword 'memory safety' appears 0 times; mention it in the first paragraph." in (
        messages
    )
    assert any(m.startswith("Keyword 'rust' makes up 25.0% of the words") for m in messages)
    calm = metrics("Rust " + "word " * 99, keywords=["rust"])
    assert calm["keyword_density"] == {"rust": 1.0}
    assert not {"keyword_missing", "keyword_stuffing"} & set(codes(calm))


def test_title_and_description_lengths() -> None:
    long_title = "A" * 74
    result = metrics("Text.", title=long_title, excerpt="x" * 40)
    assert result["title_length"] == 74
    assert result["meta_description_length"] == 40
    messages = {w["code"]: w["message"] for w in result["warnings"]}
    assert messages["title_too_long"] == (
        "The title is 74 characters; search results cut titles after about 60."
    )
    assert "50-160 characters" in messages["meta_description_too_short"]
    assert "meta_description_too_long" in codes(metrics("x", excerpt="y" * 161))
    assert "meta_description_missing" in codes(metrics("x", excerpt=None))
    fine = metrics("x", title="t" * 60, excerpt="e" * 160)
    assert not {"title_too_long", "meta_description_too_long"} & set(codes(fine))
    assert "meta_description_too_short" not in codes(metrics("x", excerpt="e" * 50))


@pytest.mark.parametrize(
    ("body", "h1_count", "in_order", "warning"),
    [
        ("## A\n\n### B\n\n## C\n\n#### D", 1, False, "A heading jumps from H2 to H4"),
        ("## A\n\n### B\n\n## C", 1, True, None),
        ("### A", 1, False, "A heading jumps from H1 to H3"),
        ("# Second H1\n\n## A", 2, True, "One H1 heading is in the body"),
        ("```\n# not a heading\n```\n\n    # nor this", 1, True, None),
    ],
)
def test_headings(body: str, h1_count: int, in_order: bool, warning: str | None) -> None:
    result = metrics(body)
    assert result["headings"]["h1_count"] == h1_count
    assert result["headings"]["levels_in_order"] is in_order
    heading_warnings = [
        w["message"]
        for w in result["warnings"]
        if w["code"] in ("heading_level_skipped", "extra_h1")
    ]
    if warning is None:
        assert heading_warnings == []
    else:
        assert [m for m in heading_warnings if m.startswith(warning)], heading_warnings


def test_heading_counts_per_level() -> None:
    result = metrics("# a\n\n## b\n\n## c\n\nText\n---\n\n###### f")
    assert result["headings"]["counts"] == {
        "h1": 1,
        "h2": 3,  # the setext underline is an H2 too
        "h3": 0,
        "h4": 0,
        "h5": 0,
        "h6": 1,
    }
    assert "One H1 heading is in the body;" in str(result["warnings"])


def test_links_and_images() -> None:
    body = (
        "[abs](https://a.example/x) [rel](/about) [anchor](#top) [proto](//cdn.example/y) "
        "<https://auto.example> [mail](mailto:a@b.example)\n\n"
        '<p><a href="https://html.example">html</a> <img src="a.png" alt="A chart"></p>\n\n'
        "![described](one.png) ![](two.png) inline <img src='b.png'>\n"
    )
    result = metrics(body)
    assert result["links"] == {"total": 7, "external": 4}
    assert result["images"] == {"total": 4, "with_alt": 2, "alt_coverage": 50.0}
    [warning] = [w for w in result["warnings"] if w["code"] == "images_missing_alt"]
    assert warning["message"].startswith("Two images have no alt text;")
    none = metrics("No images.")
    assert none["images"] == {"total": 0, "with_alt": 0, "alt_coverage": None}
    assert "images_missing_alt" not in codes(none)
    one = metrics("![](x.png)")
    assert "One image has no alt text;" in str(one["warnings"])


def test_a_clean_post_has_no_warnings_and_is_json() -> None:
    body = (
        "Bicycle lanes make the city calmer. We rode them all week, to work and back, in "
        "sun and in rain, and we took notes each day.\n\n"
        "## What changed\n\nThe new paths are wide. Cars stay out. Kids ride to school on "
        "their own now, and shops on the main street say they see more people.\n\n"
        "![A wide green bicycle lane](lane.png)"
    )
    result = metrics(body, keywords=["bicycle"])
    assert result["warnings"] == []
    assert json.loads(json.dumps(result)) == result
    assert result["limits"]["title_max_chars"] == seo.TITLE_MAX_CHARS == 60
