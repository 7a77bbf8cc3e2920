"""Markdown to a chat platform's own markup (Slack's mrkdwn, Discord's Markdown dialect),
by walking markdown-it's tokens; each platform subclasses :class:`ChatMarkup`."""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import ClassVar

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from herald.adapters.text import find_urls


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


class ChatMarkup(ABC):
    """Markdown to a chat platform's own markup, by walking markdown-it's tokens.

    Subclasses say how each element is written. Images are dropped (they travel as
    media), raw HTML keeps only its text, tables become ``a | b`` lines.
    """

    bold: ClassVar[tuple[str, str]] = ("*", "*")
    italic: ClassVar[tuple[str, str]] = ("_", "_")
    strike: ClassVar[tuple[str, str]] = ("~", "~")
    rule: ClassVar[str] = "———"

    def escape_text(self, text: str) -> str:
        return text

    def bare_url(self, url: str) -> str:
        return url

    @abstractmethod
    def link(self, label: str, href: str) -> str:
        """A link as the platform writes it."""

    def code(self, text: str) -> str:
        return f"`{self.escape_text(text)}`" if "`" not in text else self.escape_text(text)

    def fence(self, code: str, language: str) -> str:
        return f"```\n{self.escape_text(code)}\n```"

    def heading(self, text: str, level: int) -> str:
        return f"{self.bold[0]}{text}{self.bold[1]}"

    def paragraph(self, text: str) -> str:
        return text

    def escape(self, text: str) -> str:
        """Plain text for the platform; URLs in it stay whole and clickable."""
        pieces: list[str] = []
        position = 0
        for start, end in find_urls(text):
            pieces += [self.escape_text(text[position:start]), self.bare_url(text[start:end])]
            position = end
        pieces.append(self.escape_text(text[position:]))
        return "".join(pieces)

    def inline(self, children: list[Token]) -> str:
        marks = {
            "strong_open": self.bold[0],
            "strong_close": self.bold[1],
            "em_open": self.italic[0],
            "em_close": self.italic[1],
            "s_open": self.strike[0],
            "s_close": self.strike[1],
            "softbreak": " ",
            "hardbreak": "\n",
        }
        out: list[str] = []
        links: list[tuple[str, int]] = []
        for child in children:
            kind = child.type
            if kind == "text":
                out.append(self.escape(child.content))
            elif kind == "code_inline":
                out.append(self.code(child.content))
            elif kind in marks:
                out.append(marks[kind])
            elif kind == "link_open":
                links.append((str(child.attrGet("href") or ""), len(out)))
            elif kind == "link_close" and links:
                href, start = links.pop()
                label = "".join(out[start:]).strip()
                del out[start:]
                out.append(self.link(label, href) if href else label)
            # images travel as media; inline HTML is dropped
        return "".join(out).strip()

    def render(self, markdown: str) -> str:
        page = _Page()
        for token in _markdown().parse(markdown):
            kind = token.type
            if page.structure(token):
                continue
            if kind == "inline":
                text = self.inline(token.children or [])
                if page.rows is not None:
                    page.rows[-1].append(text)
                elif page.heading:
                    page.emit(self.heading(text, page.heading))
                else:
                    page.emit(text if page.lists else self.paragraph(text))
            elif kind == "table_close" and page.rows is not None:
                page.emit("\n".join(" | ".join(row) for row in page.rows))
                page.rows = None
            elif kind in ("fence", "code_block"):
                page.emit(self.fence(token.content.rstrip("\n"), (token.info or "").strip()))
            elif kind == "hr":
                page.emit(self.rule)
            elif kind == "html_block":
                stripped = nh3.clean(token.content, tags=set()).strip()
                page.emit(self.escape(html.unescape(stripped)))
        return page.text()


class _Page:
    """Blocks of chat text as :meth:`ChatMarkup.render` walks the tokens: list markers
    and indents, quote prefixes, and where a table is being collected."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, int]] = []  # (text, which list it is in; 0: none)
        self.lists: list[list[int | None]] = []  # per open list: the next number, or None
        self.outer_lists = 0
        self.marker = ""
        self.quote = 0
        self.heading = 0
        self.rows: list[list[str]] | None = None

    def structure(self, token: Token) -> bool:
        """Follow an opening or closing token; False for tokens that carry content."""
        kind = token.type
        if kind == "heading_open":
            self.heading = int(token.tag[1:])
        elif kind == "heading_close":
            self.heading = 0
        elif kind in ("bullet_list_open", "ordered_list_open"):
            self.outer_lists += not self.lists
            start = token.attrGet("start") if kind == "ordered_list_open" else None
            self.lists.append([int(start or 1) if kind == "ordered_list_open" else None])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
        elif kind == "list_item_open" and self.lists:
            number = self.lists[-1][0]
            self.marker = "• " if number is None else f"{number}. "
            if number is not None:
                self.lists[-1][0] = number + 1
        elif kind in ("blockquote_open", "blockquote_close"):
            self.quote += 1 if kind == "blockquote_open" else -1
        elif kind == "table_open":
            self.rows = []
        elif kind == "tr_open" and self.rows is not None:
            self.rows.append([])
        else:
            return False
        return True

    def emit(self, text: str) -> None:
        if not text:
            return
        if self.lists:
            indent = "   " * (len(self.lists) - 1)
            lead = indent + (self.marker or "   ")
            text = lead + text.replace("\n", "\n" + indent + "   ")
            self.marker = ""
        if self.quote:
            text = "\n".join("> " + line for line in text.split("\n"))
        self.blocks.append((text, self.outer_lists if self.lists else 0))

    def text(self) -> str:
        out = ""
        for index, (text, in_list) in enumerate(self.blocks):
            if index:
                # Items of one list sit on consecutive lines; other blocks a blank line apart.
                out += "\n" if in_list and self.blocks[index - 1][1] == in_list else "\n\n"
            out += text
        return out.strip()


# -- Slack -------------------------------------------------------------------------------
