"""What every kind of source reads into, before it is stored: an :class:`Entry` per
item, and its identity.

An item's **key** is the one thing that says two reads are the same item (docs/sources.md):

1. the id the source gives (RSS ``<guid>``, Atom ``<id>``, JSON Feed ``id``, a Reddit
   ``name``, a Hacker News ``objectID``, a Discourse post id), when it gives one;
2. else its link, normalised (scheme and host lower-cased, default port, fragment and
   tracking parameters dropped, query sorted);
3. else a hash of its title and content.

Its **content hash** says whether the same item changed: an edited item keeps its key
and gets a new hash, so it is updated, never stored twice. Neither depends on dates, so
feeds out of date order, undated items and items published in the same second all keep
their identity.
"""

from __future__ import annotations

import hashlib
import html as html_lib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nh3

# Query parameters that say where a click came from, not what the page is.
_TRACKING_PREFIXES = ("utm_",)
_TRACKING = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid", "ref_src", "igshid", "yclid"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

KEY_MAX = 512


@dataclass(frozen=True)
class Entry:
    """One item as a source gives it. ``summary_html`` is already sanitised
    (:func:`sanitise`); times are aware UTC datetimes or None when the source has none."""

    site: str  # "feed", "reddit", "hackernews", "discourse"
    title: str
    guid: str | None = None
    link: str | None = None
    summary_html: str = ""
    summary_text: str = ""
    author: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    score: int | None = None
    comments: int | None = None
    comments_url: str | None = None
    # Anything else the site says that a person may want (subreddit, tags, forum...).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return item_key(self)

    @property
    def content_hash(self) -> str:
        return content_hash(self)


def normalise_link(url: str) -> str:
    """The link as a key: the same page however it was written."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # a port out of range: the link is kept as written
        return url.strip()
    port = port if port and port != _DEFAULT_PORTS.get(scheme) else None
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in _TRACKING and not k.startswith(_TRACKING_PREFIXES)
    )
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def _digest(*parts: str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogatepass"))
        hasher.update(b"\x00")
    return hasher.hexdigest()


def item_key(entry: Entry) -> str:
    """The item's identity (module docstring): ``id:…``, ``link:…`` or ``hash:…``."""
    if entry.guid and entry.guid.strip():
        key = f"id:{entry.guid.strip()}"
    elif entry.link and entry.link.strip():
        key = f"link:{normalise_link(entry.link)}"
    else:
        return f"hash:{_digest(entry.title.strip(), entry.summary_text.strip())}"
    # A key longer than the column is hashed, never cut: two long ids sharing a prefix
    # must stay two items.
    return key if len(key) <= KEY_MAX else f"{key[:3]}sha256:{_digest(key)}"


def content_hash(entry: Entry) -> str:
    """What changes when the item is edited (not its score or comment count, which move
    on their own and are updated in place without counting as an edit)."""
    return _digest(
        entry.title,
        entry.link or "",
        entry.summary_html,
        entry.author or "",
        entry.published_at.isoformat() if entry.published_at else "",
    )


# Tags a summary may keep: text structure and links, no scripts, styles, forms or frames.
_ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em",
        "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
        "li", "ol", "p", "pre", "q", "s", "small", "strong", "sub", "sup", "table",
        "tbody", "td", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}


def sanitise(html: str) -> tuple[str, str]:
    """An item's summary as safe HTML and as plain text (entities decoded, whitespace
    collapsed)."""
    clean = nh3.clean(
        html,
        tags=set(_ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    ).strip()
    return clean, plain_text(clean)


def plain_text(html: str) -> str:
    text = nh3.clean(html.replace("<br>", "\n").replace("</p>", "</p>\n"), tags=set())
    return " ".join(html_lib.unescape(text).split())
