"""A model's Markdown answer made into a draft: title, body, excerpt and a short variant.

Models mostly do as the prompt asks (a '# ' title, links to the items), but not always:
the title falls back to the topic, and when the answer leaves out some of the items'
links a "Sources" section listing every item (link and attribution) is appended, so a
draft never goes out without crediting what it drew on. markdown-it reads the answer,
so a '#' inside a code block or a link in a code span is not mistaken for either.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from herald.agents.prompt import cut
from herald.agents.providers.base import Draft, GenerationRequest, SourceText

EXCERPT_CHARS = 300
SHORT_CHARS = 280


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _plain(inline: Token) -> str:
    """An inline token's text, without its markup."""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)  # its alt text
    return " ".join("".join(parts).split())


def _links(tokens: list[Token]) -> list[str]:
    found: list[str] = []
    for token in tokens:
        for child in token.children or []:
            href = child.attrGet("href") if child.type == "link_open" else None
            if isinstance(href, str) and href not in found:
                found.append(href)
    return found


def _same_link(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _attribution(item: SourceText) -> str:
    label = item.title.strip() or item.link or "an item"
    line = f"[{label}]({item.link})" if item.link else label
    credit = ", ".join(part for part in (item.source_name, item.author) if part)
    return f"- {line}" + (f" — {credit}" if credit else "")


def _fallback_title(request: GenerationRequest) -> str:
    if request.topic.strip():
        return request.topic.strip()
    return request.items[0].title.strip() if request.items else "Draft"


def draft_from_markdown(markdown: str, request: GenerationRequest) -> Draft:
    """The draft in ``markdown`` (a model's answer) for ``request``; see the module doc."""
    tokens = _markdown().parse(markdown)
    lines = markdown.splitlines()
    title: str | None = None
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and token.map is not None:
            title = _plain(tokens[index + 1])
            start, end = token.map
            before, after = "\n".join(lines[:start]).strip(), "\n".join(lines[end:]).strip()
            lines = [part for part in (before, after) if part]
            break
    body = "\n\n".join(lines).strip() if title is not None else markdown.strip()
    tokens = _markdown().parse(body)
    links = _links(tokens)

    missing = [
        item
        for item in request.items
        if item.link and not any(_same_link(item.link, link) for link in links)
    ]
    if missing:
        sources = "\n".join(_attribution(item) for item in request.items)
        body = f"{body}\n\n## Sources\n\n{sources}".strip()
        links += [item.link for item in missing if item.link]

    title = title or _fallback_title(request)
    first_paragraph = next(
        (
            _plain(tokens[i + 1])
            for i, t in enumerate(tokens)
            if t.type == "paragraph_open" and t.level == 0
        ),
        "",
    )
    return Draft(
        title=title,
        body=body + "\n" if body else "",
        excerpt=cut(first_paragraph, EXCERPT_CHARS),
        short_text=short_text(title, links[0] if links else None),
    )


def short_text(title: str, link: str | None) -> str:
    """The title and the first link, within :data:`SHORT_CHARS` (the title is cut, never
    the link; a link too long to fit is left out)."""
    if link and len(link) + 2 <= SHORT_CHARS:
        return f"{cut(title, SHORT_CHARS - len(link) - 1)} {link}"
    return cut(title, SHORT_CHARS)
