"""A local WordPress REST API (``/wp-json/wp/v2``): posts, tags, categories, media and
``users/me``, behaving like WordPress core where Herald depends on it.

- Auth as WordPress does it with application passwords: ``Authorization: Basic``; an
  unknown user or a wrong password is a 401 on *any* route (``invalid_username`` /
  ``incorrect_password``), spaces in the password are ignored; without credentials the
  public reads work and everything else is a 401, and a logged-in user without the
  capability gets a 403 (``rest_cannot_create``, ``rest_cannot_publish``...). Roles carry
  WordPress's capabilities: creating a tag or category takes ``manage_categories``
  (Editor), uploading takes ``upload_files``.
- Request bodies and query strings are checked in WordPress's own argument dialect
  (``required`` booleans, ``type``, ``enum``, ``items``, ``minimum``...; unknown arguments
  ignored, numeric strings and comma lists coerced as ``rest_validate_value_from_schema``
  does) against the posts route extracted from WordPress core
  (``wordpress/wp-v2-posts-route.extract.json``); errors are ``rest_invalid_param`` 400s.
  The term and media routes are not in that extract; their few args are written below.
  (Real WordPress also takes a plain string for ``title``/``content``/``excerpt``, whose
  validation it switches off; the extract says ``object``, and the fake holds to it:
  Herald sends ``{"raw": ...}``, which both accept.)
- Errors in WordPress's shape: ``{"code", "message", "data": {"status"}}``; an existing
  term answers ``term_exists`` with ``data.term_id``.
- ``content.rendered`` is what WordPress serves readers: block content rendered, other
  content through ``wpautop`` (``the_content``; see :func:`wpautop`), so a stray element
  Herald adds shows there as WordPress would show it.
- Faults: the posts, media and users routes take the shared fault queue (``inject``);
  the tags/categories routes take their own (``inject_terms``), because they are
  bookkeeping before the post: the contract suite's "the next request" is the post.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import secrets
import threading
from collections import deque
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.base import FakeFault, FakePlatform, endpoint
from tests.fakes.specs import spec_path

_AUTHOR = frozenset({"read", "edit_posts", "publish_posts", "upload_files"})
_EDITOR = _AUTHOR | {"manage_categories", "edit_others_posts", "unfiltered_html"}
ROLE_CAPS: dict[str, frozenset[str]] = {
    "administrator": _EDITOR | {"manage_options"},
    "editor": _EDITOR,
    "author": _AUTHOR,
    "contributor": frozenset({"read", "edit_posts"}),
    "subscriber": frozenset({"read"}),
}
# The permission callback of each decorated endpoint: (capability, code, message). One not
# listed is a public read that refuses only bad credentials.
PERMISSIONS: dict[str, tuple[str, str, str]] = {
    "users_me": ("read", "rest_not_logged_in", "You are not currently logged in."),
    "create_post": (
        "edit_posts",
        "rest_cannot_create",
        "Sorry, you are not allowed to create posts as this user.",
    ),
    "upload_media": (
        "upload_files",
        "rest_cannot_create",
        "Sorry, you are not allowed to upload media on this site.",
    ),
    "update_media": (
        "upload_files",
        "rest_cannot_edit",
        "Sorry, you are not allowed to edit this post.",
    ),
}
UPLOAD_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# Args of the routes missing from the extract, in the same dialect (from WordPress core's
# terms and attachments controllers).
TERM_LIST_ARGS: dict[str, Any] = {
    "context": {"type": "string", "enum": ["view", "embed", "edit"], "required": False},
    "page": {"type": "integer", "minimum": 1, "required": False},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 100, "required": False},
    "search": {"type": "string", "required": False},
    "slug": {"type": "array", "items": {"type": "string"}, "required": False},
}
TERM_CREATE_ARGS: dict[str, Any] = {
    "name": {"type": "string", "required": True},
    "description": {"type": "string", "required": False},
    "slug": {"type": "string", "required": False},
    "parent": {"type": "integer", "required": False},
}
MEDIA_UPDATE_ARGS: dict[str, Any] = {
    "alt_text": {"type": "string", "required": False},
    "caption": {"type": "object", "required": False},
    "description": {"type": "object", "required": False},
    "post": {"type": "integer", "required": False},
}


@lru_cache(maxsize=1)
def posts_route_args() -> dict[str, dict[str, Any]] | None:
    """``{"GET": args, "POST": args}`` of ``/wp/v2/posts`` from the extract, or None."""
    path = spec_path("wordpress/wp-v2-posts-route.extract.json")
    if path is None:
        return None
    route = json.loads(path.read_text())["routes"]["/wp/v2/posts"]
    return {
        method: endpoint["args"]
        for endpoint in route["endpoints"]
        for method in endpoint["methods"]
    }


# -- WordPress's argument dialect -------------------------------------------------------

_MISSING = object()


def _coerce(value: Any, kind: str) -> Any:
    """``value`` as ``kind`` the way WordPress's ``rest_is_*`` helpers accept it, else _MISSING."""
    if kind == "string":
        return value if isinstance(value, str) else _MISSING
    if kind == "integer":
        if isinstance(value, bool):
            return _MISSING
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        return _MISSING
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        try:
            return float(value) if isinstance(value, str) else _MISSING
        except ValueError:
            return _MISSING
    if kind == "boolean":
        truthy = {True: True, False: False, "true": True, "false": False, "1": True, "0": False}
        return truthy.get(value, _MISSING) if isinstance(value, (bool, str)) else _MISSING
    if kind == "array":
        if isinstance(value, list):
            return value
        if isinstance(value, str):  # wp_parse_list
            return [part for part in re.split(r"[\s,]+", value) if part]
        return _MISSING
    if kind == "object":
        if isinstance(value, dict):
            return value
        return {} if value == "" else _MISSING
    if kind == "null":
        return None if value is None else _MISSING
    return value


def _value_errors(value: Any, schema: dict[str, Any], name: str) -> tuple[list[str], Any]:
    kinds = schema.get("type")
    if kinds is not None:
        for kind in kinds if isinstance(kinds, list) else [kinds]:
            coerced = _coerce(value, kind)
            if coerced is not _MISSING:
                value = coerced
                break
        else:
            listed = ",".join(kinds) if isinstance(kinds, list) else kinds
            return [f"{name} is not of type {listed}."], value
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{name} is not one of {', '.join(map(str, schema['enum']))}.")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = []
        for index, item in enumerate(value):
            found, checked = _value_errors(item, schema["items"], f"{name}[{index}]")
            errors += found
            items.append(checked)
        value = items
    if isinstance(value, dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        for key, item in value.items():
            if key in properties:
                errors += _value_errors(item, properties[key], f"{name}[{key}]")[0]
            elif schema.get("additionalProperties") is False:
                errors.append(f"{key} is not a valid property of Object.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{name} must be greater than or equal to {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{name} must be less than or equal to {schema['maximum']}")
    if isinstance(value, str) and schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            errors.append(f"Invalid date. ({name})")
    return errors, value


def wp_arg_errors(
    args: dict[str, Any], values: dict[str, Any]
) -> tuple[dict[str, str], list[str], dict[str, Any]]:
    """Check ``values`` against a route's ``args`` as WordPress does: ``(invalid param ->
    message, missing required params, coerced values)``. Unknown params are ignored."""
    invalid: dict[str, str] = {}
    coerced = dict(values)
    missing = [name for name, arg in args.items() if arg.get("required") and name not in values]
    for name, value in values.items():
        if name not in args:
            continue
        errors, coerced[name] = _value_errors(value, args[name], name)
        if errors:
            invalid[name] = " ".join(errors)
    return invalid, missing, coerced


def slugify(name: str) -> str:
    """Roughly ``sanitize_title``: lower case, dashes, non-ASCII percent-encoded."""
    text = re.sub(r"[^\w\s-]", "", html.unescape(name).lower())
    text = re.sub(r"[\s_-]+", "-", text).strip("-")
    return quote(text, safe="-").lower()


def _stored(name: str) -> str:
    """A term name as WordPress stores it: trimmed, ``&``, ``<`` and ``>`` escaped
    (``pre_term_name`` runs ``_wp_specialchars``). Searches match the stored form."""
    return html.escape(name.strip(), quote=False)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()


# -- what readers get: the_content ----------------------------------------------------------
#
# WordPress serves a post's content through the ``the_content`` filters. Two of them shape
# the HTML: ``do_blocks`` renders block-editor content (the ``<!-- wp:… -->`` delimiters
# go, a static block's HTML stays, an unknown void block renders nothing) and, when the
# content has any block, takes ``wpautop`` off for that content; otherwise ``wpautop``
# turns double line breaks into paragraphs and single ones into ``<br />``, wrapping
# every chunk that is not a block-level element (an HTML comment included) in ``<p>``.
# Below, those two ported from wp-includes/blocks.php and formatting.php.

_ALLBLOCKS = (
    r"(?:table|thead|tfoot|caption|col|colgroup|tbody|tr|td|th|div|dl|dd|dt|ul|ol|li|pre"
    r"|form|map|area|blockquote|address|math|style|p|h[1-6]|hr|fieldset|legend|section"
    r"|article|aside|hgroup|header|footer|nav|figure|figcaption|details|menu|summary)"
)
# get_html_split_regex(): a comment, a CDATA section or an element, each up to its end.
_HTML_SPLIT = re.compile(
    r"(<(?:!(?=--)(?:-(?!->)[^-]*)*(?:-->)?"
    r"|!\[CDATA\[[^\]]*(?:\](?!\]>)[^\]]*)*(?:\]\]>)?"
    r"|[^>]*>?))"
)
_BLOCK_DELIMITER = re.compile(
    r"<!--\s+/?wp:[a-z][a-z0-9_-]*(?:/[a-z][a-z0-9_-]*)?\s+(?:\{.*?\}\s+)?/?-->", re.S
)


def _sub(pattern: str, replacement: Any, text: str, flags: int = 0) -> str:
    # PHP's PCRE without /u: \s is ASCII whitespace.
    return re.sub(pattern, replacement, text, flags=flags | re.ASCII)


def has_blocks(content: str) -> bool:
    return "<!-- wp:" in content


def render_blocks(content: str) -> str:
    """``do_blocks`` for static and unknown blocks: the delimiters go, the HTML stays."""
    return _BLOCK_DELIMITER.sub("", content)


def wpautop(text: str, br: bool = True) -> str:
    """WordPress's ``wpautop``, step for step."""
    if text.strip() == "":
        return ""
    text += "\n"
    pre_tags: dict[str, str] = {}
    if "<pre" in text:
        parts = text.split("</pre>")
        last = parts.pop()
        text = ""
        for part in parts:
            start = part.find("<pre")
            if start < 0:  # malformed HTML
                text += part
                continue
            name = f"<pre wp-pre-tag-{len(pre_tags)}></pre>"
            pre_tags[name] = part[start:] + "</pre>"
            text += part[:start] + name
        text += last
    text = _sub(r"<br\s*/?>\s*<br\s*/?>", "\n\n", text)
    text = _sub(r"(<" + _ALLBLOCKS + r"[\s/>])", "\n\n\\1", text)
    text = _sub(r"(</" + _ALLBLOCKS + r">)", "\\1\n\n", text)
    text = _sub(r"(<hr\s*?/?>)", "\\1\n\n", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Newlines inside tags and comments become placeholders (wp_replace_in_html_tags).
    pieces = _HTML_SPLIT.split(text)
    text = "".join(
        piece.replace("\n", " <!-- wpnl --> ") if index % 2 else piece
        for index, piece in enumerate(pieces)
    )
    if "<option" in text:
        text = _sub(r"\s*<option", "<option", text)
        text = _sub(r"</option>\s*", "</option>", text)
    if "</object>" in text:
        text = _sub(r"(<object[^>]*>)\s*", "\\1", text)
        text = _sub(r"\s*</object>", "</object>", text)
        text = _sub(r"\s*(</?(?:param|embed)[^>]*>)\s*", "\\1", text)
    if "<source" in text or "<track" in text:
        text = _sub(r"([<\[](?:audio|video)[^>\]]*[>\]])\s*", "\\1", text)
        text = _sub(r"\s*([<\[]/(?:audio|video)[>\]])", "\\1", text)
        text = _sub(r"\s*(<(?:source|track)[^>]*>)\s*", "\\1", text)
    if "<figcaption" in text:
        text = _sub(r"\s*(<figcaption[^>]*>)", "\\1", text)
        text = _sub(r"</figcaption>\s*", "</figcaption>", text)
    text = _sub(r"\n\n+", "\n\n", text)
    paragraphs = [p for p in re.split(r"\n\s*\n", text, flags=re.ASCII) if p]
    text = "".join("<p>" + p.strip("\n") + "</p>\n" for p in paragraphs)
    text = _sub(r"<p>\s*</p>", "", text)
    text = _sub(r"<p>([^<]+)</(div|address|form)>", "<p>\\1</p></\\2>", text)
    text = _sub(r"<p>\s*(</?" + _ALLBLOCKS + r"[^>]*>)\s*</p>", "\\1", text)
    text = _sub(r"<p>(<li.+?)</p>", "\\1", text)
    text = _sub(r"<p><blockquote([^>]*)>", "<blockquote\\1><p>", text, re.IGNORECASE)
    text = text.replace("</blockquote></p>", "</p></blockquote>")
    text = _sub(r"<p>\s*(</?" + _ALLBLOCKS + r"[^>]*>)", "\\1", text)
    text = _sub(r"(</?" + _ALLBLOCKS + r"[^>]*>)\s*</p>", "\\1", text)
    if br:
        text = _sub(
            r"<(script|style|svg).*?</\1>",
            lambda m: m[0].replace("\n", "<WPPreserveNewline />"),
            text,
            re.S,
        )
        text = text.replace("<br>", "<br />").replace("<br/>", "<br />")
        text = _sub(r"(?<!<br />)\s*\n", "<br />\n", text)
        text = text.replace("<WPPreserveNewline />", "\n")
    text = _sub(r"(</?" + _ALLBLOCKS + r"[^>]*>)\s*<br />", "\\1", text)
    text = _sub(r"<br />(\s*</?(?:p|li|div|dl|dd|dt|th|pre|td|ul|ol)[^>]*>)", "\\1", text)
    text = _sub(r"\n</p>$", "</p>", text)
    for name, original in pre_tags.items():
        text = text.replace(name, original)
    if "<!-- wpnl -->" in text:
        text = text.replace(" <!-- wpnl --> ", "\n").replace("<!-- wpnl -->", "\n")
    return text


def the_content(content: str) -> str:
    """What ``content.rendered`` holds: blocks rendered, or paragraphs made by wpautop."""
    return render_blocks(content) if has_blocks(content) else wpautop(content)


class FakeWordPress(FakePlatform):
    name = "wordpress"

    def __init__(self, role: str = "editor") -> None:
        super().__init__()
        self.username = "herald-editor"
        # Shown to the user in groups of four, as WordPress does.
        raw = secrets.token_hex(12)
        self.application_password = " ".join(raw[i : i + 4] for i in range(0, 24, 4))
        self.role = role
        self.user_id = 7
        self.posts: dict[int, dict[str, Any]] = {}
        self.terms: dict[str, dict[int, dict[str, Any]]] = {
            "categories": {1: {"id": 1, "name": "Uncategorized", "slug": "uncategorized"}},
            "tags": {},
        }
        self.media: dict[int, dict[str, Any]] = {}
        self.term_faults: deque[FakeFault] = deque()
        self._hidden: set[int] = set()  # terms the next search does not list
        self._next_id = 100
        self._ids = threading.Lock()

    # -- control surface -----------------------------------------------------------------

    def credentials(self) -> dict[str, Any]:
        return {
            "url": self.base_url,
            "username": self.username,
            "application_password": self.application_password,
        }

    def inject_terms(self, fault: Any) -> None:
        """A fault for the next tags/categories request (same fields as ``inject``)."""
        self.term_faults.append(
            FakeFault(fault.status, fault.message, dict(fault.headers), fault.hang, fault.drop)
        )

    def add_term(self, taxonomy: str, name: str, *, hidden_from_next_search: bool = False) -> int:
        """A term that already exists; hidden, it is one another writer created just after
        our search (so the adapter's create answers ``term_exists``)."""
        term_id = self._new_id()
        self.terms[taxonomy][term_id] = {
            "id": term_id,
            "name": _stored(name),
            "slug": slugify(name),
        }
        if hidden_from_next_search:
            self._hidden.add(term_id)
        return term_id

    def term_names(self, taxonomy: str, ids: list[int]) -> list[str]:
        return [html.unescape(self.terms[taxonomy][i]["name"]) for i in ids]

    def term_creations(self, taxonomy: str) -> int:
        path = f"/wp-json/wp/v2/{taxonomy}"
        return sum(1 for r in self.requests if r.method == "POST" and r.path == path)

    def media_on_posts(self) -> list[dict[str, Any]]:
        return [
            self.media[post["featured_media"]]
            for post in self.posts.values()
            if post["featured_media"] in self.media
        ]

    # -- helpers -------------------------------------------------------------------------

    def _new_id(self) -> int:
        with self._ids:
            self._next_id += 1
            return self._next_id

    def wp_error(self, status: int, code: str, message: str, **data: Any) -> Response:
        return JSONResponse(
            {"code": code, "message": message, "data": {"status": status, **data}},
            status_code=status,
        )

    def error(self, status: int, message: str, headers: Any = None) -> Response:
        code = {
            400: "rest_invalid_param",
            401: "rest_forbidden",
            403: "rest_forbidden",
            404: "rest_no_route",
        }.get(status, "internal_server_error" if status >= 500 else "rest_error")
        return JSONResponse(
            {"code": code, "message": message, "data": {"status": status}},
            status_code=status,
            headers=dict(headers or {}),
        )

    def _login(self, request: Request) -> tuple[bool, Response | None]:
        """``(logged in, error)``: bad Basic credentials fail every route, none is anonymous."""
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        if username != self.username:
            message = "Unknown username. Check again or try your email address."
            return False, self.wp_error(401, "invalid_username", message)
        given = re.sub(r"[^a-z\d]", "", password, flags=re.I)
        wanted = re.sub(r"[^a-z\d]", "", self.application_password, flags=re.I)
        if not secrets.compare_digest(given, wanted):
            message = "The provided password is an invalid application password."
            return False, self.wp_error(401, "incorrect_password", message)
        return True, None

    def _can(self, logged_in: bool, capability: str) -> bool:
        return logged_in and capability in ROLE_CAPS[self.role]

    def _refused(
        self, request: Request, capability: str, code: str, message: str
    ) -> Response | None:
        """WordPress's permission callback: bad credentials, nobody logged in, or a user
        without ``capability`` is refused (with ``code`` and ``message``)."""
        logged_in, failed = self._login(request)
        if failed:
            return failed
        if not self._can(logged_in, capability):
            return self._denied(logged_in, code, message)
        return None

    async def refused(self, request: Request) -> Response | None:
        """The endpoint's permission callback (``PERMISSIONS``), by the route's handler."""
        permission = PERMISSIONS.get(request.scope["endpoint"].__name__)
        if permission is None:
            return self._login(request)[1]
        return self._refused(request, *permission)

    def _denied(self, logged_in: bool, code: str, message: str) -> Response:
        # rest_authorization_required_code(): 401 when nobody is logged in, else 403.
        return self.wp_error(403 if logged_in else 401, code, message)

    def _invalid(self, where: str, invalid: dict[str, str], missing: list[str]) -> Response | None:
        problems = [f"{k}: {v}" for k, v in invalid.items()] + [f"{m}: missing" for m in missing]
        if self.check(problems, where) is None:
            return None
        if missing:
            message = f"Missing parameter(s): {', '.join(missing)}"
            return self.wp_error(400, "rest_missing_callback_param", message, params=missing)
        message = f"Invalid parameter(s): {', '.join(invalid)}"
        return self.wp_error(400, "rest_invalid_param", message, params=invalid)

    def _post_json(self, post: dict[str, Any], context: str) -> dict[str, Any]:
        # What readers get: the content through the_content, the excerpt through wpautop
        # (the_excerpt's paragraphs). The raw text only in the edit context.
        shown = {"title": post["title"], "content": the_content(post["content"])}
        shown["excerpt"] = wpautop(post["excerpt"])

        def field(name: str) -> dict[str, Any]:
            value = {"rendered": shown[name]}
            return value | {"raw": post[name]} if context == "edit" else value

        return {
            "id": post["id"],
            "date": post["date"],
            "slug": post["slug"],
            "status": post["status"],
            "type": "post",
            "link": post["link"],
            "title": field("title"),
            "content": field("content") | {"protected": False},
            "excerpt": field("excerpt") | {"protected": False},
            "author": self.user_id,
            "featured_media": post["featured_media"],
            "categories": post["categories"],
            "tags": post["tags"],
        }

    def _term_json(self, taxonomy: str, term: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": term["id"],
            "count": sum(term["id"] in p[taxonomy] for p in self.posts.values()),
            "name": term["name"],
            "slug": term["slug"],
            "taxonomy": "post_tag" if taxonomy == "tags" else "category",
            "link": f"{self.base_url}/{taxonomy[:-1]}/{term['slug']}/",
        }

    # -- routes --------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/wp-json/wp/v2/users/me", self.users_me, methods=["GET"]),
            Route("/wp-json/wp/v2/posts", self.list_posts, methods=["GET"]),
            Route("/wp-json/wp/v2/posts", self.create_post, methods=["POST"]),
            Route("/wp-json/wp/v2/media", self.upload_media, methods=["POST"]),
            Route("/wp-json/wp/v2/media/{media_id:int}", self.update_media, methods=["POST"]),
            Route("/wp-json/wp/v2/{taxonomy:str}", self.list_terms, methods=["GET"]),
            Route("/wp-json/wp/v2/{taxonomy:str}", self.create_term, methods=["POST"]),
        ]

    @endpoint()
    async def users_me(self, request: Request, fault: FakeFault | None) -> Response:
        me: dict[str, Any] = {"id": self.user_id, "name": "Herald Editor", "slug": self.username}
        if request.query_params.get("context") == "edit":
            me |= {
                "username": self.username,
                "roles": [self.role],
                "capabilities": dict.fromkeys(sorted(ROLE_CAPS[self.role]), True),
                "extra_capabilities": {self.role: True},
            }
        return await self.finish(fault, JSONResponse(me))

    @endpoint()
    async def list_posts(self, request: Request, fault: FakeFault | None) -> Response:
        logged_in, _ = self._login(request)
        args = posts_route_args()
        query = dict(request.query_params)
        invalid, missing, values = wp_arg_errors(args["GET"] if args else {}, query)
        if (refused := self._invalid("GET /wp/v2/posts", invalid, missing)) is not None:
            return refused
        statuses = values.get("status") or ["publish"]
        statuses = statuses if isinstance(statuses, list) else [statuses]
        context = values.get("context", "view")
        if context == "edit" and not self._can(logged_in, "edit_posts"):
            message = "Sorry, you are not allowed to edit posts in this post type."
            return self._denied(logged_in, "rest_forbidden_context", message)
        if statuses != ["publish"] and not self._can(logged_in, "edit_posts"):
            return self._denied(logged_in, "rest_forbidden_status", "Status is forbidden.")
        terms = str(values.get("search", "")).casefold().split()
        found = []
        for post in sorted(self.posts.values(), key=lambda p: p["id"], reverse=True):
            text = f"{post['title']} {post['excerpt']} {post['content']}".casefold()
            if post["status"] in statuses and all(term in text for term in terms):
                found.append(self._post_json(post, context))
        per_page = int(values.get("per_page", 10))
        return await self.finish(fault, JSONResponse(found[:per_page]))

    @endpoint()
    async def create_post(self, request: Request, fault: FakeFault | None) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
        if not isinstance(body, dict):
            return self.wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
        args = posts_route_args()
        invalid, missing, values = wp_arg_errors(args["POST"] if args else {}, body)
        if (refused := self._invalid("POST /wp/v2/posts", invalid, missing)) is not None:
            return refused
        status = values.get("status", "draft")
        # Past the permission check, someone is logged in.
        if status in ("publish", "future", "private") and not self._can(True, "publish_posts"):
            message = "Sorry, you are not allowed to publish posts in this post type."
            return self._denied(True, "rest_cannot_publish", message)

        def raw(name: str) -> str:
            value = values.get(name, "")
            return str(value.get("raw", "") if isinstance(value, dict) else value)

        title, content, excerpt = raw("title"), raw("content"), raw("excerpt")
        if not (title or content or excerpt):
            return self.wp_error(400, "empty_content", "Content, title, and excerpt are empty.")
        featured = int(values.get("featured_media", 0))
        if featured and featured not in self.media:
            return self.wp_error(400, "rest_invalid_featured_media", "Invalid featured media ID.")
        post_id = self._new_id()
        slug = slugify(title) or str(post_id)
        post = {
            "id": post_id,
            "date": _now(),
            "slug": slug,
            "status": status,
            "link": f"{self.base_url}/{slug}/"
            if status == "publish"
            else f"{self.base_url}/?p={post_id}",
            "title": title,
            "content": content,
            "excerpt": excerpt,
            "featured_media": featured,
            # wp_set_object_terms skips ids that are no term; no category means the default.
            "tags": [i for i in values.get("tags", []) if i in self.terms["tags"]],
            "categories": [i for i in values.get("categories", []) if i in self.terms["categories"]]
            or [1],
        }
        self.posts[post_id] = post
        return await self.finish(fault, JSONResponse(self._post_json(post, "edit"), 201))

    @endpoint()
    async def upload_media(self, request: Request, fault: FakeFault | None) -> Response:
        data = await request.body()
        if not data:
            return self.wp_error(400, "rest_upload_no_data", "No data supplied.")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if not content_type:
            return self.wp_error(400, "rest_upload_no_content_type", "No Content-Type supplied.")
        disposition = request.headers.get("content-disposition", "")
        match = re.search(r'filename="?([^";]+)"?', disposition)
        if not match:
            message = "No Content-Disposition supplied."
            return self.wp_error(400, "rest_upload_no_content_disposition", message)
        if content_type not in UPLOAD_TYPES:
            message = "Sorry, you are not allowed to upload this file type."
            return self.wp_error(500, "rest_upload_sideload_error", message)
        media_id = self._new_id()
        filename = match.group(1)
        item = {
            "id": media_id,
            "filename": filename,
            "mime_type": content_type,
            "data": data,
            "alt_text": "",
            "source_url": f"{self.base_url}/wp-content/uploads/{media_id}-{filename}",
        }
        self.media[media_id] = item
        return await self.finish(fault, JSONResponse(self._media_json(item), 201))

    def _media_json(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": item["id"],
            "media_type": "image",
            "mime_type": item["mime_type"],
            "alt_text": item["alt_text"],
            "source_url": item["source_url"],
        }

    @endpoint()
    async def update_media(self, request: Request, fault: FakeFault | None) -> Response:
        item = self.media.get(int(request.path_params["media_id"]))
        if item is None:
            return self.wp_error(404, "rest_post_invalid_id", "Invalid post ID.")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
        invalid, missing, values = wp_arg_errors(
            MEDIA_UPDATE_ARGS, body if isinstance(body, dict) else {}
        )
        if (refused := self._invalid("POST /wp/v2/media/<id>", invalid, missing)) is not None:
            return refused
        if "alt_text" in values:
            item["alt_text"] = values["alt_text"]
        return await self.finish(fault, JSONResponse(self._media_json(item)))

    def _taxonomy(self, request: Request) -> str | None:
        taxonomy = str(request.path_params["taxonomy"])
        return taxonomy if taxonomy in self.terms else None

    def _take_term_fault(self) -> FakeFault | None:
        with self._lock:
            return self.term_faults.popleft() if self.term_faults else None

    async def list_terms(self, request: Request) -> Response:
        taxonomy = self._taxonomy(request)
        if taxonomy is None:
            return self.wp_error(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        _, failed = self._login(request)  # a public read, unless the credentials are bad
        if failed:
            return failed
        fault = self._take_term_fault()
        if (answer := self.fault_response(fault)) is not None:
            return answer
        invalid, missing, values = wp_arg_errors(TERM_LIST_ARGS, dict(request.query_params))
        if (refused := self._invalid(f"GET /wp/v2/{taxonomy}", invalid, missing)) is not None:
            return refused
        search = str(values.get("search", "")).casefold()
        slugs = values.get("slug")
        found = []
        for term in self.terms[taxonomy].values():
            if term["id"] in self._hidden:
                self._hidden.discard(term["id"])
                continue
            if search and search not in term["name"].casefold() and search not in term["slug"]:
                continue
            if slugs and term["slug"] not in slugs:
                continue
            found.append(self._term_json(taxonomy, term))
        per_page = int(values.get("per_page", 10))
        return await self.finish(fault, JSONResponse(found[:per_page]))

    async def create_term(self, request: Request) -> Response:
        taxonomy = self._taxonomy(request)
        if taxonomy is None:
            return self.wp_error(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        message = "Sorry, you are not allowed to create terms in this taxonomy."
        if refused := self._refused(request, "manage_categories", "rest_cannot_create", message):
            return refused
        fault = self._take_term_fault()
        if (answer := self.fault_response(fault)) is not None:
            return answer
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
        invalid, missing, values = wp_arg_errors(
            TERM_CREATE_ARGS, body if isinstance(body, dict) else {}
        )
        if (refused := self._invalid(f"POST /wp/v2/{taxonomy}", invalid, missing)) is not None:
            return refused
        name = _stored(str(values["name"]))
        slug = str(values.get("slug") or slugify(name))
        for term in self.terms[taxonomy].values():
            # term_exists(): the slug first, then the name (case-insensitive collation).
            if term["slug"] == slug or term["name"].casefold() == name.casefold():
                message = "A term with the name provided already exists in this taxonomy."
                return self.wp_error(400, "term_exists", message, term_id=term["id"])
        term_id = self._new_id()
        term = {"id": term_id, "name": name, "slug": slug}
        self.terms[taxonomy][term_id] = term
        return await self.finish(fault, JSONResponse(self._term_json(taxonomy, term), 201))
