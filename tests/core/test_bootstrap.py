from __future__ import annotations

from fastapi.testclient import TestClient


def test_first_admin_is_created_once_and_can_sign_in(db_backend: str, client: TestClient) -> None:
    from herald.core.bootstrap import prepare

    login = prepare()
    assert login is not None
    email, password = login
    assert prepare() is None  # never a second admin, never the password again
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    ).json()
    assert me["role"] == "admin"
