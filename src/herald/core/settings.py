"""Herald's settings: one pydantic-settings class, every variable prefixed ``HERALD_``.

Secrets are never defaults. In development, a missing secret key or encryption key is
generated once into ``<data_dir>/secrets.json`` (mode 0600) and reused; in production
Herald refuses to start unless both come from the environment or that file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from datetime import time
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from herald.core.exceptions import HeraldFault

SECRETS_FILE = "secrets.json"
# Values that must never be accepted as a secret outside development.
KNOWN_DEFAULTS = frozenset({"", "changeme", "change-me", "secret", "herald", "dev"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class UpLayout(StrEnum):
    """How `herald up` lays Herald out in processes on one machine."""

    COMPACT = "compact"  # the API, and one worker with every queue and the scheduler
    SPLIT = "split"  # the API, the two workers of `herald worker`, and `herald beat`


class ConfigurationError(HeraldFault, RuntimeError):
    """The settings cannot be used as they are; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    env: Environment = Field(
        Environment.DEVELOPMENT,
        description="`development` or `production` (refuses generated or default secrets).",
    )
    data_dir: Path = Field(
        Path("herald-data"),
        description="Holds the SQLite file, the embedded Redis socket and AOF, media and backups.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. `postgresql+psycopg://user@host/db`. "
        "Unset: SQLite file `<data_dir>/herald.db`.",
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker (Redis or RabbitMQ). Unset: the embedded Redis on "
        "`<data_dir>/redis.sock`, started by `herald up`.",
    )
    result_backend_url: str | None = Field(
        None,
        description="Celery result backend. Unset: the broker when it is Redis, otherwise none.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Keys the stored hashes of login and API tokens (changing it signs everyone "
        "out). Unset in development: generated into the data dir.",
    )
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Fernet keys for channel credentials, newest first "
        "(older keys still decrypt, so keys can rotate). Unset in development: generated.",
    )
    host: str = Field("127.0.0.1", description="Address `herald api` / `herald up` listen on.")
    port: int = Field(8000, description="Port `herald api` / `herald up` listen on.")
    public_url: str | None = Field(
        None,
        description="URL people use to reach Herald, printed at start. Unset: http://host:port.",
    )
    access_token_ttl_minutes: int = Field(
        60 * 24, description="Lifetime of a login (session) token, in minutes."
    )
    login_max_failures: int = Field(
        5, description="Failed logins per account within the window before it answers 429."
    )
    login_max_failures_per_ip: int = Field(
        20, description="Failed logins per client address within the window before 429."
    )
    login_window_seconds: int = Field(900, description="Window for counting failed logins.")
    task_soft_time_limit: int = Field(
        50 * 60, description="Seconds before a task is asked to stop (SoftTimeLimitExceeded)."
    )
    task_time_limit: int = Field(60 * 60, description="Seconds before a task is killed.")
    worker_concurrency: int | None = Field(
        None,
        description="Pool size of the worker for the generation, sources and maintenance "
        "queues. Unset: Celery's default (the CPU count).",
    )
    worker_pool: str = Field(
        "prefork",
        description="Celery pool of the worker for the generation, sources and maintenance "
        "queues: prefork, threads or solo.",
    )
    publishing_pool: str = Field(
        "threads",
        description="Celery pool of the worker for the publishing queue: threads (deliveries "
        "wait on the network, so many run in flight per process), prefork or solo.",
    )
    publishing_concurrency: int = Field(
        32,
        ge=1,
        description="Deliveries in flight at once per publishing worker (threads of its pool, "
        "or processes with prefork). Sized in bench/README.md (slow_platform).",
    )
    up_layout: UpLayout = Field(
        UpLayout.COMPACT,
        description="Processes `herald up` runs. compact: the API and one worker process "
        "running every queue on its threads and the scheduler on a thread (about 330 MB RSS "
        "idle); split: the API, `herald worker` (publishing on threads, the other queues on "
        "processes) and `herald beat`, as a deployment runs them (about 770 MB).",
    )
    task_sent_events: bool = Field(
        False,
        description="Also send Celery's task-sent event with every message (Flower then lists "
        "a task before a worker takes it); costs about half of each send's CPU.",
    )
    worker_ping_timeout: float = Field(
        1.0,
        description="Longest the health check waits for a worker to answer a ping (it stops "
        "at the first answer, and within its own 1 s limit).",
    )
    metrics_token: str | None = Field(
        None,
        description="When set, `/metrics` answers only a scrape that sends it as "
        "`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}`).",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="When set, `herald api` serves `/metrics` on this port (same listen "
        "address) and the public port answers it 404: scrape it on a port the internet "
        "does not reach.",
    )
    scheduler_heartbeat_stale_seconds: int = Field(
        30, description="Scheduler heartbeat older than this is reported down by the health check."
    )
    publish_lease_seconds: int = Field(
        120,
        ge=1,
        description="How long a worker owns a delivery it claimed without renewing it. The "
        "worker renews it while the attempt runs, however slow the platform; once it runs "
        "out (the worker died) the reconciler re-examines the delivery.",
    )
    queued_grace_seconds: int = Field(
        120, description="A delivery queued longer than this is sent to the broker again."
    )
    reconcile_interval_seconds: int = Field(
        60,
        ge=1,
        description="How often the reconciler (stuck and orphaned deliveries) runs; one run "
        "per period however many schedulers send it.",
    )
    missed_limit_seconds: int = Field(
        6 * 3600,
        description="A delivery that fell due while Herald was stopped goes out at start "
        "unless it is later than this; then it fails with reason `missed`.",
    )
    backup_at: time = Field(
        time(2, 30),
        description="When the nightly backup runs, `HH:MM` UTC (then retention prunes).",
    )
    backup_encryption_key: SecretStr | None = Field(
        None,
        description="A Fernet key (`herald keys generate`): set, new backups are encrypted "
        "with it (`.tar.gz.enc`) and reading one needs it. Keep it apart from the backups.",
    )
    backup_keep_daily: int = Field(
        7, ge=0, description="Backups kept: the newest of each of this many recent days."
    )
    backup_keep_weekly: int = Field(
        4, ge=0, description="Backups kept besides: the newest of each of this many recent weeks."
    )
    pg_dump: str = Field(
        "pg_dump",
        description="`pg_dump` used to back up PostgreSQL (`pg_restore` is looked up beside "
        "it). Unset: found on PATH.",
    )
    job_retention_days: int = Field(
        30, description="Finished job records older than this are deleted (daily, 03:00 UTC)."
    )
    research_retention_days: int = Field(
        30,
        ge=1,
        description="Research jobs' results (their items) older than this are deleted with "
        "the job (daily, 03:00 UTC).",
    )
    source_check_lease_seconds: int = Field(
        600,
        ge=30,
        description="How long a claimed source check may run before another worker may take "
        "it again (its worker is presumed dead).",
    )
    source_max_backoff_hours: float = Field(
        24.0,
        gt=0,
        description="A source that keeps failing is checked less and less often, at most "
        "this many hours apart.",
    )
    channel_check_hours: float = Field(
        24.0,
        ge=0,
        description="Every active channel's credentials are checked (and OAuth tokens "
        "refreshed ahead of expiry) at most once this many hours apart, spread over the "
        "period; 0 turns the checks off.",
    )
    media_max_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        description="Largest image `POST /api/v1/media` accepts, in bytes (platforms have "
        "their own, smaller limits: Herald says which before sending).",
    )
    log_level: str = Field("INFO", description="Log level for every process.")
    database_write_wait_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a write waits for SQLite's one writer lock; past that a request "
        "answers 503 with `Retry-After` (a task tries again later). Reads never wait.",
    )
    auth_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="How long an API process keeps the caller a token named, so repeated "
        "requests skip looking the token up. A token revoked (or a user disabled) through "
        "this process stops working at once; through another process, within this many "
        "seconds. 0: look every token up.",
    )
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes `herald api` serves with (uvicorn's workers), each with its "
        "own database pool and caller cache.",
    )
    database_pool_size: int = Field(
        5,
        ge=1,
        le=1000,
        description="Database connections each process keeps, and requests an API process "
        "runs against the database at once (the rest wait their turn); as many again may "
        "open beside them for short extra work.",
    )
    database_pool_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a request (or a task) waits for a free database connection; "
        "past that a request answers 503 with `Retry-After`.",
    )
    rate_limit_scale: float = Field(
        1.0,
        ge=1.0,
        le=1_000_000.0,
        description="Divides every platform rate limit's period (a channel's budget refills "
        "this many times faster): for benchmarks and tests against fake platforms whose "
        "limits are scaled alike. Keep 1 against real platforms.",
    )
    redis_timeout_seconds: float = Field(
        2.0,
        gt=0,
        description="Connect and read timeout of every Redis client (broker, results, events, "
        "health), so a Redis that stops answering cannot hang Herald.",
    )
    allowed_private_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs that outgoing requests to user-supplied URLs may "
        "reach although private, e.g. `127.0.0.0/8,::1/128`. Unset: loopback, private, "
        "link-local, CGNAT, multicast and reserved addresses are refused.",
    )
    http_max_response_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        description="Largest answer Herald reads from a platform, feed or webhook, in bytes "
        "(decompressed); reading stops past it.",
    )
    folder_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated directories folder channels may write under; a channel's "
        "relative path is taken from the first. Unset: `<data_dir>/sites`.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or CIDRs of reverse proxies whose "
        "`X-Forwarded-For` is believed. Unset: none (the peer's address is the client's).",
    )
    max_request_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Largest request body the API reads (413 past it); media uploads have "
        "`HERALD_MEDIA_MAX_BYTES` instead.",
    )

    model_prices: Annotated[dict[str, tuple[float, float]], NoDecode] = Field(
        default_factory=dict,
        description="JSON object of model prices in USD per million tokens, "
        '`{"model": [input, output]}`, merged over the documented defaults '
        "(`herald.agents.prices`); a provider's own prices win over both.",
    )

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_private_networks", "folder_roots", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model_prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(
                    f'not JSON ({exc}); write {{"model": [input, output]}}, USD per million tokens'
                ) from None
        if isinstance(value, dict):
            for model, pair in value.items():
                ok = isinstance(pair, list | tuple) and len(pair) == 2
                if not ok or not all(isinstance(p, int | float) and p >= 0 for p in pair):
                    raise ValueError(
                        f"{model!r}: give [input, output], two prices of 0 or more in USD "
                        "per million tokens"
                    )
        return value

    @field_validator("allowed_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{network!r} is not a network; write CIDRs such as 127.0.0.0/8,::1/128"
                ) from None
        return value

    # --- derived values -------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "herald.db"

    @property
    def redis_socket(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def effective_folder_roots(self) -> list[Path]:
        """Where folder channels may write: resolved, symlinks included."""
        roots = self.folder_roots or [self.data_dir / "sites"]
        return [root.expanduser().resolve() for root in roots]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.sqlite_path.resolve()}"

    @property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"redis+socket://{self.redis_socket.resolve()}"

    @property
    def effective_result_backend_url(self) -> str | None:
        if self.result_backend_url:
            return self.result_backend_url
        broker = self.effective_broker_url
        # Celery reads "redis+socket://" as the Redis backend over a unix socket.
        if broker.startswith(("redis://", "rediss://", "redis+socket://")):
            return broker
        return None

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def visibility_timeout(self) -> int:
        """Seconds the broker waits for an ack before redelivering a reserved message.

        Herald never asks the broker to hold a message (no ETA, no countdown), so the
        longest a message stays unacked is one task run: the hard time limit, plus margin.
        """
        return self.task_time_limit + 600

    # --- secrets ----------------------------------------------------------------------

    def secret_key_value(self) -> str:
        assert self.secret_key is not None, "call ensure_secrets() first"
        return self.secret_key.get_secret_value()

    def encryption_key_values(self) -> list[str]:
        assert self.encryption_keys, "call ensure_secrets() first"
        return [key.get_secret_value() for key in self.encryption_keys]

    def ensure_secrets(self) -> None:
        """Fill the secret key and encryption keys, or refuse to run without them."""
        stored = _read_secrets_file(self.data_dir / SECRETS_FILE)
        if self.secret_key is None and "secret_key" in stored:
            self.secret_key = SecretStr(stored["secret_key"])
        if not self.encryption_keys and stored.get("encryption_keys"):
            self.encryption_keys = [SecretStr(k) for k in stored["encryption_keys"]]

        missing = self.secret_key is None or not self.encryption_keys
        if missing and self.is_production:
            raise ConfigurationError(
                "HERALD_SECRET_KEY and HERALD_ENCRYPTION_KEYS must be set in production "
                "(generate a key with `herald keys generate`)."
            )
        if missing:
            self._generate_secrets(stored)
        self._check_secrets()

    def _generate_secrets(self, stored: dict[str, Any]) -> None:
        if self.secret_key is None:
            stored["secret_key"] = secrets.token_urlsafe(48)
            self.secret_key = SecretStr(stored["secret_key"])
        if not self.encryption_keys:
            stored["encryption_keys"] = [Fernet.generate_key().decode()]
            self.encryption_keys = [SecretStr(k) for k in stored["encryption_keys"]]
        _write_secrets_file(self.data_dir / SECRETS_FILE, stored)

    def _check_secrets(self) -> None:
        secret = self.secret_key_value()
        if self.is_production and (secret.lower() in KNOWN_DEFAULTS or len(secret) < 32):
            raise ConfigurationError(
                "HERALD_SECRET_KEY is a default or shorter than 32 characters; "
                "set a long random value in production."
            )
        for key in self.encryption_key_values():
            try:
                Fernet(key.encode())
            except ValueError as exc:
                raise ConfigurationError(
                    "HERALD_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                    "(32 url-safe base64-encoded bytes); generate one with `herald keys generate`."
                ) from exc


def _read_secrets_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a JSON object")
    return data


def _write_secrets_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Create with 0600 from the start so the keys are never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, with secrets resolved."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.ensure_secrets()
    return settings
