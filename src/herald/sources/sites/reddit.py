"""Reddit: a subreddit's new posts, or a search (all of Reddit, or one subreddit).

Endpoints (Reddit's listing JSON; ``raw_json=1`` so that ``selftext_html`` comes
unescaped): ``/r/{sub}/new.json``, ``/search.json?q=&sort=new`` and
``/r/{sub}/search.json?q=&sort=new&restrict_sr=on``; ``limit`` at most 100, the next
page by the listing's ``after`` (a fullname, ``t3_…``). A listing is
``{"kind": "Listing", "data": {"after", "children": [{"kind": "t3", "data": {…}}]}}``.

Credentials, optional: ``{"client_id", "client_secret"}`` of a Reddit app. Herald then
takes an app-only token (``POST /api/v1/access_token``, HTTP basic auth,
``grant_type=client_credentials``) and asks ``oauth.reddit.com`` with
``Authorization: bearer …``; the token is kept until shortly before it expires.

Rate limits (Reddit's Data API wiki, support.reddithelp.com "Data API Wiki", and the
``X-Ratelimit-Used/Remaining/Reset`` headers every answer carries): 100 queries per
minute per OAuth client id, averaged over 10 minutes; unauthenticated clients get about
10 per minute. Herald paces one request per 6.5 s without credentials and one per 0.65 s
with them, across all its workers (``base.PACER``), and holds the host until the reset
when ``Remaining`` reaches 0.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from herald.core.errors import InvalidInput
from herald.sources.entries import Entry, sanitise
from herald.sources.sites.base import (
    Answer,
    SiteError,
    SitePage,
    SiteRead,
    as_int,
    as_str,
    endpoints,
    from_epoch,
    get_json,
    shape_error,
)

SITE = "reddit"
FORMAT = "reddit-json"
PAGE = 100  # Reddit's largest listing page
INTERVAL = 6.5  # ~10 requests a minute, unauthenticated
OAUTH_INTERVAL = 0.65  # 100 a minute per OAuth client
# A subreddit's name: letters, digits and underscores, 2 to 21 characters (a few old ones
# are 2); several joined by "+" read as one listing.
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}(\+[A-Za-z0-9][A-Za-z0-9_]{1,20})*$")
_MODES = ("subreddit", "search")
_SETTINGS = frozenset({"mode", "subreddit"})


def _subreddit(value: str, field: str) -> str:
    name = value.strip().strip("/")
    name = re.sub(r"^(?:/?r/)", "", name, flags=re.IGNORECASE)
    if not _SUBREDDIT.match(name):
        raise InvalidInput(
            f"{value!r} is not a subreddit name (letters, digits and underscores, e.g. "
            "'python' or 'r/python')",
            field=field,
        )
    return name


def check_config(
    url: str | None, query: str | None, settings: dict[str, Any]
) -> tuple[str | None, str | None, dict[str, Any]]:
    """``query`` "r/python" (or a subreddit URL) reads the subreddit's new posts; any
    other query is a search, of all Reddit or of ``settings.subreddit``.
    ``settings.mode`` says which when the query alone does not."""
    unknown = set(settings) - _SETTINGS
    if unknown:
        raise InvalidInput(
            f"reddit sources take the settings {sorted(_SETTINGS)}, not {sorted(unknown)}",
            field="settings",
        )
    if url:
        parts = urlsplit(url)
        found = re.match(r"^/r/([^/]+)", parts.path)
        if not (parts.hostname or "").endswith("reddit.com") or not found or query:
            raise InvalidInput(
                "a reddit source takes a subreddit or a search as its query, not a URL "
                "(a subreddit's URL alone is accepted)",
                field="url",
            )
        query = f"r/{found.group(1)}"
    text = (query or "").strip()
    if not text:
        raise InvalidInput(
            "a reddit source needs a query: 'r/python', or words to search", field="query"
        )
    mode = settings.get("mode")
    if mode is not None and mode not in _MODES:
        raise InvalidInput(f"settings.mode is one of {list(_MODES)}", field="settings")
    if mode is None:
        mode = "subreddit" if re.match(r"^/?r/", text, flags=re.IGNORECASE) else "search"
    if mode == "subreddit":
        if "subreddit" in settings:
            raise InvalidInput("settings.subreddit is for a search", field="settings")
        return None, _subreddit(text, "query"), {"mode": "subreddit"}
    if len(text) > 512:
        raise InvalidInput("a reddit search is at most 512 characters", field="query")
    normal: dict[str, Any] = {"mode": "search"}
    if settings.get("subreddit"):
        normal["subreddit"] = _subreddit(str(settings["subreddit"]), "settings")
    return None, text, normal


# --- tokens --------------------------------------------------------------------------------

_tokens: dict[str, tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def _token(credentials: dict[str, Any], www: str) -> str:
    client_id = str(credentials.get("client_id") or "")
    secret = str(credentials.get("client_secret") or "")
    if not client_id or not secret:
        raise SiteError("reddit credentials need client_id and client_secret")
    with _tokens_lock:
        cached = _tokens.get(client_id)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    answer = get_json(
        SITE,
        f"{www}/api/v1/access_token",
        interval=OAUTH_INTERVAL,
        method="POST",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    token = as_str(answer.data.get("access_token")) if isinstance(answer.data, dict) else None
    if token is None:
        raise SiteError("reddit refused the app's client id and secret (no access token)")
    lifetime = as_int(answer.data.get("expires_in")) or 3600
    with _tokens_lock:
        _tokens[client_id] = (token, time.monotonic() + max(lifetime - 60, 30))
    return token


def forget_tokens() -> None:
    with _tokens_lock:
        _tokens.clear()


# --- requests ------------------------------------------------------------------------------


def _path(query: str, settings: dict[str, Any]) -> str:
    if settings.get("mode") == "subreddit":
        return f"/r/{quote(query, safe='+')}/new"
    sub = settings.get("subreddit")
    return f"/r/{quote(str(sub), safe='+')}/search" if sub else "/search"


def _params(
    query: str, settings: dict[str, Any], limit: int, after: str | None
) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": limit, "raw_json": 1}
    if settings.get("mode") != "subreddit":
        params.update({"q": query, "sort": "new", "type": "link"})
        if settings.get("subreddit"):
            params["restrict_sr"] = "on"
    if after:
        params["after"] = after
    return params


def _listing(
    query: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    limit: int,
    after: str | None,
    base_url: str | None = None,
) -> Answer:
    path = _path(query, settings)
    params = _params(query, settings, limit, after)
    www = base_url.rstrip("/") if base_url else endpoints().reddit
    if credentials:
        token = _token(credentials, www)
        oauth = base_url.rstrip("/") if base_url else endpoints().reddit_oauth
        return get_json(
            SITE,
            f"{oauth}{path}",
            interval=OAUTH_INTERVAL,
            params=params,
            headers={"Authorization": f"bearer {token}"},
        )
    return get_json(SITE, f"{www}{path}.json", interval=INTERVAL, params=params)


def title_of(query: str, settings: dict[str, Any]) -> str:
    if settings.get("mode") == "subreddit":
        return f"r/{query}"
    sub = settings.get("subreddit")
    return f"r/{sub}: {query}" if sub else f"Reddit: {query}"


def _entries(data: Any) -> tuple[list[Entry], str | None]:
    listing = data.get("data") if isinstance(data, dict) else None
    children = listing.get("children") if isinstance(listing, dict) else None
    if not isinstance(listing, dict) or not isinstance(children, list):
        raise shape_error("reddit", "a listing (data.children)")
    entries = [
        entry
        for child in children
        if isinstance(child, dict) and isinstance(child.get("data"), dict)
        for entry in [_entry(child["data"])]
        if entry is not None
    ]
    return entries, as_str(listing.get("after"))


def _entry(post: dict[str, Any]) -> Entry | None:
    name = as_str(post.get("name"))
    if name is None:
        return None
    permalink = as_str(post.get("permalink"))
    comments_url = f"{endpoints().reddit}{permalink}" if permalink else None
    html, text = sanitise(as_str(post.get("selftext_html")) or "")
    extra = {
        k: post[k]
        for k in ("subreddit", "domain", "over_18", "is_self", "link_flair_text")
        if post.get(k) is not None
    }
    return Entry(
        site=SITE,
        title=as_str(post.get("title")) or "",
        guid=f"reddit:{name}",
        link=as_str(post.get("url")) or comments_url,
        summary_html=html,
        summary_text=text,
        author=as_str(post.get("author")),
        published_at=from_epoch(post.get("created_utc")),
        updated_at=from_epoch(post.get("edited")),  # false when never edited
        score=as_int(post.get("score")),
        comments=as_int(post.get("num_comments")),
        comments_url=comments_url,
        extra=extra,
    )


def latest(
    query: str, settings: dict[str, Any], credentials: dict[str, Any] | None, limit: int = 25
) -> SiteRead:
    answer = _listing(query, settings, credentials, limit, None)
    entries, _ = _entries(answer.data)
    return answer.read(entries, title_of(query, settings))


def search_page(
    query: str,
    *,
    settings: dict[str, Any] | None = None,
    since: datetime | None,
    cursor: str | None,
    credentials: dict[str, Any] | None,
    base_url: str | None = None,
) -> SitePage:
    """One page of the newest posts matching ``query`` (a search unless ``settings``
    say subreddit), at most ``PAGE``; the cursor is Reddit's ``after``."""
    settings = settings or {"mode": "search"}
    answer = _listing(query, settings, credentials, PAGE, cursor, base_url)
    entries, after = _entries(answer.data)
    kept = [
        e for e in entries if since is None or e.published_at is None or e.published_at >= since
    ]
    passed = len(kept) < len(entries)
    return SitePage(
        kept,
        None if passed or not entries else after,
        answer.status,
        answer.wire_bytes,
        answer.elapsed_seconds,
        title_of(query, settings),
    )
