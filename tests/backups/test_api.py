"""`/api/v1/backups`: a job with progress, the list, download, delete; admins only; names
that are not Herald's archives refused; and the nightly run with its period claim."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from herald.backups import service
from herald.backups.archive import create_backup
from herald.core.settings import get_settings
from tests.conftest import Account, MakeAccount


@pytest.fixture(autouse=True)
def backups_dir() -> Iterator[Path]:
    archives = get_settings().backups_dir
    yield archives
    shutil.rmtree(archives, ignore_errors=True)


def test_create_follow_list_download_delete(
    client: TestClient, account: Account, redis_broker: str
) -> None:
    started = client.post("/api/v1/backups", headers=account.headers)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    # The worker's part, run here: the task body.
    result = service.run_backup(job_id)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=account.headers).json()
    assert job["state"] == "SUCCESS", job
    assert job["result"] == result and job["progress_done"] == job["progress_total"] > 0

    (listed,) = client.get("/api/v1/backups", headers=account.headers).json()
    assert listed["name"] == result["name"] and listed["checksum"] == "verified"
    assert listed["size"] == result["size"]

    url = f"/api/v1/backups/{result['name']}"
    downloaded = client.get(f"{url}/download", headers=account.headers)
    assert downloaded.status_code == 200
    assert downloaded.content == (get_settings().backups_dir / result["name"]).read_bytes()

    assert client.delete(url, headers=account.headers).status_code == 204
    assert client.get("/api/v1/backups", headers=account.headers).json() == []
    gone = client.delete(url, headers=account.headers)
    assert gone.status_code == 404 and gone.json()["detail"] == f"No backup {result['name']}."


def test_members_can_do_nothing_with_backups(client: TestClient, make_account: MakeAccount) -> None:
    member = make_account("member@example.com", admin=False)
    name = create_backup(get_settings()).name
    for method, url in [
        ("POST", "/api/v1/backups"),
        ("GET", "/api/v1/backups"),
        ("GET", f"/api/v1/backups/{name}/download"),
        ("DELETE", f"/api/v1/backups/{name}"),
    ]:
        answer = client.request(method, url, headers=member.headers)
        assert answer.status_code == 403, (method, url, answer.text)
    assert (get_settings().backups_dir / name).is_file()


@pytest.mark.parametrize(
    "name", ["..%2Fsecrets.json", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "herald.db", "secrets.json"]
)
def test_names_that_are_not_archives_are_refused(
    client: TestClient, account: Account, name: str
) -> None:
    # secrets.json sits in the data dir, one level above the backups: never served.
    create_backup(get_settings())
    answer = client.get(f"/api/v1/backups/{name}/download", headers=account.headers)
    assert answer.status_code in (404, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if answer.status_code == 422:
        assert "is not a backup name" in answer.json()["detail"]


def test_a_bad_name_is_422_naming_it(client: TestClient, account: Account) -> None:
    answer = client.delete("/api/v1/backups/herald.db", headers=account.headers)
    assert answer.status_code == 422
    assert (
        answer.json()["detail"]
        == "'herald.db' is not a backup name (herald-YYYYMMDD-HHMMSS.tar.gz)."
    )


def test_nightly_runs_once_a_day_and_prunes(db_backend: str) -> None:
    first = service.nightly_backup()
    assert (get_settings().backups_dir / first["name"]).is_file()
    assert first["pruned"] == []
    assert service.nightly_backup() == {"skipped": True}
