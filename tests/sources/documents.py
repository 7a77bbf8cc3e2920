"""Feed documents the check tests change between checks: the same items written as RSS
2.0, Atom 1.0 or JSON Feed 1.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Item:
    n: int
    title: str = ""
    body: str = ""

    @property
    def id(self) -> str:
        return f"https://news.example.org/posts/{self.n}"

    @property
    def when(self) -> datetime:
        return T0 + timedelta(hours=self.n)

    @property
    def heading(self) -> str:
        return self.title or f"Post number {self.n}"

    @property
    def text(self) -> str:
        return self.body or f"What happened in post {self.n}, in a sentence."


def items(*numbers: int) -> list[Item]:
    return [Item(n) for n in numbers]


def rss(entries: Sequence[Item]) -> str:
    parts = "".join(
        f"<item><title>{escape(i.heading)}</title><link>{i.id}</link>"
        f'<guid isPermaLink="true">{i.id}</guid>'
        f"<pubDate>{format_datetime(i.when)}</pubDate>"
        f"<description>{escape(i.text)}</description></item>"
        for i in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Example News</title><link>https://news.example.org/</link>"
        f"<description>News</description>{parts}</channel></rss>"
    )


def atom(entries: Sequence[Item]) -> str:
    parts = "".join(
        f"<entry><title>{escape(i.heading)}</title><id>{i.id}</id>"
        f'<link href="{i.id}"/><updated>{i.when.isoformat()}</updated>'
        f"<published>{i.when.isoformat()}</published>"
        f"<summary>{escape(i.text)}</summary></entry>"
        for i in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Example News</title><id>urn:example:news</id>"
        f"<updated>{T0.isoformat()}</updated>{parts}</feed>"
    )


def jsonfeed(entries: Sequence[Item]) -> str:
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Example News",
            "home_page_url": "https://news.example.org/",
            "items": [
                {
                    "id": i.id,
                    "url": i.id,
                    "title": i.heading,
                    "content_text": i.text,
                    "date_published": i.when.isoformat(),
                }
                for i in entries
            ],
        }
    )


FORMATS: dict[str, tuple[Callable[[Sequence[Item]], str], str]] = {
    "rss": (rss, "application/rss+xml; charset=utf-8"),
    "atom": (atom, "application/atom+xml; charset=utf-8"),
    "json": (jsonfeed, "application/feed+json"),
}
