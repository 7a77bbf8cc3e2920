"""Backups end to end: the restore drill on both databases, corrupted archives, names,
retention, and refusing to restore over a running Herald."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from herald.app import create_app
from herald.backups.archive import (
    MANIFEST,
    BackupError,
    BackupInfo,
    CorruptBackup,
    _libpq,
    check_name,
    checksum_state,
    create_backup,
    list_backups,
    plan_restore,
    restore,
    schema_revision,
    to_prune,
    verify_backup,
)
from herald.channels.models import Channel
from herald.core.crypto import decrypt_json, reset_crypto
from herald.core.db import reset_engine, session_scope
from herald.core.migrate import current_revision_is_head, upgrade
from herald.core.settings import Settings, get_settings
from herald.publishing.models import Publication
from herald.publishing.tasks import deliver
from herald.scheduling.heartbeat import beat
from tests.conftest import Account, _empty_all_tables
from tests.media.test_api import image_bytes, upload
from tests.services import PG_ADMIN_URL


@pytest.fixture
def backups_dir(tmp_path: Path) -> Iterator[Path]:
    """Backups of this test only (the data dir is shared by the tests of one worker)."""
    archives = get_settings().backups_dir
    yield archives
    shutil.rmtree(archives, ignore_errors=True)


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    name = f"herald_restore_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _published_post(client: TestClient, account: Account, site: Path) -> dict[str, str]:
    site.mkdir()
    status, media = upload(client, account, image_bytes())
    assert status == 201, media
    channel = client.post(
        "/api/v1/channels",
        json={"platform": "folder", "name": "site", "credentials": {"path": str(site)}},
        headers=account.headers,
    ).json()
    post = client.post(
        "/api/v1/posts",
        json={"title": "Kept", "body": "Safe in a backup", "media_ids": [media["id"]]},
        headers=account.headers,
    ).json()
    published = client.post(
        f"/api/v1/posts/{post['id']}/publish",
        json={"channel_ids": [channel["id"]]},
        headers=account.headers,
    )
    assert published.status_code == 202, published.text
    (publication,) = published.json()["publications"]
    assert deliver(publication["id"]) == "published"
    return {"post": post["id"], "channel": channel["id"], "media": media["id"]}


def _switch(settings: Settings, data_dir: Path, url: str | None) -> None:
    """Point this process at other data, keys read afresh from that data dir."""
    settings.data_dir = data_dir
    settings.database_url = url
    settings.secret_key = None
    settings.encryption_keys = []
    settings.ensure_secrets()
    reset_engine()
    reset_crypto()


def test_restore_drill(
    db_backend: str,
    client: TestClient,
    account: Account,
    tmp_path: Path,
    backups_dir: Path,
    redis_broker: str,
    request: pytest.FixtureRequest,
) -> None:
    settings = get_settings()
    ids = _published_post(client, account, tmp_path / "site")
    media_files = sorted(p.name for p in settings.media_dir.rglob("*") if p.is_file())
    assert media_files

    archive = create_backup(settings)
    assert checksum_state(archive) == "verified"
    target = tmp_path / "restored"
    url = request.getfixturevalue("fresh_pg") if db_backend == "postgresql" else None

    original = (
        settings.data_dir,
        settings.database_url,
        settings.secret_key,
        settings.encryption_keys,
    )
    try:
        plan = plan_restore(settings, archive, to=target, database_url=url)
        restore(settings, plan)
        # Wipe: the original data is gone, so whatever is found came from the archive.
        _empty_all_tables()
        shutil.rmtree(settings.media_dir)
        _switch(settings, target, url or f"sqlite:///{target / 'herald.db'}")
        with TestClient(create_app(), raise_server_exceptions=False) as restored:
            post = restored.get(f"/api/v1/posts/{ids['post']}", headers=account.headers)
            assert post.status_code == 200, post.text
            assert post.json()["state"] == "published"
            assert post.json()["media_ids"] == [ids["media"]]
            content = restored.get(f"/api/v1/media/{ids['media']}/content", headers=account.headers)
            assert content.status_code == 200 and content.content == image_bytes()
            assert (
                restored.get(
                    f"/api/v1/channels/{ids['channel']}", headers=account.headers
                ).status_code
                == 200
            )
        with session_scope() as s:
            channel = s.get_one(Channel, uuid.UUID(ids["channel"]))
            assert decrypt_json(channel.credentials_encrypted) == {"path": str(tmp_path / "site")}
            publications = s.scalars(select(Publication)).all()
            assert [str(p.state).lower() for p in publications] == ["published"]
        assert sorted(p.name for p in (target / "media").rglob("*") if p.is_file()) == media_files
    finally:
        settings.data_dir, settings.database_url, settings.secret_key, settings.encryption_keys = (
            original
        )
        reset_engine()
        reset_crypto()


def _rewrite(archive: Path, change: str) -> None:
    """Copy the archive with one member's bytes changed and the manifest kept."""
    copy = archive.with_name("tmp.tar.gz")
    with tarfile.open(archive, "r:gz") as src, tarfile.open(copy, "w:gz") as dst:
        for member in src:  # every member is a regular file: extractfile is never None
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == change:
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))
    os.replace(copy, archive)


def test_a_corrupted_archive_is_refused_naming_the_member(
    db_backend: str,
    client: TestClient,
    account: Account,
    tmp_path: Path,
    backups_dir: Path,
    redis_broker: str,
) -> None:
    _published_post(client, account, tmp_path / "site")
    settings = get_settings()
    archive = create_backup(settings)
    with tarfile.open(archive, "r:gz") as tar:
        # The manifest is a regular file: extractfile is never None.
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    image = sorted(m for m in manifest["members"] if m.startswith("media/"))[0]
    _rewrite(archive, image)
    assert checksum_state(archive) == "unverified"  # changed since it was checked

    with pytest.raises(CorruptBackup, match=f"{image}: checksum does not match"):
        verify_backup(archive)
    assert checksum_state(archive) == "corrupt"
    with pytest.raises(CorruptBackup, match=image):
        plan_restore(settings, archive, to=tmp_path / "restored")
    assert not (tmp_path / "restored").exists()

    # A truncated archive is refused too, not half restored.
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CorruptBackup, match="cannot be read"):
        verify_backup(archive)


@pytest.mark.parametrize(
    "name",
    [
        "../herald-20260101-000000.tar.gz",
        "herald-20260101-000000.tar.gz/..",
        "/etc/passwd",
        "x.tar.gz",
    ],
)
def test_names_other_than_herald_archives_are_refused(name: str) -> None:
    with pytest.raises(BackupError, match="is not a backup name"):
        check_name(name)
    assert check_name("herald-20260101-023000.tar.gz")


def _info(day: datetime, state: str = "verified") -> BackupInfo:
    return BackupInfo(f"herald-{day:%Y%m%d-%H%M%S}.tar.gz", 1, day, state)


def test_retention_keeps_seven_daily_and_four_weekly() -> None:
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    nightly = [_info(now - timedelta(days=d, minutes=30)) for d in range(60)]
    extra = _info(now - timedelta(minutes=5))  # a manual one the same day: the newer is kept
    gone = set(to_prune([*nightly, extra], keep_daily=7, keep_weekly=4, now=now))
    kept = {b.name for b in [*nightly, extra]} - gone
    assert extra.name in kept and nightly[0].name in gone
    assert {b.name for b in nightly[1:7]} <= kept
    # Beyond the seven days, one per ISO week for four weeks (Sundays: the newest of a week).
    older = sorted(
        b.created_at.date()
        for b in nightly
        if b.name in kept and b.created_at < now - timedelta(days=7)
    )
    assert len(older) <= 4 and all(d.isoweekday() == 7 for d in older)
    assert all(b.created_at > now - timedelta(weeks=5) for b in nightly if b.name in kept)


def test_retention_never_prunes_the_only_good_backup() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    old_good = _info(now - timedelta(days=90))
    recent_bad = [_info(now - timedelta(days=d), "corrupt") for d in range(3)]
    assert to_prune([old_good, *recent_bad], keep_daily=7, keep_weekly=4, now=now) == [
        b.name for b in recent_bad
    ]


def test_in_place_restore_is_refused_while_the_scheduler_beats(
    db_backend: str, backups_dir: Path, tmp_path: Path
) -> None:
    settings = get_settings()
    archive = create_backup(settings)
    assert [b.name for b in list_backups(settings)] == [archive.name]
    with session_scope() as s:
        beat(s)
    with pytest.raises(BackupError, match="Herald is running against this data: the scheduler"):
        plan_restore(settings, archive, in_place=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        plan_restore(settings, archive, to=tmp_path / "full")


def test_an_encrypted_backup_needs_its_key(
    db_backend: str, backups_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    key = Fernet.generate_key().decode()
    monkeypatch.setattr(settings, "backup_encryption_key", SecretStr(key))
    archive = create_backup(settings)
    assert archive.name.endswith(".tar.gz.enc")
    assert not tarfile.is_tarfile(archive)  # nothing readable without the key
    assert verify_backup(archive, key=key)["database"] == db_backend

    with pytest.raises(BackupError, match="is encrypted: set HERALD_BACKUP_ENCRYPTION_KEY"):
        verify_backup(archive)
    with pytest.raises(CorruptBackup, match="does not decrypt"):
        verify_backup(archive, key=Fernet.generate_key().decode())
    if db_backend == "sqlite":
        plan = plan_restore(settings, archive, to=tmp_path / "restored")
        restore(settings, plan)
        assert (tmp_path / "restored" / "herald.db").is_file()


def test_an_older_snapshot_is_migrated_forward(tmp_path: Path) -> None:
    """A backup of a database at revision 0004 restores at the newest revision."""
    old = tmp_path / "old"
    old.mkdir()
    settings = Settings(data_dir=old, database_url=f"sqlite:///{old / 'herald.db'}")
    upgrade(settings.effective_database_url, "0004")
    archive = create_backup(settings)

    plan = plan_restore(settings, archive, to=tmp_path / "new")
    assert plan.manifest["schema_revision"] == "0004"
    assert "migrate from revision 0004 to the newest" in plan.steps
    restore(settings, plan)
    assert schema_revision(plan.database_url) != "0004"
    assert current_revision_is_head(plan.database_url)


def test_pg_tools_get_the_password_in_their_environment_not_argv() -> None:
    url, env = _libpq("postgresql+psycopg://herald:p%40ss@db.example:5433/herald")
    assert url == "postgresql://herald@db.example:5433/herald"
    assert env["PGPASSWORD"] == "p@ss"
