"""SEO metrics of a post, computed on every save and kept in ``posts.seo``.

:func:`compute` reads the Markdown as markdown-it's token stream (the same parser the
adapters render with), so a ``#`` inside a code block is not a heading and a link's
address is not read as words. Every number a warning compares against is in the block
below, with what it stands for; docs/agents.md repeats them for writers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from textstat.backend import metrics as textstat_metrics

# --- thresholds: every limit a warning uses --------------------------------------------

# Search results show about 600 px of a title, which is about 60 characters.
TITLE_MAX_CHARS = 60
# A meta description (the excerpt) under ~50 characters says too little to earn a click;
# results cut it after ~160.
META_DESCRIPTION_MIN_CHARS = 50
META_DESCRIPTION_MAX_CHARS = 160
# Silent reading of non-fiction by adults: 238 words a minute (Brysbaert, "How many words
# do we read per minute? A review and meta-analysis of reading rate", 2019).
WORDS_PER_MINUTE = 238
# A keyword taking more than ~3% of the words reads as stuffing, to people and to search
# engines alike.
KEYWORD_DENSITY_MAX_PERCENT = 3.0
# Flesch reading ease under 30 is "very difficult" (university graduates) on Flesch's
# scale; the adapted formulas keep the scale.
READING_EASE_HARD = 30.0
# The title is the page's H1: a page should have exactly one.
H1_MAX = 1

# Readability formulas textstat 0.7.8 carries constants for: Flesch's reading ease,
# adapted per language. The Flesch-Kincaid grade is a US school grade: English only.
READABILITY_FORMULAS: dict[str, str] = {
    "en": "Flesch (1948)",
    "de": "Amstad (1978)",
    "es": "Fernández Huerta (1959)",
    "fr": "Kandel & Moles (1958)",
    "it": "Flesch-Vacca (1972)",
    "nl": "Flesch-Douma (1960)",
    "ru": "Oborneva (2006)",
}
# What textstat calls each language (its hyphenation dictionaries are named so).
_TEXTSTAT_LANGUAGE = {"en": "en_US"}

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_SENTENCE_END = (".", "!", "?", "…", ":", ";")
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@cache
def _markdown() -> MarkdownIt:
    # As the adapters read it: CommonMark with raw HTML, tables and strikethrough.
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def language_root(language: str | None) -> str:
    """ "pt-BR" -> "pt"; a post with no language is read as English."""
    root = (language or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return root or "en"


@dataclass
class _Reading:
    blocks: list[str] = field(default_factory=list)  # prose, one entry per block
    headings: list[int] = field(default_factory=list)  # levels, in order
    links: int = 0
    external_links: int = 0
    images: int = 0
    images_with_alt: int = 0

    def link(self, href: str | None) -> None:
        if href is None:
            return
        self.links += 1
        parts = urlsplit(href.strip())
        if (parts.scheme.lower() in ("http", "https") and parts.netloc) or href.startswith("//"):
            self.external_links += 1

    def image(self, alt: str | None) -> None:
        self.images += 1
        if alt and alt.strip():
            self.images_with_alt += 1


class _HtmlCounter(HTMLParser):
    """Links and images written as raw HTML inside the Markdown."""

    def __init__(self, reading: _Reading) -> None:
        super().__init__(convert_charrefs=True)
        self.reading = reading

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.reading.image(values.get("alt"))
        elif tag == "a" and values.get("href"):
            self.reading.link(values.get("href"))


def _read(markdown: str) -> _Reading:
    reading = _Reading()
    html = _HtmlCounter(reading)
    for token in _markdown().parse(markdown):
        if token.type == "heading_open":
            reading.headings.append(int(token.tag[1:]))
        elif token.type == "inline":
            text = _inline_text(token.children or [], reading, html)
            if text.strip():
                reading.blocks.append(text.strip())
        elif token.type == "html_block":
            html.feed(token.content)
    html.close()
    return reading


def _inline_text(children: list[Token], reading: _Reading, html: _HtmlCounter) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "link_open":
            href = child.attrGet("href")
            reading.link(str(href) if href is not None else None)
        elif child.type == "image":
            # An image's alt text describes it; it is not read as part of the prose.
            reading.image(child.content)
        elif child.type == "html_inline":
            html.feed(child.content)
    return "".join(parts)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _occurrences(words: list[str], phrase: str) -> int:
    wanted = _words(phrase)
    size = len(wanted)
    if not size:
        return 0
    return sum(1 for i in range(len(words) - size + 1) if words[i : i + size] == wanted)


def _readable(blocks: list[str]) -> str:
    # A heading or a list item is a sentence of its own: give it an end, or textstat runs
    # it into the next one.
    return " ".join(b if b.endswith(_SENTENCE_END) else f"{b}." for b in blocks)


def _readability(text: str, root: str) -> tuple[float | None, float | None]:
    if root not in READABILITY_FORMULAS or not text:
        return None, None
    language = _TEXTSTAT_LANGUAGE.get(root, root)
    # textstat's per-call functions take the language as an argument; its textstat object
    # keeps one language for the whole process, which concurrent requests would share.
    ease = round(float(textstat_metrics.flesch_reading_ease(text, language)), 1)
    grade = None
    if root == "en":
        grade = round(float(textstat_metrics.flesch_kincaid_grade(text, language)), 1)
    return ease, grade


def _count(n: int, singular: str, plural: str) -> str:
    """ "Two images", "One image", "12 images": a count as the start of a sentence."""
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    return f"{word.capitalize()} {singular if n == 1 else plural}"


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        if value.strip():
            seen.setdefault(value.strip().lower(), value.strip())
    return list(seen.values())


def compute(
    title: str,
    body_markdown: str,
    excerpt: str | None,
    keywords: list[str],
    language: str | None,
) -> dict[str, Any]:
    """The SEO metrics of a post, as JSON-able values (see docs/agents.md for each key)."""
    reading = _read(body_markdown)
    words = _words(" ".join(reading.blocks))
    word_count = len(words)
    root = language_root(language)
    ease, grade = _readability(_readable(reading.blocks), root)
    keywords = _unique(keywords)
    occurrences = {k: _occurrences(words, k) for k in keywords}
    density = {
        k: round(100.0 * n / word_count, 2) if word_count else 0.0 for k, n in occurrences.items()
    }
    title_length = len(title.strip())
    description_length = len((excerpt or "").strip())
    counts = {f"h{level}": reading.headings.count(level) for level in range(1, 7)}
    h1_count = counts["h1"] + (1 if title.strip() else 0)
    skip = _first_skip(reading.headings)
    alt_coverage = (
        round(100.0 * reading.images_with_alt / reading.images, 1) if reading.images else None
    )

    warnings: list[dict[str, str]] = []

    def warn(code: str, message: str) -> None:
        warnings.append({"code": code, "message": message})

    if title_length > TITLE_MAX_CHARS:
        warn(
            "title_too_long",
            f"The title is {title_length} characters; search results cut titles after "
            f"about {TITLE_MAX_CHARS}.",
        )
    if not description_length:
        warn(
            "meta_description_missing",
            "There is no excerpt, so search engines pick a snippet themselves; write one of "
            f"{META_DESCRIPTION_MIN_CHARS}-{META_DESCRIPTION_MAX_CHARS} characters.",
        )
    elif description_length < META_DESCRIPTION_MIN_CHARS:
        warn(
            "meta_description_too_short",
            f"The excerpt is {description_length} characters; a description of "
            f"{META_DESCRIPTION_MIN_CHARS}-{META_DESCRIPTION_MAX_CHARS} characters tells "
            "searchers more.",
        )
    elif description_length > META_DESCRIPTION_MAX_CHARS:
        warn(
            "meta_description_too_long",
            f"The excerpt is {description_length} characters; search results cut "
            f"descriptions after about {META_DESCRIPTION_MAX_CHARS}.",
        )
    if h1_count > H1_MAX:
        extra = counts["h1"]
        warn(
            "extra_h1",
            f"{_count(extra, 'H1 heading is', 'H1 headings are')} in the body; the title is "
            "already the page's H1, so make " + ("it an H2." if extra == 1 else "them H2s."),
        )
    if skip:
        above, below = skip
        warn(
            "heading_level_skipped",
            f"A heading jumps from H{above} to H{below}; make it an H{above + 1} or add an "
            f"H{above + 1} above it.",
        )
    for keyword in keywords:
        if occurrences[keyword] == 0:
            warn(
                "keyword_missing",
                f"Keyword '{keyword}' appears 0 times; mention it in the first paragraph.",
            )
        elif density[keyword] > KEYWORD_DENSITY_MAX_PERCENT:
            warn(
                "keyword_stuffing",
                f"Keyword '{keyword}' makes up {density[keyword]}% of the words; above about "
                f"{KEYWORD_DENSITY_MAX_PERCENT:g}% it reads as stuffing. Use it less or vary "
                "the wording.",
            )
    missing_alt = reading.images - reading.images_with_alt
    if missing_alt:
        warn(
            "images_missing_alt",
            f"{_count(missing_alt, 'image has', 'images have')} no alt text; describe each "
            "for readers who cannot see it and for image search.",
        )
    if root not in READABILITY_FORMULAS:
        supported = ", ".join(sorted(READABILITY_FORMULAS))
        warn(
            "readability_unavailable",
            f"Readability is not scored for language '{root}'; it is for {supported}.",
        )
    elif ease is not None and word_count and ease < READING_EASE_HARD:
        warn(
            "hard_to_read",
            f"Reading ease is {ease:g} (very difficult; {READING_EASE_HARD:g} and above is "
            "easier); shorter sentences and plainer words help.",
        )

    return {
        "language": root,
        "word_count": word_count,
        # Rounded up: a 30-second read is "1 minute", an empty post 0.
        "reading_time_minutes": math.ceil(word_count / WORDS_PER_MINUTE),
        "flesch_reading_ease": ease,
        "flesch_kincaid_grade": grade,
        "readability_formula": READABILITY_FORMULAS.get(root),
        "keywords": keywords,
        "keyword_occurrences": occurrences,
        "keyword_density": density,
        "title_length": title_length,
        "meta_description_length": description_length,
        "headings": {"counts": counts, "h1_count": h1_count, "levels_in_order": skip is None},
        "links": {"total": reading.links, "external": reading.external_links},
        "images": {
            "total": reading.images,
            "with_alt": reading.images_with_alt,
            "alt_coverage": alt_coverage,
        },
        "limits": {
            "title_max_chars": TITLE_MAX_CHARS,
            "meta_description_min_chars": META_DESCRIPTION_MIN_CHARS,
            "meta_description_max_chars": META_DESCRIPTION_MAX_CHARS,
            "keyword_density_max_percent": KEYWORD_DENSITY_MAX_PERCENT,
            "words_per_minute": WORDS_PER_MINUTE,
        },
        "warnings": warnings,
    }


def _first_skip(levels: list[int]) -> tuple[int, int] | None:
    """The first heading that goes more than one level deeper than the one before it; the
    title counts as the H1 everything starts below."""
    above = 1
    for level in levels:
        if level > above + 1:
            return above, level
        above = level
    return None
