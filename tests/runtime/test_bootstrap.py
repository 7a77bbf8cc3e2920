from __future__ import annotations

from fastapi.testclient import TestClient

from herald.core.db import session_scope
from herald.runtime.bootstrap import create_first_admin, prepare
from herald.users.service import count_users, create_user


def test_first_admin_is_created_once_and_can_sign_in(db_backend: str, client: TestClient) -> None:
    prepare()
    login = create_first_admin()
    assert login is not None
    email, password = login
    assert create_first_admin() is None  # never a second admin, never the password again
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    ).json()
    assert me["role"] == "admin"


def test_no_admin_is_created_where_someone_already_signs_in(db_backend: str) -> None:
    with session_scope() as session:
        create_user(session, email="ann@herald.localhost")
    assert create_first_admin() is None
    with session_scope() as session:
        assert count_users(session) == 1
