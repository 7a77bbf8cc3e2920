"""Reading a feed document into :class:`~herald.sources.entries.Entry` values.

RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 are read by feedparser, which copes with the feeds
found in the wild: any declared or served character encoding, HTML entities, CDATA, and
documents that are not well-formed XML (it then says so, ``bozo``, and reads what it
can; we keep its reason in :attr:`FeedDocument.problem`). JSON Feed 1.0 and 1.1 are read
here by their spec (https://www.jsonfeed.org/version/1.1/): feedparser 6.0 does not read
JSON.

Each entry keeps what the feed says, and nothing it does not: the id as written (RSS
``<guid>``, Atom ``<id>``, JSON Feed ``id``), links made absolute against ``xml:base``
and the feed's URL, the title as plain text, the summary sanitised, and dates in UTC or
None (never "now": an undated item stays undated).

Errors::

    HeraldError
    └── NotAFeed     422: the document is no feed (an HTML page, JSON that is not a JSON
                     Feed, an empty answer...)
"""

from __future__ import annotations

import calendar
import contextlib
import html as html_lib
import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser
import nh3

from herald.core.errors import HeraldError
from herald.sources.discovery import absolute_url, looks_like_html
from herald.sources.entries import Entry, plain_text, sanitise

# A summary's source is cut here before it is sanitised: an item is shown as a teaser,
# and a feed carrying whole books per item must not cost a whole book per item.
SUMMARY_SOURCE_MAX = 20_000
# An untitled item is titled by the first words of its summary.
TITLE_WORDS = 12
TITLE_MAX = 300

_SY_PERIODS = {
    "hourly": 3600,
    "daily": 86_400,
    "weekly": 7 * 86_400,
    "monthly": 30 * 86_400,
    "yearly": 365 * 86_400,
}
_JSON_TYPES = ("application/feed+json", "application/json")
_JSON_FEED_PREFIX = "https://jsonfeed.org/version/"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


class NotAFeed(HeraldError):
    status_code = 422
    slug = "not-a-feed"


@dataclass(frozen=True)
class FeedDocument:
    format: str  # "rss", "atom" or "json"
    version: str  # feedparser's names ("rss20", "atom10"...), "json10", "json11"
    title: str | None
    link: str | None  # the site's home page
    entries: list[Entry]  # site="feed", in document order
    ttl_seconds: int | None  # RSS <ttl>, or <sy:updatePeriod>/<sy:updateFrequency>
    problem: str | None  # why feedparser found the document malformed, though it read it


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> FeedDocument:
    """Read ``body`` (fetched from ``url``, served as ``content_type``). Raises
    :class:`NotAFeed` when it holds no feed."""
    if not body.strip():
        raise NotAFeed(f"{url} answered with an empty document, not a feed")
    if _is_json(body, content_type):
        return _parse_json_feed(body, url)
    if looks_like_html(body, content_type):
        raise NotAFeed(f"{url} is an HTML page, not a feed")
    return _parse_xml_feed(body, url, content_type)


# --- RSS and Atom ----------------------------------------------------------------------


def _parse_xml_feed(body: bytes, url: str, content_type: str | None) -> FeedDocument:
    headers = {"content-type": content_type} if content_type else {}
    # A stream, never bytes or str: feedparser opens a str or bytes that looks like a URL
    # or a file name. No Content-Location either: it would resolve RSS <guid>s that are
    # not URLs ("post-12") against the feed's URL, so an item's id would change when the
    # feed moves. Links are made absolute here instead.
    # Its own HTML sanitiser and URL resolver are off: summaries go through nh3 below
    # (sanitise(), with relative URLs resolved there), which costs a fraction of theirs.
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    version: str = parsed.get("version") or ""
    raw_entries: list[Any] = list(parsed.get("entries") or [])
    problem = _problem(parsed)
    if not version and not raw_entries:
        raise NotAFeed(
            f"{url} is not a feed (RSS, Atom or JSON Feed)" + (f": {problem}" if problem else "")
        )
    feed: Mapping[str, Any] = parsed.get("feed") or {}
    feed_author = _text(_raw(feed, "author"))
    entries = [e for raw in raw_entries if (e := _xml_entry(raw, url, feed_author)) is not None]
    return FeedDocument(
        format="atom" if version.startswith("atom") else "rss",
        version=version or "unknown",
        title=_title(feed) or None,
        link=_absolute(url, _raw(feed, "link")),
        entries=entries,
        ttl_seconds=_ttl_seconds(feed),
        problem=problem,
    )


def _problem(parsed: Mapping[str, Any]) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "the document is malformed"
    return f"{type(exc).__name__}: {exc}"


def _xml_entry(raw: Mapping[str, Any], url: str, feed_author: str | None) -> Entry | None:
    # The summary (RSS <description>, Atom <summary>) first; else the full content.
    contents = _raw(raw, "content") or [{}]
    source = _raw(raw, "summary_detail") or contents[0]
    if not source.get("value") and _raw(raw, "summary"):
        # feedparser copies an Atom entry's content into "summary" without a detail.
        source = {**contents[0], "value": _raw(raw, "summary")}
    base = _absolute(url, source.get("base")) or url
    summary_html, summary_text = _summary(
        source.get("value") or "", source.get("type") or "text/html", base
    )
    published = _struct_time(_raw(raw, "published_parsed"))
    updated = _struct_time(_raw(raw, "updated_parsed"))
    return _entry(
        title=_title(raw),
        guid=_text(_raw(raw, "id")),
        link=_absolute(url, _raw(raw, "link")),
        summary_html=summary_html,
        summary_text=summary_text,
        author=_text(_raw(raw, "author")) or feed_author,
        # RSS 1.0's dc:date and an Atom entry without <published> say only "updated":
        # that is the date the feed gives the item.
        published_at=published or updated,
        updated_at=updated,
        comments_url=_absolute(url, _raw(raw, "comments")),
        extra=_tags(raw),
    )


def _raw(node: Mapping[str, Any], key: str) -> Any:
    """What feedparser stored under ``key`` itself. FeedParserDict's own lookups map names
    onto others ("updated" falls back to "published", with a DeprecationWarning)."""
    return dict.get(node, key) if isinstance(node, dict) else node.get(key)


def _title(node: Mapping[str, Any]) -> str:
    detail = _raw(node, "title_detail") or {}
    value = _raw(node, "title") or ""
    if not isinstance(value, str):
        return ""
    if (detail.get("type") or "text/plain") in _HTML_TYPES:
        return plain_text(value)
    return " ".join(value.split())


def _tags(raw: Mapping[str, Any]) -> dict[str, Any]:
    terms = [t.get("term") for t in _raw(raw, "tags") or [] if isinstance(t, Mapping)]
    tags = [t for t in terms if isinstance(t, str) and t.strip()]
    return {"tags": tags} if tags else {}


def _struct_time(value: Any) -> datetime | None:
    """feedparser's dates are struct_times in UTC."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _ttl_seconds(feed: Mapping[str, Any]) -> int | None:
    hints: list[int] = []
    ttl = _text(_raw(feed, "ttl"))
    if ttl and ttl.isascii() and ttl.isdigit():
        hints.append(int(ttl) * 60)
    period = (_text(_raw(feed, "sy_updateperiod")) or "").lower()
    if period in _SY_PERIODS:
        frequency = _text(_raw(feed, "sy_updatefrequency")) or "1"
        times = int(frequency) if frequency.isascii() and frequency.isdigit() else 1
        hints.append(_SY_PERIODS[period] // max(1, times))
    return max(hints) if hints else None


# --- JSON Feed -------------------------------------------------------------------------


def _is_json(body: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind in _JSON_TYPES or kind.endswith("+json") or body.lstrip()[:1] == b"{"


def _parse_json_feed(body: bytes, url: str) -> FeedDocument:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAFeed(f"{url} is not a feed: its JSON cannot be read ({exc})") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith(_JSON_FEED_PREFIX):
        raise NotAFeed(f"{url} is JSON but not a JSON Feed (no jsonfeed.org version)")
    number = version.removeprefix(_JSON_FEED_PREFIX).strip("/")
    items = data.get("items")
    if not isinstance(items, list):
        raise NotAFeed(f"{url} is a JSON Feed without an items list")
    # Relative URLs in a JSON Feed are read against the feed's own URL.
    base = _absolute(url, data.get("feed_url")) or url
    feed_author = _json_authors(data)
    entries = [
        e
        for item in items
        if isinstance(item, dict) and (e := _json_entry(item, base, feed_author)) is not None
    ]
    return FeedDocument(
        format="json",
        version="json10" if number == "1" else "json" + number.replace(".", ""),
        title=_plain(data.get("title")),
        link=_absolute(base, data.get("home_page_url")),
        entries=entries,
        ttl_seconds=None,
        problem=None,
    )


def _json_entry(item: Mapping[str, Any], base: str, feed_author: str | None) -> Entry | None:
    # The spec: an id that is a number (or another type) is read as a string.
    raw_id = item.get("id")
    guid = None if raw_id is None or isinstance(raw_id, dict | list) else str(raw_id).strip()
    summary = _text(item.get("summary"))
    if summary:  # plain text by the spec
        source = html_lib.escape(summary)
    elif _text(item.get("content_html")):
        source = str(item["content_html"])
    else:
        source = html_lib.escape(_text(item.get("content_text")) or "")
    summary_html, summary_text = _summary(source, "text/html", base)
    return _entry(
        title=_plain(item.get("title")) or "",
        guid=guid or None,
        link=_absolute(base, item.get("url")) or _absolute(base, item.get("external_url")),
        summary_html=summary_html,
        summary_text=summary_text,
        author=_json_authors(item) or feed_author,
        published_at=_rfc3339(item.get("date_published")),
        updated_at=_rfc3339(item.get("date_modified")),
        comments_url=None,
        extra=_json_tags(item),
    )


def _json_authors(node: Mapping[str, Any]) -> str | None:
    """1.1's ``authors`` list, else 1.0's ``author`` object: the names, comma-separated."""
    authors = node.get("authors")
    if not isinstance(authors, list):
        authors = [node.get("author")]
    names = [_plain(a.get("name")) for a in authors if isinstance(a, dict)]
    return ", ".join(n for n in names if n) or None


def _json_tags(item: Mapping[str, Any]) -> dict[str, Any]:
    tags = item.get("tags")
    if not isinstance(tags, list):
        return {}
    kept = [t.strip() for t in tags if isinstance(t, str) and t.strip()]
    return {"tags": kept} if kept else {}


def _rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:  # RFC 3339 requires an offset; a feed that omits it means UTC
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


# --- shared ----------------------------------------------------------------------------


def _entry(
    *,
    title: str,
    guid: str | None,
    link: str | None,
    summary_html: str,
    summary_text: str,
    author: str | None,
    published_at: datetime | None,
    updated_at: datetime | None,
    comments_url: str | None,
    extra: dict[str, Any],
) -> Entry | None:
    if not title:
        # Untitled: its first words, else its address, so a person sees something.
        title = _first_words(summary_text) or link or ""
    if not (title or guid or link or summary_text):
        return None  # an empty <item/>: nothing to show, nothing to key it by
    return Entry(
        site="feed",
        title=title[:TITLE_MAX],
        guid=guid,
        link=link,
        summary_html=summary_html,
        summary_text=summary_text,
        author=author,
        published_at=published_at,
        updated_at=updated_at,
        comments_url=comments_url,
        extra=extra,
    )


def _summary(source: str, kind: str, base: str) -> tuple[str, str]:
    if kind not in _HTML_TYPES:
        source = html_lib.escape(source)
    source = source[:SUMMARY_SOURCE_MAX]
    if "href" in source or "src" in source:
        # Relative href/src made absolute against the element's base before sanitising
        # (a summary is shown away from its site); nh3's defaults keep both attributes.
        # A base nh3 cannot use leaves them as they are.
        with contextlib.suppress(ValueError):
            source = nh3.clean(source, url_relative=("rewrite_with_base", base))
    return sanitise(source)


def _first_words(text: str) -> str:
    words = text.split()
    if len(words) <= TITLE_WORDS:
        return " ".join(words)
    return " ".join(words[:TITLE_WORDS]) + "…"


def _absolute(base: str, link: Any) -> str | None:
    value = _text(link)
    return absolute_url(base, value) if value else None


def _text(value: Any) -> str | None:
    """A string value, stripped; None when it is absent, empty or not a string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _plain(value: Any) -> str | None:
    text = _text(value)
    return " ".join(text.split()) if text else None
