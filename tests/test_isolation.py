"""The isolation matrix, generated from the app's OpenAPI: every operation that takes an
id, called by another workspace's user with this workspace's ids, answers 404 exactly as
for an id that does not exist, and changes nothing; every list shows only the caller's
rows (the workers' live view included).

Two workspaces, "mine" and "theirs", each get a user, a token, a folder channel with
posting slots, a post with an image, a scheduled delivery (a publication and its job),
and a channel-test job. Then:

1. For each operation and each id it takes (path, query, or a reference in the body),
   one call as me with their id in that one place (my own ids everywhere else), and one
   with a random id: the two answers must be the same (status and message, ids aside),
   and a path or required query id must answer 404.
2. Every GET without a path parameter, as me and as them: neither answer holds anything
   of the other workspace (ids, emails, names), and each holds its own rows.
3. Their rows are exactly as before (phase 1 changed nothing of theirs).
4. Their ids, used by themselves, reach their rows: the same operations do not answer
   404 (so the 404s of step 1 came from the workspace check, not from a wrong id).

A new operation is covered by itself. The test fails for a path or id-like query
parameter without an entry in ID_PARAMS, an operation with a body but no entry in BODIES,
and a list without an entry in LISTS.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from herald.agents.models import LedgerEntry
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.sources.entries import Entry
from herald.sources.items import store_entries
from herald.worker import app
from tests.conftest import Account

# Each id-like parameter (path or query) and the fixture row it names.
ID_PARAMS = (
    "token_id", "channel_id", "post_id", "media_id", "publication_id", "task_id", "job_id",
    "source_id", "research_id", "provider_id", "agent_id", "webhook_id", "delivery_id",
)  # fmt: skip
# Where an operation's parameter names another kind of row than its name says:
# (method, path, parameter) -> the fixture key of the row it takes.
ROW_OF = {("GET", "/api/v1/research/{task_id}", "task_id"): "research_id"}
# Operations that cannot be called as a plain request, and why.
NOT_CALLED = {
    ("GET", "/api/v1/events"): "a stream that stays open; tests/events checks its isolation",
    **dict.fromkeys(
        [
            ("POST", "/api/v1/backups"),
            ("GET", "/api/v1/backups"),
            ("GET", "/api/v1/backups/{name}/download"),
            ("DELETE", "/api/v1/backups/{name}"),
        ],
        "instance-wide, not per workspace: only the first workspace's admins; "
        "tests/backups/test_api.py checks another workspace's admin gets 403",
    ),
}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


Body = Callable[[dict[str, str]], dict[str, Any]]
# The request body of each operation that takes one, from the ids it refers to
# ({"json": ...} or {"files": ..., "data": ...}).
BODIES: dict[tuple[str, str], Body] = {
    ("POST", "/api/v1/auth/login"): lambda ids: {
        "json": {"email": "nobody@example.com", "password": "wrong"}
    },
    ("POST", "/api/v1/auth/tokens"): lambda ids: {"json": {"name": "matrix"}},
    ("POST", "/api/v1/users"): lambda ids: {"json": {"email": f"u{uuid.uuid4().hex[:8]}@ex.com"}},
    ("POST", "/api/v1/channels"): lambda ids: {
        "json": {"platform": "webhook", "name": f"c-{uuid.uuid4().hex[:8]}",
                 "credentials": {"url": "https://example.com/h", "secret": "s" * 20}}
    },
    ("PATCH", "/api/v1/channels/{channel_id}"): lambda ids: {"json": {"retry": {"max_retries": 2}}},
    ("POST", "/api/v1/posts"): lambda ids: {
        "json": {"title": "Another", "media_ids": [ids["media_id"]]}
    },
    ("PATCH", "/api/v1/posts/{post_id}"): lambda ids: {
        "json": {"excerpt": "Changed", "media_ids": [ids["media_id"]]}
    },
    ("POST", "/api/v1/media"): lambda ids: {"files": {"file": ("a.png", _png(), "image/png")}},
    ("PATCH", "/api/v1/media/{media_id}"): lambda ids: {"json": {"alt_text": "Changed"}},
    ("POST", "/api/v1/posts/{post_id}/publish"): lambda ids: {
        "json": {"channel_ids": [ids["channel_id"]]}
    },
    ("POST", "/api/v1/posts/batch-publish"): lambda ids: {
        "json": {"post_ids": [ids["post_id"]], "channel_ids": [ids["channel_id"]]}
    },
    ("POST", "/api/v1/posts/{post_id}/schedule"): lambda ids: {
        "json": {"scheduled_at": _later(3), "channel_ids": [ids["channel_id"]]}
    },
    ("PATCH", "/api/v1/posts/{post_id}/schedule"): lambda ids: {
        "json": {"scheduled_at": _later(4), "channel_ids": [ids["channel_id"]]}
    },
    ("POST", "/api/v1/tasks/publish-post"): lambda ids: {
        "json": {"post_id": ids["post_id"], "channel_id": ids["channel_id"]}
    },
    ("PUT", "/api/v1/channels/{channel_id}/slots/config"): lambda ids: {
        "json": {"timezone": "UTC", "slots": [{"weekdays": ["mon", "thu"], "time": "09:00"}]}
    },
    ("POST", "/api/v1/posts/{post_id}/queue"): lambda ids: {
        "json": {"channel_ids": [ids["channel_id"]]}
    },
    ("POST", "/api/v1/posts/{post_id}/approve"): lambda ids: {
        "json": {"channel_ids": [ids["channel_id"]], "schedule": "queue"}
    },
    ("POST", "/api/v1/posts/{post_id}/reject"): lambda ids: {"json": {"note": "Not yet."}},
    ("POST", "/api/v1/sources"): lambda ids: {
        "json": {"kind": "feed", "name": f"s-{uuid.uuid4().hex[:8]}",
                 "url": "https://example.com/feed.xml"}
    },
    ("PATCH", "/api/v1/sources/{source_id}"): lambda ids: {"json": {"interval_minutes": 45}},
    ("POST", "/api/v1/sources/{source_id}/check"): lambda ids: {"json": {"auto_generate": False}},
    ("POST", "/api/v1/research"): lambda ids: {
        "json": {"query": "isolation", "sources": ["hackernews"]}
    },
    ("POST", "/api/v1/tasks/monitor-rss"): lambda ids: {
        "json": {"source_id": ids["source_id"], "auto_generate": False}
    },
    ("POST", "/api/v1/providers"): lambda ids: {
        "json": {"kind": "openai", "name": f"p-{uuid.uuid4().hex[:8]}",
                 "base_url": "https://api.example.com/v1", "model": "gpt-4o-mini"}
    },
    ("PATCH", "/api/v1/providers/{provider_id}"): lambda ids: {"json": {"timeout_seconds": 30}},
    ("POST", "/api/v1/agents"): lambda ids: {
        "json": {"name": f"a-{uuid.uuid4().hex[:8]}", "topic": "Isolation",
                 "source_ids": [ids["source_id"]], "channel_ids": [ids["channel_id"]]}
    },
    ("PATCH", "/api/v1/agents/{agent_id}"): lambda ids: {"json": {"topic": "Changed"}},
    ("PATCH", "/api/v1/agent-settings"): lambda ids: {"json": {"instructions": "Changed"}},
    ("POST", "/api/v1/webhooks"): lambda ids: {
        "json": {"url": "https://example.com/hook", "events": ["*"]}
    },
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): lambda ids: {"json": {"description": "Changed"}},
    ("POST", "/api/v1/tasks/generate-post"): lambda ids: {
        "json": {"agent_id": ids["agent_id"], "item_ids": [ids["item_id"]]}
    },
}  # fmt: skip

# Every GET without a path parameter: the query variants to call it with, and which of
# the caller's own ids its answer must hold (none: it lists nothing of a workspace).
LISTS: dict[str, tuple[list[dict[str, str]], tuple[str, ...]]] = {
    "/api/v1/health": ([{}], ()),
    "/api/v1/health/live": ([{}], ()),
    "/api/v1/health/ready": ([{}], ()),
    "/api/v1/platforms": ([{}], ()),
    "/api/v1/schedule/periodic": ([{}], ()),
    "/api/v1/publications/states": ([{}], ()),
    "/api/v1/tasks/health": ([{}], ()),
    "/api/v1/auth/me": ([{}], ("user_id", "workspace_id")),
    "/api/v1/auth/tokens": ([{}], ("token_id",)),
    "/api/v1/users": ([{}], ("user_id",)),
    "/api/v1/channels": ([{}], ("channel_id",)),
    "/api/v1/posts": ([{}, {"sort": "title"}], ("post_id", "media_id")),
    "/api/v1/media": ([{}], ("media_id",)),
    "/api/v1/jobs": ([{}], ("job_id", "task_id")),
    "/api/v1/schedule/upcoming": ([{}], ("publication_id", "task_id")),
    "/api/v1/calendar": ([{}], ("publication_id", "post_id", "channel_id")),
    "/api/v1/tasks/active": ([{}, {"live": "true"}], ("job_id", "task_id")),
    "/api/v1/sources": ([{}], ("source_id",)),
    "/api/v1/research": ([{}], ("research_id",)),
    "/api/v1/items": ([{}, {"q": "Item"}], ("item_id", "source_id")),
    "/api/v1/providers": ([{}], ("provider_id",)),
    "/api/v1/agents": ([{}], ("agent_id", "source_id", "channel_id")),
    "/api/v1/agent-settings": ([{}], ()),
    "/api/v1/usage": ([{}], ("agent_id",)),
    "/api/v1/webhooks": ([{}], ("webhook_id",)),
}


@dataclass
class Workspace:
    account: Account
    ids: dict[str, str] = field(default_factory=dict)
    # Other things of the workspace an answer must not show to another.
    names: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return self.account.headers

    def markers(self) -> list[str]:
        return [*self.ids.values(), *self.names]


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _workspace(client: TestClient, make_account: Any, name: str) -> Workspace:
    account = make_account(f"{name}@example.com", workspace=f"{name}-co")
    ws = Workspace(account)
    h = account.headers
    token = _ok(client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=h), 201)
    site = get_settings().data_dir / "sites" / name
    channel = _ok(
        client.post(
            "/api/v1/channels",
            json={"platform": "folder", "name": f"site-{name}", "credentials": {"path": str(site)}},
            headers=h,
        ),
        201,
    )
    _ok(
        client.put(
            f"/api/v1/channels/{channel['id']}/slots/config",
            json={"timezone": "UTC", "slots": [{"weekdays": ["mon", "wed"], "time": "10:00"}]},
            headers=h,
        )
    )
    media = _ok(
        client.post("/api/v1/media", files={"file": ("p.png", _png(), "image/png")}, headers=h),
        201,
    )
    post = _ok(
        client.post(
            "/api/v1/posts",
            json={"title": f"Post of {name}", "tags": [f"tag-{name}"], "media_ids": [media["id"]]},
            headers=h,
        ),
        201,
    )
    scheduled = _ok(
        client.post(
            f"/api/v1/posts/{post['id']}/schedule",
            json={"scheduled_at": _later(2), "channel_ids": [channel["id"]]},
            headers=h,
        ),
        202,
    )
    (publication,) = scheduled["publications"]
    job = _ok(client.post(f"/api/v1/channels/{channel['id']}/test", headers=h), 202)
    source = _ok(
        client.post(
            "/api/v1/sources",
            json={"kind": "feed", "name": f"feed-{name}", "url": f"https://{name}.example/feed"},
            headers=h,
        ),
        201,
    )
    research = _ok(
        client.post(
            "/api/v1/research", json={"query": f"news of {name}", "sources": ["reddit"]}, headers=h
        ),
        202,
    )
    provider = _ok(
        client.post(
            "/api/v1/providers",
            json={"kind": "openai", "name": f"model-{name}", "model": "gpt-4o-mini",
                  "base_url": f"https://{name}.example/v1", "api_key": f"sk-{name}-key"},
            headers=h,
        ),
        201,
    )  # fmt: skip
    agent = _ok(
        client.post(
            "/api/v1/agents",
            json={"name": f"agent-{name}", "topic": f"Topic of {name}",
                  "source_ids": [source["id"]], "channel_ids": [channel["id"]],
                  "provider_id": provider["id"]},
            headers=h,
        ),
        201,
    )  # fmt: skip
    with session_scope() as session:
        # A call of the agent's this month, so that the usage report shows it.
        session.add(
            LedgerEntry(workspace_id=account.workspace_id, agent_id=uuid.UUID(agent["id"]),
                        agent_name=f"agent-{name}", provider_name=f"provider-{name}",
                        provider_kind="openai", model=f"model-{name}")
        )  # fmt: skip
    webhook = _ok(
        client.post(
            "/api/v1/webhooks",
            json={"url": f"https://{name}.example/hook", "events": ["job.finished"],
                  "description": f"hook of {name}"},
            headers=h,
        ),
        201,
    )  # fmt: skip
    ping = _ok(client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=h), 202)
    with session_scope() as session:
        stored = store_entries(
            session,
            workspace_id=account.workspace_id,
            entries=[Entry(site="feed", title=f"Item of {name}", guid=f"item-{name}")],
            source_id=uuid.UUID(source["id"]),
        )
    ws.ids = {
        "workspace_id": str(account.workspace_id),
        "user_id": str(account.user_id),
        "token_id": token["id"],
        "channel_id": channel["id"],
        "post_id": post["id"],
        "media_id": media["id"],
        "publication_id": publication["id"],
        "task_id": publication["task_id"],
        "job_id": job["job_id"],
        "source_id": source["id"],
        "research_id": research["task_id"],
        "item_id": str(stored.new[0]),
        "provider_id": provider["id"],
        "agent_id": agent["id"],
        "webhook_id": webhook["id"],
        "delivery_id": ping["id"],
    }
    ws.names = [
        account.email, f"{name}-co", f"site-{name}", f"Post of {name}", f"tag-{name}",
        f"feed-{name}", f"Item of {name}", f"model-{name}", f"sk-{name}-key",
        f"agent-{name}", f"Topic of {name}", f"provider-{name}", f"hook of {name}",
        f"https://{name}.example/hook", webhook["secret"],
    ]  # fmt: skip
    return ws


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_ids: tuple[tuple[str, bool], ...]  # (name, required)
    has_body: bool


def _operations(spec: dict[str, Any]) -> list[Operation]:
    operations = []
    unmapped = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if (method.upper(), path) in NOT_CALLED:
                continue
            params = operation.get("parameters", [])
            path_params = tuple(p["name"] for p in params if p["in"] == "path")
            query_ids = tuple(
                (p["name"], bool(p.get("required")))
                for p in params
                if p["in"] == "query" and p["name"].endswith(("_id", "_ids"))
            )
            for name in [*path_params, *(n for n, _ in query_ids)]:
                if name not in ID_PARAMS:
                    unmapped.append(f"{method.upper()} {path}: {name}")
            operations.append(
                Operation(method.upper(), path, path_params, query_ids, "requestBody" in operation)
            )
    assert not unmapped, (
        "parameters without a fixture in tests/test_isolation.py ID_PARAMS (add the row "
        f"they name to each workspace): {unmapped}"
    )
    missing = [
        f"{o.method} {o.path}"
        for o in operations
        if o.has_body and (o.method, o.path) not in BODIES
    ]
    assert not missing, f"operations with a body but no entry in BODIES: {missing}"
    lists = {o.path for o in operations if o.method == "GET" and not o.path_params}
    assert lists <= set(LISTS), f"lists without an entry in LISTS: {sorted(lists - set(LISTS))}"
    return operations


def _call(
    client: TestClient,
    op: Operation,
    caller: Workspace,
    ids: dict[str, str],
    *,
    query_ids: tuple[str, ...] = (),
    body_ids: dict[str, str] | None = None,
) -> Any:
    url = op.path.format(**{name: ids[_row(op, name)] for name in op.path_params})
    params = {
        name: ids[_row(op, name)]
        for name, required in op.query_ids
        if required or name in query_ids
    }
    kwargs = BODIES[(op.method, op.path)](body_ids or ids) if op.has_body else {}
    return client.request(op.method, url, params=params, headers=caller.headers, **kwargs)


def _row(op: Operation, name: str) -> str:
    """The fixture key of the row the operation's parameter ``name`` takes."""
    return ROW_OF.get((op.method, op.path, name), name)


def _shape(response: Any, ids: list[str]) -> tuple[int, str]:
    """Status and message, with the ids it names blanked."""
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = response.text
    for value in ids:
        detail = detail.replace(value, "<id>")
    return response.status_code, detail


def _leaks(where: str, response: Any, other: Workspace, *, keep: str) -> list[str]:
    """Anything of ``other`` in an answer, but the id the caller itself sent."""
    leaked = [m for m in other.markers() if m != keep and m in response.text]
    return [f"{where} shows the other workspace's {leaked}"] if leaked else []


def _random_ids() -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in ID_PARAMS}


def _snapshot(client: TestClient, ws: Workspace) -> dict[str, Any]:
    """Everything of the workspace as its own user sees it (to see that nothing changed)."""
    ids, h = ws.ids, ws.headers
    urls = [
        "/api/v1/auth/tokens",
        "/api/v1/users",
        "/api/v1/channels",
        "/api/v1/posts",
        "/api/v1/media",
        "/api/v1/jobs",
        "/api/v1/schedule/upcoming",
        "/api/v1/providers",
        f"/api/v1/channels/{ids['channel_id']}/slots/config",
        f"/api/v1/posts/{ids['post_id']}/publications",
        f"/api/v1/jobs/{ids['job_id']}",
        "/api/v1/agents",
        f"/api/v1/agents/{ids['agent_id']}/runs",
        "/api/v1/agent-settings",
    ]

    def unused(value: Any) -> Any:
        # Their own calls (these included) mark their token used: that is not a change.
        if isinstance(value, list):
            return [unused(item) for item in value]
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != "last_used_at"}
        return value

    return {url: unused(_ok(client.get(url, headers=h))) for url in urls}


class _Workers:
    """The workers' live view (Celery inspect): both workspaces' tasks are running."""

    def __init__(self, *workspaces: Workspace) -> None:
        self.tasks = [
            {"id": ws.ids[key], "name": "herald.task", "args": [ws.ids[key]], "worker_pid": 7}
            for ws in workspaces
            for key in ("task_id", "job_id")
        ]

    def active(self) -> dict[str, Any]:
        return {"celery@host": list(self.tasks)}

    def reserved(self) -> dict[str, Any]:
        return {"celery@host": list(self.tasks)}


def test_every_id_and_list_is_isolated_between_workspaces(
    client: TestClient,
    make_account: Any,
    redis_broker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = _workspace(client, make_account, "mine")
    theirs = _workspace(client, make_account, "theirs")
    monkeypatch.setattr(app.control, "inspect", lambda **_: _Workers(mine, theirs))
    operations = _operations(client.get("/openapi.json").json())
    before = _snapshot(client, theirs)
    failures: list[str] = []

    # 1. Their id in one place, mine everywhere else, against a random id in that place.
    checked = 0
    for op in operations:
        places = [(name, True) for name in op.path_params] + list(op.query_ids)
        for name, must_404 in places:
            key = _row(op, name)
            random = _random_ids()
            foreign = _call(client, op, mine, mine.ids | {key: theirs.ids[key]}, query_ids=(name,))
            unknown = _call(client, op, mine, mine.ids | {key: random[key]}, query_ids=(name,))
            blank = [theirs.ids[key], random[key]]
            where = f"{op.method} {op.path} with their {name}"
            failures += _leaks(where, foreign, theirs, keep=theirs.ids[key])
            if must_404 and foreign.status_code != 404:
                failures.append(f"{where}: {foreign.status_code} {foreign.text[:200]}")
            elif _shape(foreign, blank) != _shape(unknown, blank):
                failures.append(f"{where}: {_shape(foreign, blank)} != {_shape(unknown, blank)}")
            checked += 1
        if op.has_body:
            own_body = json.dumps(BODIES[(op.method, op.path)](mine.ids).get("json"))
            for name in ID_PARAMS:
                if mine.ids[name] not in own_body:
                    continue  # the body does not refer to this kind of row
                random = _random_ids()
                foreign = _call(
                    client, op, mine, mine.ids, body_ids=mine.ids | {name: theirs.ids[name]}
                )
                unknown = _call(
                    client, op, mine, mine.ids, body_ids=mine.ids | {name: random[name]}
                )
                blank = [theirs.ids[name], random[name]]
                where = f"{op.method} {op.path} with their {name} in the body"
                failures += _leaks(where, foreign, theirs, keep=theirs.ids[name])
                if _shape(foreign, blank) != _shape(unknown, blank):
                    failures.append(
                        f"{where}: {_shape(foreign, blank)} vs unknown {_shape(unknown, blank)}"
                    )
                checked += 1
    assert checked >= 30, checked  # the matrix really ran

    # 2. Every list, both ways: nothing of the other, and one's own rows.
    for path, (variants, own_keys) in LISTS.items():
        for query in variants:
            for me, other in ((mine, theirs), (theirs, mine)):
                response = client.get(path, params=query, headers=me.headers)
                where = f"GET {path} {query} as {me.account.email}"
                if response.status_code >= 500 and "/health" not in path:
                    failures.append(f"{where}: {response.text[:300]}")  # health: 503, no worker
                failures += _leaks(where, response, other, keep="")
                missing = [k for k in own_keys if me.ids[k] not in response.text]
                if missing:
                    failures.append(f"{where} lacks its own {missing}: {response.text[:300]}")

    # 3. Nothing of theirs changed.
    after = _snapshot(client, theirs)
    failures += [
        f"their {url} changed: {before[url]} -> {after[url]}"
        for url in before
        if after[url] != before[url]
    ]

    # 4. Their ids, used by themselves, are real: the same operations reach the rows.
    def order(op: Operation) -> tuple[int, int]:
        rank = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}[op.method]
        return rank, -len(op.path)  # deletes last, the deepest first (schedule before post)

    for op in sorted(operations, key=order):
        if not op.path_params and not any(required for _, required in op.query_ids):
            continue
        response = _call(client, op, theirs, theirs.ids)
        if response.status_code == 404 or response.status_code >= 500:
            failures.append(f"{op.method} {op.path} as the owner: {response.text[:200]}")

    assert not failures, "\n".join(failures)
