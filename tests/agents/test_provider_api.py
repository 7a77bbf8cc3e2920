"""The providers API: create, read, update, delete; the key never returned; clear 422s;
409 for a duplicate name; reviewers read but cannot manage; another workspace sees 404."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.agents.models import Provider, ProviderState
from herald.core.crypto import decrypt_json
from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.users.models import Role, TokenKind
from herald.users.service import create_user, issue_token
from tests.conftest import Account, MakeAccount

pytestmark = pytest.mark.usefixtures("db_backend")

KEY = "sk-secret-never-shown-0123456789"
OPENAI = {
    "kind": "openai",
    "name": "mini",
    "base_url": "https://api.openai.com/v1/",
    "model": "gpt-4o-mini",
    "api_key": KEY,
}
URL = "/api/v1/providers"


def reviewer_of(account: Account) -> dict[str, str]:
    """Headers of a reviewer in ``account``'s workspace."""
    with session_scope() as s:
        user, _ = create_user(
            s,
            email=f"reviewer-{uuid.uuid4().hex[:6]}@example.com",
            role=Role.REVIEWER,
            workspace_name="acme",
        )
        token = issue_token(s, user, kind=TokenKind.PERSONAL, name="t", expires_at=None).token
    return {"Authorization": f"Bearer {token}"}


def stored(provider_id: str) -> Provider:
    with session_scope() as s:
        row = s.get_one(Provider, uuid.UUID(provider_id))
        s.expunge(row)
        return row


def test_an_openai_provider_is_created_read_updated_and_deleted(
    client: TestClient, account: Account
) -> None:
    h = account.headers
    created = client.post(URL, json=OPENAI, headers=h)
    assert created.status_code == 201, created.text
    provider = created.json()
    assert KEY not in created.text and "api_key" not in provider
    assert provider["has_api_key"] is True
    assert provider["base_url"] == "https://api.openai.com/v1"  # the trailing slash dropped
    assert (provider["input_price_per_million"], provider["output_price_per_million"]) == (
        0.15,
        0.60,
    )
    assert provider["price_source"] == "table" and provider["timeout_seconds"] == 60
    assert (provider["state"], provider["state_reason"]) == ("active", None)
    row = stored(provider["id"])
    assert row.api_key_encrypted is not None and KEY.encode() not in row.api_key_encrypted
    assert decrypt_json(row.api_key_encrypted) == {"api_key": KEY}

    one = f"{URL}/{provider['id']}"
    assert client.get(one, headers=h).json() == provider
    assert [p["name"] for p in client.get(URL, headers=h).json()] == ["mini"]
    assert KEY not in client.get(URL, headers=h).text

    patched = client.patch(
        one, json={"input_price_per_million": 1, "timeout_seconds": 5}, headers=h
    ).json()
    assert (patched["input_price_per_million"], patched["output_price_per_million"]) == (1, 0.6)
    assert patched["price_source"] == "provider" and patched["timeout_seconds"] == 5
    assert patched["has_api_key"] is True  # untouched

    unset = client.patch(one, json={"input_price_per_million": None, "api_key": None}, headers=h)
    assert unset.json()["price_source"] == "table"
    assert unset.json()["has_api_key"] is False and stored(provider["id"]).api_key_encrypted is None

    assert client.delete(one, headers=h).status_code == 204
    assert client.get(one, headers=h).status_code == 404


def test_a_digest_provider_costs_nothing(client: TestClient, account: Account) -> None:
    created = client.post(URL, json={"kind": "digest", "name": "offline"}, headers=account.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["base_url"], body["model"], body["has_api_key"]) == (None, None, False)
    assert (body["input_price_per_million"], body["price_source"]) == (0, "provider")


def test_a_local_model_is_unpriced(client: TestClient, account: Account) -> None:
    body = {"kind": "openai", "name": "ollama", "base_url": "http://127.0.0.1:11434/v1",
            "model": "llama3.2"}  # fmt: skip
    created = client.post(URL, json=body, headers=account.headers).json()
    assert (created["input_price_per_million"], created["price_source"]) == (0, "unknown")
    assert created["has_api_key"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**OPENAI, "base_url": None}, "base_url"),
        ({**OPENAI, "base_url": "ftp://api.example.com/v1"}, "base_url"),
        ({**OPENAI, "base_url": "api.openai.com/v1"}, "base_url"),
        ({**OPENAI, "model": None}, "model"),
        ({**OPENAI, "timeout_seconds": 0.5}, "timeout_seconds"),
        ({**OPENAI, "timeout_seconds": 601}, "timeout_seconds"),
        ({**OPENAI, "input_price_per_million": -1}, "input_price_per_million"),
        ({**OPENAI, "kind": "bard"}, "kind"),
        ({**OPENAI, "name": ""}, "name"),
        ({"kind": "digest", "name": "d", "model": "gpt-4o"}, "model"),
        ({"kind": "digest", "name": "d", "base_url": "https://x.example/v1"}, "base_url"),
        ({"kind": "digest", "name": "d", "api_key": "k"}, "api_key"),
        (
            {"kind": "digest", "name": "d", "output_price_per_million": 1},
            "output_price_per_million",
        ),
    ],
)
def test_bad_input_is_a_clear_422(
    client: TestClient, account: Account, body: dict[str, Any], field: str
) -> None:
    answer = client.post(URL, json=body, headers=account.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in answer.text
    assert KEY not in answer.text


def test_a_private_address_is_refused_when_not_allowed(
    client: TestClient, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "allowed_private_networks", [])
    body = {**OPENAI, "base_url": "http://127.0.0.1:11434/v1"}
    answer = client.post(URL, json=body, headers=account.headers)
    assert answer.status_code == 422
    assert "HERALD_ALLOWED_PRIVATE_NETWORKS" in answer.json()["detail"]
    assert answer.json()["errors"][0]["loc"] == ["body", "base_url"]


def test_names_are_unique(client: TestClient, account: Account) -> None:
    h = account.headers
    assert client.post(URL, json=OPENAI, headers=h).status_code == 201
    again = client.post(URL, json=OPENAI, headers=h)
    assert again.status_code == 409 and "'mini' already exists" in again.json()["detail"]
    other = client.post(URL, json={"kind": "digest", "name": "d"}, headers=h).json()
    renamed = client.patch(f"{URL}/{other['id']}", json={"name": "mini"}, headers=h)
    assert renamed.status_code == 409


def test_reviewers_read_but_cannot_manage(client: TestClient, account: Account) -> None:
    provider = client.post(URL, json=OPENAI, headers=account.headers).json()
    one = f"{URL}/{provider['id']}"
    reviewer = reviewer_of(account)
    assert client.get(URL, headers=reviewer).json()[0]["id"] == provider["id"]
    assert client.get(one, headers=reviewer).status_code == 200
    for answer in (
        client.post(URL, json={**OPENAI, "name": "other"}, headers=reviewer),
        client.patch(one, json={"model": "gpt-4o"}, headers=reviewer),
        client.delete(one, headers=reviewer),
        client.post(f"{one}/test", headers=reviewer),
    ):
        assert answer.status_code == 403
        assert (
            answer.json()["detail"]
            == "Reviewers cannot manage channels, sources, agents or providers."
        )
    assert stored(provider["id"]).model == "gpt-4o-mini"


def test_members_manage(client: TestClient, make_account: MakeAccount) -> None:
    member = make_account(admin=False)
    assert client.post(URL, json=OPENAI, headers=member.headers).status_code == 201


def test_another_workspace_sees_404(
    client: TestClient, account: Account, make_account: MakeAccount
) -> None:
    provider = client.post(URL, json=OPENAI, headers=account.headers).json()
    one = f"{URL}/{provider['id']}"
    other = make_account(workspace="elsewhere")
    missing = f"{URL}/{uuid.uuid4()}"
    for url in (one, missing):
        assert client.get(url, headers=other.headers).status_code == 404
        assert client.patch(url, json={"name": "x"}, headers=other.headers).status_code == 404
        assert client.delete(url, headers=other.headers).status_code == 404
        assert client.post(f"{url}/test", headers=other.headers).status_code == 404
    assert client.get(URL, headers=other.headers).json() == []
    assert stored(provider["id"]).name == "mini"


def test_a_new_key_model_or_url_makes_a_refused_provider_active(
    client: TestClient, account: Account
) -> None:
    provider = client.post(URL, json=OPENAI, headers=account.headers).json()
    one = f"{URL}/{provider['id']}"
    for change in ({"api_key": "sk-new"}, {"model": "gpt-4o"}, {"base_url": "https://x.ai/v1"}):
        with session_scope() as s:
            row = s.get_one(Provider, uuid.UUID(provider["id"]))
            row.state, row.state_reason = ProviderState.NEEDS_RECONNECT, "401: bad key"
        renamed = client.patch(one, json={"name": "still refused"}, headers=account.headers)
        assert renamed.json()["state"] == "needs_reconnect"
        patched = client.patch(one, json=change, headers=account.headers).json()
        assert (patched["state"], patched["state_reason"]) == ("active", None)
