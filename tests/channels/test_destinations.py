"""Where a channel may point, checked when it is saved (create and update): no URL whose
host is a refused address in any notation, and no folder outside the configured roots.
A 422 problem a person can act on, and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.adapters.folder import OUTSIDE_ROOTS
from herald.channels.tasks import verify_channel
from herald.core.settings import get_settings
from tests.adapters.contract import private_networks_refused
from tests.conftest import Account

CHANNELS = "/api/v1/channels"


@pytest.fixture
def refused() -> Iterator[None]:
    with private_networks_refused():
        yield


def create(
    client: TestClient,
    account: Account,
    platform: str,
    credentials: dict[str, Any],
    name: str = "c",
) -> Any:
    return client.post(
        CHANNELS,
        json={"platform": platform, "name": name, "credentials": credentials},
        headers=account.headers,
    )


def assert_problem(answer: Any, field: list[str], *words: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    for word in words:
        assert word in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", *field]


@pytest.mark.parametrize(
    ("platform", "credentials", "field", "why"),
    [
        ("webhook", {"url": "http://169.254.169.254/latest/meta-data/"}, "url", "link-local"),
        ("webhook", {"url": "http://10.0.0.1/hook"}, "url", "private"),
        ("webhook", {"url": "http://[fd00::1]/hook"}, "url", "unique local"),
        ("webhook", {"url": "http://localhost:6379/"}, "url", "loopback"),
        ("webhook", {"url": "http://0x7f000001/hook"}, "url", "loopback"),
        ("webhook", {"url": "http://127.1/hook"}, "url", "loopback"),
        ("webhook", {"url": "http://[::ffff:127.0.0.1]/hook"}, "url", "loopback"),
        ("webhook", {"url": "http://100.64.0.1/hook"}, "url", "CGNAT"),
        (
            "mastodon",
            {"instance_url": "http://2130706433", "access_token": "t"},
            "instance_url",
            "loopback",
        ),
        (
            "matrix",
            {"homeserver": "http://127.1:8008", "access_token": "t", "room": "!a:b"},
            "homeserver",
            "loopback",
        ),
        (
            "wordpress",
            {"url": "http://192.168.1.10", "username": "u", "application_password": "p"},
            "url",
            "private",
        ),
    ],
)
def test_a_url_at_a_refused_address_is_refused_when_created(
    client: TestClient,
    account: Account,
    refused: None,
    platform: str,
    credentials: dict[str, Any],
    field: str,
    why: str,
) -> None:
    if platform == "webhook":
        credentials = credentials | {"secret": "a-long-shared-secret-0123"}
    answer = create(client, account, platform, credentials)
    assert_problem(answer, ["credentials", field], why, "HERALD_ALLOWED_PRIVATE_NETWORKS")
    assert client.get(CHANNELS, headers=account.headers).json() == []


def test_a_name_is_not_looked_up_when_saved(
    client: TestClient, account: Account, refused: None
) -> None:
    """No DNS inside the request's transaction: a name passes here, and the guarded client
    checks what it resolves to when the channel is used."""
    answer = create(
        client,
        account,
        "webhook",
        {"url": "https://hooks.internal.example/x", "secret": "a-long-shared-secret-0123"},
    )
    assert answer.status_code == 201, answer.text


def test_a_url_at_a_refused_address_is_refused_when_updated(
    client: TestClient, account: Account, refused: None
) -> None:
    good = {"url": "https://hooks.example.com/x", "secret": "a-long-shared-secret-0123"}
    channel = create(client, account, "webhook", good).json()
    answer = client.patch(
        f"{CHANNELS}/{channel['id']}",
        json={"credentials": good | {"url": "http://[::1]:8080/"}},
        headers=account.headers,
    )
    assert_problem(answer, ["credentials", "url"], "loopback")
    # Unchanged: the stored URL is still the good one (the test job would use it).
    assert client.get(f"{CHANNELS}/{channel['id']}", headers=account.headers).status_code == 200


def test_allowed_networks_may_be_saved(client: TestClient, account: Account) -> None:
    """The suite allows loopback (HERALD_ALLOWED_PRIVATE_NETWORKS), as a one-machine set-up
    may: then such a URL is accepted."""
    answer = create(
        client,
        account,
        "webhook",
        {"url": "http://127.0.0.1:9/hook", "secret": "a-long-shared-secret-0123"},
    )
    assert answer.status_code == 201, answer.text


def test_a_channel_test_says_which_address_was_refused(
    client: TestClient, account: Account, receiver: Any, redis_broker: str
) -> None:
    """Saved while loopback was allowed; tested after it no longer is: the job fails with
    the refusal's words and the receiver hears nothing."""

    channel = create(client, account, "webhook", receiver.credentials()).json()
    with private_networks_refused():
        started = client.post(f"{CHANNELS}/{channel['id']}/test", headers=account.headers)
        assert started.status_code == 202
        verify_channel(started.json()["job_id"])
    job = client.get(f"/api/v1/jobs/{started.json()['job_id']}", headers=account.headers).json()
    assert job["state"] == "FAILURE"
    assert "127.0.0.1 is a loopback address" in job["error"]
    assert "HERALD_ALLOWED_PRIVATE_NETWORKS" in job["error"]
    assert receiver.received == []


# -- folders ----------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sites"
    (root / "blog").mkdir(parents=True)
    monkeypatch.setattr(get_settings(), "folder_roots", [root])
    return root


@pytest.mark.parametrize(
    "path", ["/etc", "/root", "/nonexistent/site", "/", "../../tmp/x", "blog/../..", "{tmp}"]
)
def test_a_folder_outside_the_roots_is_refused_with_one_message(
    client: TestClient, account: Account, root: Path, tmp_path: Path, path: str
) -> None:
    answer = create(client, account, "folder", {"path": path.format(tmp=tmp_path)})
    assert_problem(answer, ["credentials", "path"], OUTSIDE_ROOTS)
    assert answer.json()["detail"] == f"credentials.path: {OUTSIDE_ROOTS}"
    assert client.get(CHANNELS, headers=account.headers).json() == []


def test_a_folder_inside_the_roots_is_accepted_and_cannot_be_moved_out(
    client: TestClient, account: Account, root: Path
) -> None:
    absolute = create(client, account, "folder", {"path": str(root / "blog")}, name="a")
    assert absolute.status_code == 201, absolute.text
    # Relative to the first root; "~" is a name there, not anyone's home directory.
    for name, path in (("b", "blog"), ("c", "~"), ("d", "~root/blog")):
        assert create(client, account, "folder", {"path": path}, name=name).status_code == 201
    answer = client.patch(
        f"{CHANNELS}/{absolute.json()['id']}",
        json={"credentials": {"path": "/etc"}},
        headers=account.headers,
    )
    assert_problem(answer, ["credentials", "path"], OUTSIDE_ROOTS)
