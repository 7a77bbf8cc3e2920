from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from herald.core.db import session_scope
from herald.core.settings import get_settings
from herald.runtime.bootstrap import create_first_admin, prepare
from herald.runtime.processes import Failure
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


def test_a_database_that_cannot_be_used_fails_in_one_line(tmp_path: Path) -> None:
    # The steps run in a child told the supervisor's database: its reason comes back.
    settings = get_settings()
    settings.database_url = f"sqlite:///{tmp_path / 'missing' / 'herald.db'}"
    try:
        with pytest.raises(Failure) as failed:
            prepare()
    finally:
        settings.database_url = None
    assert str(failed.value) == "could not prepare the database: unable to open database file"


def test_the_supervisor_keeps_no_orm_in_memory() -> None:
    # `herald up`'s own process lives as long as Herald: the steps above load the ORM,
    # Alembic and the password hasher in their child, never here.
    probe = (
        "import sys, herald.runtime.supervisor; "
        "print(sorted(m for m in ('sqlalchemy', 'alembic', 'pwdlib', 'fastapi', 'celery') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
