"""Turning a post's Markdown into what platforms take, and long text into threads.

- :func:`markdown_to_html`: sanitised HTML (WordPress, Ghost, Medium).
- :func:`markdown_to_text`: plain text for social platforms; a link becomes its URL
  (``text (url)`` when the text says something else), emphasis marks go.
- :func:`short_variant`: a post's own short text, for the platforms that take one.
- :func:`split_thread`: parts that each fit a limit, cut between paragraphs, else between
  sentences, else between words; never inside a URL; optional ``1/n`` markers.
- :func:`find_urls`: where the URLs are, for link facets and length rules.
- :func:`graphemes`: user-perceived characters (Bluesky counts these).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import nh3
import regex
from markdown_it import MarkdownIt
from markdown_it.token import Token

Measure = Callable[[str], int]

# A URL runs to the next whitespace; trailing punctuation that usually ends a sentence
# (or closes a bracket opened outside the URL) is not part of it.
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?…)]}»\u201d\u2019'\""


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


def markdown_to_html(markdown: str) -> str:
    """CommonMark (+ tables, strikethrough) to HTML, sanitised: no scripts, no handlers."""
    rendered = _markdown().render(markdown)
    return nh3.clean(rendered, link_rel="noopener noreferrer").strip()


def find_urls(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each http(s) URL in ``text``."""
    spans: list[tuple[int, int]] = []
    for match in _URL.finditer(text):
        start, end = match.span()
        while end > start and text[end - 1] in _TRAILING:
            # Keep a closing bracket that belongs to the URL, as in Wikipedia links.
            closing = text[end - 1]
            opening = {")": "(", "]": "[", "}": "{"}.get(closing)
            if opening and text[start:end].count(opening) >= text[start:end].count(closing):
                break
            end -= 1
        if end - start > len("https://"):
            spans.append((start, end))
    return spans


def graphemes(text: str) -> int:
    """User-perceived characters: an emoji with modifiers or a flag counts once."""
    return len(regex.findall(r"\X", text))


# --- Markdown to plain text ------------------------------------------------------------


@dataclass
class _Block:
    lines: list[str]


def _inline_text(token: Token) -> str:
    out: list[str] = []
    link_stack: list[tuple[str, int]] = []
    for child in token.children or []:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind in ("softbreak",):
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "html_inline":
            continue
        elif kind == "image":
            continue  # images travel as media, with their alt text
        elif kind == "link_open":
            link_stack.append((str(child.attrGet("href") or ""), len(out)))
        elif kind == "link_close" and link_stack:
            href, start = link_stack.pop()
            label = "".join(out[start:]).strip()
            del out[start:]
            if not href:
                out.append(label)
            elif not label or _same_link(label, href):
                out.append(href)
            else:
                out.append(f"{label} ({href})")
    return "".join(out)


def _same_link(label: str, href: str) -> bool:
    def bare(value: str) -> str:
        return re.sub(r"^(https?://)?(www\.)?", "", value.strip().rstrip("/"), flags=re.I)

    return bare(label) == bare(href)


def markdown_to_text(markdown: str) -> str:
    """Plain text for platforms that take no markup; paragraphs stay apart."""
    tokens = _markdown().parse(markdown)
    blocks: list[str] = []
    list_stack: list[list[int | None]] = []  # per open list: [next number or None]
    prefix_next = ""
    for token in tokens:
        kind = token.type
        if kind == "bullet_list_open":
            list_stack.append([None])
        elif kind == "ordered_list_open":
            list_stack.append([int(token.attrGet("start") or 1)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_stack.pop()
        elif kind == "list_item_open" and list_stack:
            number = list_stack[-1][0]
            indent = "  " * (len(list_stack) - 1)
            if number is None:
                prefix_next = f"{indent}• "
            else:
                prefix_next = f"{indent}{number}. "
                list_stack[-1][0] = number + 1
        elif kind == "inline":
            text = _inline_text(token).strip()
            if text:
                in_item = bool(list_stack) and prefix_next == "" and blocks
                if prefix_next:
                    blocks.append(prefix_next + text)
                    prefix_next = ""
                elif in_item:
                    blocks[-1] += "\n" + text
                else:
                    blocks.append(text)
        elif kind in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
        elif kind == "html_block":
            stripped = nh3.clean(token.content, tags=set()).strip()
            if stripped:
                blocks.append(html.unescape(stripped))
    # List items sit on consecutive lines; other blocks are separated by a blank line.
    out: list[str] = []
    for block in blocks:
        is_item = bool(re.match(r"^\s*(• |\d+\. )", block))
        if out and is_item and re.match(r"^\s*(• |\d+\. )", out[-1].rsplit("\n", 1)[-1]):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out).strip()


def short_variant(markdown: str | None) -> str:
    """The post's short variant as plain text; empty when it has none (the platform then
    builds its text from the title and body). It replaces both, and goes through the
    same length rules and thread splitting as they would."""
    return markdown_to_text(markdown) if markdown and markdown.strip() else ""


# --- threads -------------------------------------------------------------------------

_SENTENCE_END = re.compile("(?<=[.!?\u2026\u3002\uff01\uff1f])\\s+")  # also CJK full stops


def _pieces(text: str) -> list[tuple[str, str]]:
    """``(separator before, piece)`` from largest to smallest units: paragraphs, then
    sentences inside them; splitting further happens only when a piece is too long."""
    out: list[tuple[str, str]] = []
    for raw in re.split(r"\n\s*\n", text.strip()):
        paragraph = raw.strip()
        if not paragraph:
            continue
        for index, sentence in enumerate(_sentences(paragraph)):
            separator = ("\n\n" if out else "") if index == 0 else " "
            out.append((separator, sentence))
    return out


def _sentences(paragraph: str) -> list[str]:
    # Never cut inside a URL: mask them while looking for sentence ends.
    masked = list(paragraph)
    for start, end in find_urls(paragraph):
        for i in range(start, end):
            if masked[i].isspace() or masked[i] in ".!?…":
                masked[i] = "x"
    cuts = [m.span() for m in _SENTENCE_END.finditer("".join(masked))]
    sentences: list[str] = []
    position = 0
    for start, end in cuts:
        sentences.append(paragraph[position:start])
        position = end
    sentences.append(paragraph[position:])
    return [s for s in (s.strip() for s in sentences) if s]


def _words(sentence: str) -> list[tuple[str, str]]:
    words = sentence.split()
    return [(" " if i else "", word) for i, word in enumerate(words)]


def _hard_split(word: str, limit: int, measure: Measure) -> list[str]:
    """A single word (or URL) longer than a whole part: cut between graphemes."""
    chunks: list[str] = []
    current = ""
    for grapheme in regex.findall(r"\X", word):
        if current and measure(current + grapheme) > limit:
            chunks.append(current)
            current = grapheme
        else:
            current += grapheme
    if current:
        chunks.append(current)
    return chunks


def _pack(pieces: list[tuple[str, str]], limit: int, measure: Measure) -> list[str]:
    parts: list[str] = []
    current = ""
    for separator, piece in pieces:
        candidate = current + separator + piece if current else piece
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
            current = ""
        if measure(piece) <= limit:
            current = piece
            continue
        # Too long on its own: a sentence goes word by word, a word grapheme by grapheme.
        smaller = _words(piece) if len(piece.split()) > 1 else None
        sub = _pack(smaller, limit, measure) if smaller else _hard_split(piece, limit, measure)
        parts.extend(sub[:-1])
        current = sub[-1] if sub else ""
    if current:
        parts.append(current)
    return parts


def split_thread(
    text: str,
    limit: int,
    *,
    measure: Measure = len,
    numbering: bool = True,
) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` (as ``measure`` counts).

    Cuts fall between paragraphs, else sentences, else words; a URL is never cut unless
    it alone is longer than a part. With ``numbering``, each part of a thread of two or
    more ends with `` i/n``, and the room for that marker is kept free in every part.
    """
    text = text.strip()
    if limit <= 0:
        raise ValueError("limit must be positive")
    if not text:
        return []
    if measure(text) <= limit:
        return [text]
    pieces = _pieces(text)
    if not numbering:
        return _pack(pieces, limit, measure)
    digits = 1
    while True:
        widest = "9" * digits
        room = limit - measure(f"\n{widest}/{widest}")
        if room <= 0:
            return _pack(pieces, limit, measure)
        parts = _pack(pieces, room, measure)
        if len(str(len(parts))) <= digits:
            total = len(parts)
            return [f"{part}\n{i}/{total}" for i, part in enumerate(parts, start=1)]
        digits += 1


# --- small helpers for adapters ----------------------------------------------------------


def shorten(text: str, limit: int) -> str:
    """``text`` cut between words to at most ``limit`` characters, with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return split_thread(text, limit - 1, numbering=False)[0].rstrip(" ,;:-") + "…"


def key_digest(idempotency_key: str, length: int = 24) -> str:
    """A short hex stand-in for a delivery's key, for markers a platform keeps with a post
    (a hidden comment, an internal tag) so the post can be found after a lost answer."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:length]
