from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select

from herald.core.clock import set_clock, utcnow
from herald.core.settings import get_settings
from herald.users.models import ApiToken
from tests.conftest import Account, MakeAccount, SessionFactory


def login(client: TestClient, email: str, password: str) -> Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_login_returns_a_bearer_token_that_works(client: TestClient, account: Account) -> None:
    response = login(client, "Owner@Example.com", account.password)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("hld_")
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "owner@example.com"
    assert me.json()["workspace_name"] == "acme"


def test_wrong_password_is_401_problem_json(client: TestClient, account: Account) -> None:
    response = login(client, account.email, "wrong password")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401
    assert problem["title"] == "Unauthorized"
    assert "Wrong email or password" in problem["detail"]


def test_five_wrong_passwords_in_a_row_get_429(client: TestClient, account: Account) -> None:
    statuses = [login(client, account.email, f"guess {i}").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    # Locked: even the right password is refused until the window passes.
    locked = login(client, account.email, account.password)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert locked.json()["type"].endswith("too-many-requests")


def test_failures_from_one_address_are_limited_across_accounts(
    client: TestClient, make_account: MakeAccount
) -> None:
    settings = get_settings()
    limit = settings.login_max_failures_per_ip
    statuses = [login(client, f"nobody{i}@example.com", "x").status_code for i in range(limit)]
    assert statuses[:-1] == [401] * (limit - 1)
    assert statuses[-1] == 429


def test_unknown_email_is_indistinguishable_from_wrong_password(
    client: TestClient, account: Account
) -> None:
    unknown = login(client, "ghost@example.com", "whatever")
    wrong = login(client, account.email, "whatever")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


def test_requests_without_or_with_bad_token_are_401(client: TestClient, account: Account) -> None:
    assert client.get("/api/v1/posts").status_code == 401
    bad = client.get("/api/v1/posts", headers={"Authorization": "Bearer hld_nope"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == "Bearer"


def test_expired_session_token_is_refused(client: TestClient, account: Account) -> None:
    token = login(client, account.email, account.password).json()["access_token"]
    later = utcnow() + timedelta(days=2)
    set_clock(lambda: later)
    try:
        response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    finally:
        set_clock(None)
    assert response.status_code == 401


def test_personal_tokens_are_shown_once_stored_hashed_and_revocable(
    client: TestClient, account: Account, db: SessionFactory
) -> None:
    created = client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=account.headers)
    assert created.status_code == 201
    token = created.json()["token"]
    listed = client.get("/api/v1/auth/tokens", headers=account.headers).json()
    assert {t["name"] for t in listed} == {"test", "ci"}
    assert all("token" not in t for t in listed)
    with db() as s:
        digests = s.scalars(select(ApiToken.digest)).all()
    assert token not in digests and all(len(d) == 64 for d in digests)

    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    deleted = client.delete(f"/api/v1/auth/tokens/{created.json()['id']}", headers=account.headers)
    assert deleted.status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401


def test_only_admins_create_users(client: TestClient, make_account: MakeAccount) -> None:
    admin = make_account("admin@example.com", admin=True)
    member = make_account("member@example.com", admin=False)
    refused = client.post(
        "/api/v1/users", json={"email": "new@example.com"}, headers=member.headers
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    created = client.post("/api/v1/users", json={"email": "new@example.com"}, headers=admin.headers)
    assert created.status_code == 201
    assert created.json()["workspace_id"] == str(admin.workspace_id)
    generated = created.json()["password"]
    assert login(client, "new@example.com", generated).status_code == 200
    again = client.post("/api/v1/users", json={"email": "NEW@example.com"}, headers=admin.headers)
    assert again.status_code == 409


def test_validation_errors_list_each_field(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", json={"email": ""})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("validation-error")
    locations = {tuple(e["loc"]) for e in problem["errors"]}
    assert ("body", "email") in locations
    assert ("body", "password") in locations


def test_admins_add_users_on_local_names_with_the_rule_the_cli_uses(
    client: TestClient, make_account: MakeAccount
) -> None:
    admin = make_account("admin@herald.localhost", admin=True)
    created = client.post(
        "/api/v1/users", json={"email": "second@herald.localhost"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "second@herald.localhost"
    assert login(client, "second@herald.localhost", created.json()["password"]).status_code == 200

    malformed = client.post(
        "/api/v1/users", json={"email": "second@@herald.localhost"}, headers=admin.headers
    )
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    (error,) = malformed.json()["errors"]
    assert error["loc"] == ["body", "email"]
    assert "not a valid email address" in error["msg"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["UserCreate"]
    assert schema["properties"]["email"]["format"] == "email"
