"""Backup archives: create, verify, list, prune and restore.

An archive is one ``herald-YYYYMMDD-HHMMSS.tar.gz`` in ``<data_dir>/backups/`` holding
``database.sqlite3`` (SQLite's online backup API, so Herald keeps running) or
``database.pgdump`` (``pg_dump -Fc``), the media directory under ``media/``, the data dir's
``secrets.json`` when Herald generated its keys there (without it, restored channel
credentials would not decrypt), and ``manifest.json`` with the SHA-256 of every member.
Everything streams: memory stays bounded whatever the size of the media.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from herald import __version__
from herald.core.errors import HeraldError, InvalidInput, NotFound
from herald.core.settings import SECRETS_FILE, Settings

NAME_RE = re.compile(r"^herald-(\d{8}-\d{6})\.tar\.gz(\.enc)?$")
# An encrypted archive: this line, then frames of a 4-byte big-endian length and a Fernet
# token of up to _CHUNK bytes of the .tar.gz, so memory stays bounded both ways.
ENC_MAGIC = b"HERALD-BACKUP-FERNET-1\n"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
_CHUNK = 1 << 20

# (done, total, message): how a long step reports progress (a job row, a progress bar).
Progress = Callable[[int, int, str], None]


class BackupError(HeraldError):
    """A backup cannot be made, read or restored; the message says what to do."""


class CorruptBackup(BackupError):
    """A member of the archive does not match the checksum its manifest recorded."""


def _key(settings: Settings) -> str | None:
    key = settings.backup_encryption_key
    return key.get_secret_value() if key else None


def _noop(_done: int, _total: int, _message: str) -> None:
    return None


class BadBackupName(InvalidInput, BackupError):
    """A name Herald never gives an archive (a path, ``..``, another file)."""


def check_name(name: str) -> str:
    """Only names Herald makes: no path, no traversal (a name becomes a file path)."""
    if not NAME_RE.match(name):
        raise BadBackupName(
            f"{name!r} is not a backup name (herald-YYYYMMDD-HHMMSS.tar.gz).", field="name"
        )
    return name


def backup_path(settings: Settings, name: str) -> Path:
    return settings.backups_dir / check_name(name)


class NoSuchBackup(NotFound, BackupError):
    """No archive by that name in the backups directory."""


def existing_backup(settings: Settings, name: str) -> Path:
    path = backup_path(settings, name)
    if not path.is_file():
        raise NoSuchBackup(f"No backup {name}.")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _database_kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL for pg_dump/pg_restore (the SQLAlchemy driver suffix removed) and the
    environment to run them with: the password goes in PGPASSWORD, never on a command
    line that every local user can read in `ps`."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    # URL.set() keeps the password when given None: build the URL afresh without it.
    plain = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    return plain.render_as_string(hide_password=False), env


def _pg_tool(settings: Settings, tool: str) -> str:
    dump = shutil.which(settings.pg_dump) or settings.pg_dump
    path = dump if tool == "pg_dump" else str(Path(dump).with_name(tool))
    if not Path(path).exists() and not shutil.which(path):
        raise BackupError(f"{tool} not found; install PostgreSQL's client or set HERALD_PG_DUMP.")
    return path


def schema_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:  # no table yet: an unmigrated database has no revision
        return None
    finally:
        engine.dispose()


def _snapshot_database(settings: Settings, into: Path) -> tuple[str, Path]:
    url = settings.effective_database_url
    if _database_kind(url) == "sqlite":
        source_path = make_url(url).database
        if not source_path:
            raise BackupError("An in-memory SQLite database cannot be backed up.")
        target = into / SQLITE_MEMBER
        # The online backup API copies a consistent snapshot while others write.
        src = sqlite3.connect(source_path)
        dst = sqlite3.connect(target)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        return "sqlite", target
    target = into / PG_MEMBER
    libpq_url, env = _libpq(url)
    done = subprocess.run(
        [_pg_tool(settings, "pg_dump"), "-Fc", "--no-owner", "-f", str(target), libpq_url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    return "postgresql", target


def _media_files(media_dir: Path) -> Iterator[Path]:
    if media_dir.is_dir():
        yield from sorted(p for p in media_dir.rglob("*") if p.is_file() and not p.is_symlink())


def create_backup(
    settings: Settings, progress: Progress = _noop, *, now: datetime | None = None
) -> Path:
    """Write a new archive; its path. The archive appears under its name only when whole."""
    now = now or datetime.now(UTC)
    settings.backups_dir.mkdir(parents=True, exist_ok=True)
    key = settings.backup_encryption_key
    name = f"herald-{now:%Y%m%d-%H%M%S}.tar.gz" + (".enc" if key else "")
    final = settings.backups_dir / name
    if final.exists():
        raise BackupError(f"{name} already exists; wait a second and try again.")
    media = list(_media_files(settings.media_dir))
    total = len(media) + 2
    with tempfile.TemporaryDirectory(dir=settings.backups_dir, prefix=".work-") as work:
        progress(0, total, "snapshotting the database")
        kind, db_file = _snapshot_database(settings, Path(work))
        members: dict[str, tuple[Path, str]] = {db_file.name: (db_file, db_file.name)}
        secrets = settings.data_dir / SECRETS_FILE
        if secrets.is_file():
            members[SECRETS_FILE] = (secrets, SECRETS_FILE)
        for path in media:
            arcname = "media/" + path.relative_to(settings.media_dir).as_posix()
            members[arcname] = (path, arcname)
        manifest: dict[str, Any] = {
            "herald_version": __version__,
            "schema_revision": schema_revision(settings.effective_database_url),
            "created_at": now.isoformat(),
            "database": kind,
            "members": {
                arc: {"size": p.stat().st_size, "sha256": _sha256(p)}
                for arc, (p, _) in members.items()
            },
        }
        manifest_path = Path(work) / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2))
        partial = Path(work) / (name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(manifest_path, MANIFEST)
            for done, (arc, (path, _)) in enumerate(members.items(), start=1):
                tar.add(path, arc, recursive=False)
                progress(done, total, f"archived {arc}")
        if key:
            encrypted = partial.with_name(partial.name + ".enc")
            _encrypt_file(partial, encrypted, Fernet(key.get_secret_value()))
            partial = encrypted
        os.replace(partial, final)
    _write_state(final, "verified")
    progress(total, total, f"wrote {name}")
    return final


def _encrypt_file(source: Path, target: Path, fernet: Fernet) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(ENC_MAGIC)
        while chunk := src.read(_CHUNK):
            token = fernet.encrypt(chunk)
            dst.write(struct.pack(">I", len(token)) + token)


class _Decrypting(io.RawIOBase):
    """The .tar.gz inside an encrypted archive, decrypted a frame at a time as read."""

    def __init__(self, f: IO[bytes], fernet: Fernet) -> None:
        self._f = f
        self._fernet = fernet
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            header = self._f.read(4)
            if not header:
                return 0
            if len(header) < 4:
                raise CorruptBackup("the encrypted archive is truncated")
            token = self._f.read(struct.unpack(">I", header)[0])
            try:
                self._buffer = self._fernet.decrypt(token)
            except InvalidToken as exc:
                raise CorruptBackup(
                    "the encrypted archive does not decrypt: damaged, or not made with "
                    "HERALD_BACKUP_ENCRYPTION_KEY"
                ) from exc
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


@contextlib.contextmanager
def open_archive(archive: Path, key: str | None) -> Iterator[tarfile.TarFile]:
    """The archive's members in order (a stream: the manifest comes first), decrypted
    with ``key`` when the archive is encrypted."""
    with archive.open("rb") as f:
        encrypted = f.read(len(ENC_MAGIC)) == ENC_MAGIC
        if not encrypted:
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r|gz") as tar:
                yield tar
            return
        if not key:
            raise BackupError(
                f"{archive.name} is encrypted: set HERALD_BACKUP_ENCRYPTION_KEY to its key."
            )
        reader = io.BufferedReader(_Decrypting(f, Fernet(key)), _CHUNK)
        with tarfile.open(fileobj=reader, mode="r|gz") as tar:
            yield tar


# --- verification --------------------------------------------------------------------------


def _state_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".state")


def _write_state(archive: Path, state: str) -> None:
    stat = archive.stat()
    _state_file(archive).write_text(
        json.dumps({"state": state, "size": stat.st_size, "mtime": stat.st_mtime_ns})
    )


def checksum_state(archive: Path) -> str:
    """verified / corrupt as last checked, unverified if never checked or changed since."""
    try:
        saved = json.loads(_state_file(archive).read_text())
        stat = archive.stat()
    except (OSError, ValueError):
        return "unverified"
    if saved.get("size") != stat.st_size or saved.get("mtime") != stat.st_mtime_ns:
        return "unverified"
    return str(saved.get("state", "unverified"))


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    """The first member, which Herald always writes first."""
    member = tar.next()
    if member is None or member.name != MANIFEST:
        raise CorruptBackup(f"the archive does not start with {MANIFEST}")
    f = tar.extractfile(member)
    try:
        assert f is not None
        manifest: dict[str, Any] = json.loads(f.read())
        assert isinstance(manifest.get("members"), dict)
    except (ValueError, AssertionError) as exc:
        raise CorruptBackup(f"{MANIFEST} is not readable: {exc}") from exc
    return manifest


def _hash_stream(f: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def verify_backup(
    archive: Path, progress: Progress = _noop, *, key: str | None = None
) -> dict[str, Any]:
    """Check every member against the manifest; the manifest, or CorruptBackup naming the
    first member that failed (a missing, extra, resized or altered member)."""
    try:
        manifest = _verify(archive, progress, key)
    except CorruptBackup:
        _write_state(archive, "corrupt")
        raise
    _write_state(archive, "verified")
    return manifest


def _verify(archive: Path, progress: Progress, key: str | None) -> dict[str, Any]:
    try:
        with open_archive(archive, key) as tar:
            manifest = _read_manifest(tar)
            expected: dict[str, dict[str, Any]] = manifest["members"]
            seen: set[str] = set()
            total = len(expected)
            for member in tar:
                if member.name == MANIFEST:
                    continue
                if member.name not in expected or not member.isfile():
                    raise CorruptBackup(f"{member.name}: not in the manifest")
                f = tar.extractfile(member)
                assert f is not None
                sha, size = _hash_stream(f)
                want = expected[member.name]
                if sha != want["sha256"] or size != want["size"]:
                    raise CorruptBackup(f"{member.name}: checksum does not match the manifest")
                seen.add(member.name)
                progress(len(seen), total, f"verified {member.name}")
            missing = sorted(set(expected) - seen)
            if missing:
                raise CorruptBackup(f"{missing[0]}: listed in the manifest but missing")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise CorruptBackup(f"the archive cannot be read ({exc}); it is damaged") from exc
    return manifest


# --- listing and retention -----------------------------------------------------------------


@dataclass(frozen=True)
class BackupInfo:
    name: str
    size: int
    created_at: datetime
    checksum: str


def list_backups(settings: Settings) -> list[BackupInfo]:
    """Newest first."""
    found: list[BackupInfo] = []
    if settings.backups_dir.is_dir():
        for path in settings.backups_dir.iterdir():
            match = NAME_RE.match(path.name)
            if match and path.is_file():
                created = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
                found.append(
                    BackupInfo(path.name, path.stat().st_size, created, checksum_state(path))
                )
    return sorted(found, key=lambda b: b.created_at, reverse=True)


def to_prune(
    backups: list[BackupInfo], *, keep_daily: int, keep_weekly: int, now: datetime
) -> list[str]:
    """Names to delete: kept are the newest backup of each of the last ``keep_daily`` days
    and of each of the last ``keep_weekly`` ISO weeks; the newest verified backup is always
    kept, so pruning never leaves no good backup."""
    keep: set[str] = set()
    days: set[Any] = set()
    weeks: set[Any] = set()
    today = now.date()
    for b in sorted(backups, key=lambda b: b.created_at, reverse=True):
        if b.checksum == "corrupt":
            continue
        day = b.created_at.date()
        week = day.isocalendar()[:2]
        if day > today - timedelta(days=keep_daily) and day not in days:
            days.add(day)
            keep.add(b.name)
        if day > today - timedelta(weeks=keep_weekly) and week not in weeks:
            weeks.add(week)
            keep.add(b.name)
    verified = [b for b in backups if b.checksum == "verified"]
    if verified and not keep & {b.name for b in verified}:
        keep.add(max(verified, key=lambda b: b.created_at).name)
    return [b.name for b in backups if b.name not in keep]


def delete_backup(settings: Settings, name: str) -> None:
    path = existing_backup(settings, name)
    path.unlink()
    _state_file(path).unlink(missing_ok=True)


def prune(settings: Settings, *, now: datetime | None = None) -> list[str]:
    names = to_prune(
        list_backups(settings),
        keep_daily=settings.backup_keep_daily,
        keep_weekly=settings.backup_keep_weekly,
        now=now or datetime.now(UTC),
    )
    for name in names:
        delete_backup(settings, name)
    return names


# --- restore -------------------------------------------------------------------------------


def herald_running(settings: Settings) -> str | None:
    """Why Herald looks alive on this data, or None. Two signs, either one enough: the
    embedded Redis answers on ``<data_dir>/redis.sock`` (``herald up`` is running), or the
    scheduler's heartbeat in the database is fresher than the staleness limit (a beat
    process, on any host, is running against this database)."""
    sock = settings.redis_socket
    if sock.exists():
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1.0)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return f"the embedded Redis answers on {sock} (stop `herald up` first)"
    url = settings.effective_database_url
    if url.startswith("sqlite") and not Path(make_url(url).database or "").exists():
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            beat_at = conn.execute(
                text("SELECT beat_at FROM heartbeats WHERE name = 'scheduler'")
            ).scalar()
    except SQLAlchemyError:  # no database or no table: nothing is running on it
        return None
    finally:
        engine.dispose()
    if beat_at is None:
        return None
    if isinstance(beat_at, str):
        beat_at = datetime.fromisoformat(beat_at)
    if beat_at.tzinfo is None:
        beat_at = beat_at.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - beat_at).total_seconds()
    if age < settings.scheduler_heartbeat_stale_seconds:
        return f"the scheduler wrote its heartbeat {age:.0f} s ago (stop Herald's beat first)"
    return None


@dataclass
class RestorePlan:
    archive: Path
    data_dir: Path
    database_url: str
    in_place: bool
    manifest: dict[str, Any]
    steps: list[str] = field(default_factory=list)


def plan_restore(
    settings: Settings,
    archive: Path,
    *,
    to: Path | None = None,
    database_url: str | None = None,
    in_place: bool = False,
    progress: Progress = _noop,
) -> RestorePlan:
    """Verify the archive and decide where everything goes; refuses what would overwrite
    live data unless ``in_place``, and refuses in place while Herald runs on it."""
    if in_place and (to is not None or database_url is not None):
        raise BackupError("--in-place restores over the configured data; drop --to/--database-url.")
    if not in_place and to is None and database_url is None:
        raise BackupError(
            "Say where to restore: --to DIR (and/or --database-url URL), or --in-place."
        )
    manifest = verify_backup(archive, progress, key=_key(settings))
    kind = manifest["database"]
    data_dir = settings.data_dir if in_place else (to or settings.data_dir)
    if in_place:
        url = settings.effective_database_url
        reason = herald_running(settings)
        if reason:
            raise BackupError(f"Herald is running against this data: {reason}.")
    else:
        url = database_url or f"sqlite:///{data_dir / 'herald.db'}"
        if to is not None and to.exists() and any(to.iterdir()):
            raise BackupError(
                f"{to} is not empty; restore into a new directory, or use --in-place."
            )
        if database_url is None and kind != "sqlite":
            raise BackupError("This backup holds a PostgreSQL dump: give --database-url URL.")
    if _database_kind(url) != kind:
        raise BackupError(f"This backup holds a {kind} database; restore it into {kind}.")
    plan = RestorePlan(archive, data_dir, url, in_place, manifest)
    shown = make_url(url).render_as_string(hide_password=True)
    if kind == "sqlite":
        plan.steps.append(f"write the database to {make_url(url).database}")
    else:
        plan.steps.append(f"pg_restore into {shown} (it must be empty)")
    media = [m for m in manifest["members"] if m.startswith("media/")]
    plan.steps.append(f"write {len(media)} media file(s) to {data_dir / 'media'}")
    if SECRETS_FILE in manifest["members"]:
        plan.steps.append(f"write the generated keys to {data_dir / SECRETS_FILE}")
    else:
        plan.steps.append("no generated keys inside: keep HERALD_ENCRYPTION_KEYS as they were")
    plan.steps.append(f"migrate from revision {manifest['schema_revision']} to the newest")
    if in_place:
        plan.steps.insert(
            0, f"move the current database and media aside to {data_dir}/pre-restore-*"
        )
    return plan


def _pg_is_empty(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar()
    finally:
        engine.dispose()
    return not count


def _move_aside(settings: Settings, plan: RestorePlan) -> None:
    aside = plan.data_dir / f"pre-restore-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    aside.mkdir(parents=True)
    if plan.manifest["database"] == "sqlite":
        db_path = Path(make_url(plan.database_url).database or "")
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{db_path}{suffix}")
            if p.exists():
                shutil.move(p, aside / p.name)
    else:
        raise BackupError(
            "--in-place on PostgreSQL would drop the live database; restore into a new "
            "database with --database-url and point HERALD_DATABASE_URL at it."
        )
    for name in ("media", SECRETS_FILE):
        if (plan.data_dir / name).exists():
            shutil.move(plan.data_dir / name, aside / name)


def restore(settings: Settings, plan: RestorePlan, progress: Progress = _noop) -> None:
    """Carry out a plan from plan_restore (the archive was verified there)."""
    from herald.core.migrate import upgrade  # noqa: PLC0415 - alembic only when restoring

    kind = plan.manifest["database"]
    if kind == "postgresql" and not _pg_is_empty(plan.database_url):
        raise BackupError("The target PostgreSQL database is not empty; create a new one.")
    if plan.in_place:
        _move_aside(settings, plan)
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    total = len(plan.manifest["members"])
    with (
        open_archive(plan.archive, _key(settings)) as tar,
        tempfile.TemporaryDirectory(dir=plan.data_dir, prefix=".restore-") as work,
    ):
        done = 0
        for member in tar:
            if member.name == MANIFEST or not member.isfile():
                continue
            f = tar.extractfile(member)
            assert f is not None
            if member.name in (SQLITE_MEMBER, PG_MEMBER):
                target = Path(work) / member.name
            else:
                target = plan.data_dir / member.name
                # Names were checked against the manifest; refuse any that escape anyway.
                if not target.resolve().is_relative_to(plan.data_dir.resolve()):
                    raise CorruptBackup(f"{member.name}: escapes the data directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                shutil.copyfileobj(f, out, _CHUNK)
            if member.name == SECRETS_FILE:
                target.chmod(0o600)
            done += 1
            progress(done, total, f"restored {member.name}")
        if kind == "sqlite":
            db_path = Path(make_url(plan.database_url).database or "")
            db_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(work) / SQLITE_MEMBER, db_path)
        else:
            libpq_url, env = _libpq(plan.database_url)
            ran = subprocess.run(
                [
                    _pg_tool(settings, "pg_restore"),
                    "--no-owner",
                    "--exit-on-error",
                    "-d",
                    libpq_url,
                    str(Path(work) / PG_MEMBER),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if ran.returncode != 0:
                raise BackupError(f"pg_restore failed: {ran.stderr.strip()}")
    progress(total, total, "migrating to the newest schema")
    upgrade(plan.database_url)
