"""Providers: create, read, update, delete; the config a run reads; the provider test.

A provider's API key is encrypted at rest (``herald.core.crypto``, as channel
credentials are) and never leaves the database but inside a :class:`ProviderConfig`,
read for one call. Reviewers read providers but cannot change them.

The test is a job (kind ``provider_test``) in three steps, so that no transaction is
open while the model answers (``herald.jobs.runner``): read the config; ask for one
word; record the call in the usage ledger (and mark the provider ``needs_reconnect``
when the server refused its key).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from herald.agents.models import AgentSettings, LedgerEntry, Provider, ProviderKind, ProviderState
from herald.agents.prices import Prices, cost_micros, prices_for
from herald.agents.provider_schemas import ProviderCreate, ProviderRead, ProviderUpdate
from herald.agents.providers.base import CallRecord, ErrorKind, ProviderConfig, ProviderError
from herald.agents.providers.openai import OpenAIProvider
from herald.core.address_guard import AddressNotAllowed, check_url
from herald.core.crypto import decrypt_json, encrypt_json
from herald.core.db import flush_unique, own_row, own_rows, resolve_ref
from herald.core.errors import InvalidInput, NotFound
from herald.core.tx import after_commit
from herald.jobs import service as jobs
from herald.jobs.models import Job
from herald.jobs.runner import JobFailed
from herald.users.principal import Principal
from herald.worker import app as celery_app

TEST_TASK = "herald.agents.test_provider"
TEST_JOB_KIND = "provider_test"
TEST_PROMPT = "Reply with the word OK."
TEST_MAX_TOKENS = 5

# The built-in provider every workspace has without configuring anything.
BUILTIN_DIGEST = ProviderConfig(kind=ProviderKind.DIGEST, name="digest", model="extractive")
DIGEST_MODEL = "extractive"


# -- the provider itself ----------------------------------------------------------------


def _base_url(url: str | None) -> str:
    if not url:
        raise InvalidInput("An openai provider needs a base_url.", field="base_url")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"base_url must be an absolute http:// or https:// address, not {url!r}.",
            field="base_url",
        )
    try:
        check_url(url)  # a refused address is refused now, not at the first run
    except AddressNotAllowed as exc:
        raise InvalidInput(
            f"base_url: {exc.message}; a model server on this machine or network needs "
            "its address in HERALD_ALLOWED_PRIVATE_NETWORKS",
            field="base_url",
        ) from None
    return url.rstrip("/")


def _check_kind(
    kind: ProviderKind,
    base_url: str | None,
    model: str | None,
    has_key: bool,
    prices: tuple[float | None, float | None],
) -> str | None:
    """The base URL to store, after the kind's rules."""
    if kind == ProviderKind.OPENAI:
        if not model:
            raise InvalidInput("An openai provider needs a model.", field="model")
        return _base_url(base_url)
    for field, given in (("base_url", base_url), ("model", model), ("api_key", has_key)):
        if given:
            raise InvalidInput(
                f"A digest provider takes no {field}: it calls no model.", field=field
            )
    for field, price in zip(
        ("input_price_per_million", "output_price_per_million"), prices, strict=True
    ):
        if price is not None:
            raise InvalidInput(
                f"A digest provider takes no {field}: it costs nothing.", field=field
            )
    return None


def create_provider(session: Session, principal: Principal, body: ProviderCreate) -> Provider:
    principal.require_manager()
    prices = (body.input_price_per_million, body.output_price_per_million)
    base_url = _check_kind(body.kind, body.base_url, body.model, body.api_key is not None, prices)
    provider = Provider(
        workspace_id=principal.workspace_id,
        kind=body.kind,
        name=body.name,
        base_url=base_url,
        model=body.model,
        api_key_encrypted=encrypt_json({"api_key": body.api_key}) if body.api_key else None,
        input_price_per_million=body.input_price_per_million,
        output_price_per_million=body.output_price_per_million,
        timeout_seconds=body.timeout_seconds,
        state=ProviderState.ACTIVE,
    )
    session.add(provider)
    flush_unique(session, "provider", body.name)
    return provider


def get_provider(session: Session, principal: Principal, provider_id: uuid.UUID) -> Provider:
    return own_row(session, Provider, principal.workspace_id, provider_id, "provider")


def resolve_provider(session: Session, principal: Principal, ref: str) -> Provider:
    """A provider by its id, a unique prefix of its id, or its name (the CLI's argument)."""
    return resolve_ref(session, Provider, principal.workspace_id, ref, "provider")


def list_providers(session: Session, principal: Principal) -> list[Provider]:
    return own_rows(session, Provider, principal.workspace_id)


def update_provider(
    session: Session, principal: Principal, provider_id: uuid.UUID, body: ProviderUpdate
) -> Provider:
    principal.require_manager()
    provider = get_provider(session, principal, provider_id)
    given = body.model_fields_set
    base_url = body.base_url if "base_url" in given else provider.base_url
    model = body.model if "model" in given else provider.model
    has_key = (body.api_key is not None) if "api_key" in given else bool(provider.api_key_encrypted)
    prices = (
        body.input_price_per_million
        if "input_price_per_million" in given
        else provider.input_price_per_million,
        body.output_price_per_million
        if "output_price_per_million" in given
        else provider.output_price_per_million,
    )
    provider.base_url = _check_kind(ProviderKind(provider.kind), base_url, model, has_key, prices)
    if given & {"base_url", "model", "api_key"}:
        # Someone changed what the server refused: worth trying again.
        provider.state, provider.state_reason = ProviderState.ACTIVE, None
    provider.model = model
    if "api_key" in given:
        provider.api_key_encrypted = (
            encrypt_json({"api_key": body.api_key}) if body.api_key else None
        )
    provider.input_price_per_million, provider.output_price_per_million = prices
    if body.name is not None:
        provider.name = body.name
    if body.timeout_seconds is not None:
        provider.timeout_seconds = body.timeout_seconds
    flush_unique(session, "provider", provider.name)
    return provider


def delete_provider(session: Session, principal: Principal, provider_id: uuid.UUID) -> None:
    """Delete the provider; agents that used it (and the workspace default, if it was)
    fall back to the workspace's default. Its ledger rows stay, with its name."""
    principal.require_manager()
    session.delete(get_provider(session, principal, provider_id))
    session.flush()


def provider_prices(provider: Provider) -> Prices:
    return prices_for(
        provider.kind,
        provider.model,
        provider.input_price_per_million,
        provider.output_price_per_million,
    )


def read_provider(provider: Provider) -> ProviderRead:
    prices = provider_prices(provider)
    return ProviderRead(
        id=provider.id,
        kind=ProviderKind(provider.kind),
        name=provider.name,
        base_url=provider.base_url,
        model=provider.model,
        has_api_key=provider.api_key_encrypted is not None,
        input_price_per_million=prices.input,
        output_price_per_million=prices.output,
        price_source=prices.source,
        timeout_seconds=provider.timeout_seconds,
        state=ProviderState(provider.state),
        state_reason=provider.state_reason,
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


# -- what a run reads -------------------------------------------------------------------


def config_of(provider: Provider) -> ProviderConfig:
    """The row, decrypted, as a call needs it (no ORM object leaves the transaction)."""
    key = decrypt_json(provider.api_key_encrypted) if provider.api_key_encrypted else {}
    digest = provider.kind == ProviderKind.DIGEST
    return ProviderConfig(
        kind=str(provider.kind),
        name=provider.name,
        id=provider.id,
        base_url=provider.base_url,
        model=DIGEST_MODEL if digest else provider.model,
        api_key=key.get("api_key"),
        timeout_seconds=provider.timeout_seconds,
    )


def config_for(
    session: Session,
    principal_or_workspace_id: Principal | uuid.UUID,
    provider_id: uuid.UUID | None,
) -> ProviderConfig:
    """The config of the provider ``provider_id`` of the workspace; None: the workspace's
    default (``AgentSettings.default_provider_id``), and without one the built-in digest.
    A provider of another workspace, or deleted, is a NotFound."""
    workspace_id = (
        principal_or_workspace_id.workspace_id
        if isinstance(principal_or_workspace_id, Principal)
        else principal_or_workspace_id
    )
    if provider_id is None:
        settings = session.get(AgentSettings, workspace_id)
        provider_id = settings.default_provider_id if settings is not None else None
        if provider_id is None:
            return BUILTIN_DIGEST
    provider = session.get(Provider, provider_id)
    if provider is None or provider.workspace_id != workspace_id:
        raise NotFound(f"No provider {provider_id}.")
    return config_of(provider)


def prices_of(session: Session, config: ProviderConfig) -> Prices:
    """The prices in effect for calls made with ``config``."""
    provider = session.get(Provider, config.id) if config.id is not None else None
    if provider is None:
        return prices_for(config.kind, config.model, None, None)
    return provider_prices(provider)


def append_ledger(
    session: Session,
    *,
    workspace_id: uuid.UUID,
    config: ProviderConfig,
    call: CallRecord,
    prices: Prices,
    purpose: str = "generate",
    agent_id: uuid.UUID | None = None,
    agent_name: str | None = None,
    run_id: uuid.UUID | None = None,
) -> LedgerEntry:
    """One provider call, appended to the usage ledger (rows are never updated)."""
    entry = LedgerEntry(
        workspace_id=workspace_id,
        agent_id=agent_id,
        agent_name=agent_name,
        run_id=run_id,
        purpose=purpose,
        provider_id=config.id,
        provider_name=config.name,
        provider_kind=config.kind,
        model=call.model,
        input_tokens=call.usage.input_tokens,
        output_tokens=call.usage.output_tokens,
        estimated=call.usage.estimated,
        input_price_per_million=prices.input,
        output_price_per_million=prices.output,
        cost_micros=cost_micros(call.usage, prices),
        latency_ms=call.latency_ms,
        outcome=call.outcome,
        error=call.error,
        extra={"status": call.status} if call.status is not None else {},
    )
    session.add(entry)
    session.flush()
    return entry


def mark_needs_reconnect(session: Session, provider_id: uuid.UUID | None, reason: str) -> None:
    """The server refused the provider's key: say so on the provider until it changes."""
    provider = session.get(Provider, provider_id) if provider_id is not None else None
    if provider is not None:
        provider.state, provider.state_reason = ProviderState.NEEDS_RECONNECT, reason
        session.flush()


# -- the test ---------------------------------------------------------------------------


def start_test(session: Session, principal: Principal, provider_id: uuid.UUID) -> Job:
    """Test the provider in the background (job kind ``provider_test``): one tiny
    completion, recorded in the ledger (purpose ``test``)."""
    principal.require_manager()
    provider = get_provider(session, principal, provider_id)
    job = jobs.create_job(
        session,
        workspace_id=principal.workspace_id,
        owner_id=principal.user_id,
        kind=TEST_JOB_KIND,
        params={"provider_id": str(provider.id)},
    )
    job_id = job.id
    after_commit(session, lambda: celery_app.send_task(TEST_TASK, (job_id,), task_id=job_id))
    return job


@dataclass(frozen=True)
class TestPlan:
    workspace_id: uuid.UUID
    config: ProviderConfig
    prices: Prices


@dataclass(frozen=True)
class TestAnswer:
    plan: TestPlan
    reply: str
    call: CallRecord | None  # None: the digest, which calls nothing
    error: ProviderError | None = None


def prepare_test(session: Session, job: Job) -> TestPlan:
    try:
        config = config_for(session, job.workspace_id, uuid.UUID(job.params["provider_id"]))
    except NotFound:
        raise JobFailed("The provider was deleted.") from None
    return TestPlan(job.workspace_id, config, prices_of(session, config))


def call_test(plan: TestPlan) -> TestAnswer:
    """Ask for one word (no transaction open). Never raises for what the server does."""
    if plan.config.kind != ProviderKind.OPENAI:
        return TestAnswer(plan, "The digest needs no model: nothing to call.", None)
    provider = OpenAIProvider(plan.config, temperature=0)
    try:
        reply, call = provider.complete([{"role": "user", "content": TEST_PROMPT}], TEST_MAX_TOKENS)
    except ProviderError as exc:
        return TestAnswer(plan, "", exc.call, exc)
    return TestAnswer(plan, reply.strip(), call)


def record_test(session: Session, _job: Job, answer: TestAnswer) -> dict[str, Any]:
    plan, call = answer.plan, answer.call
    if call is None:
        return {
            "ok": True,
            "model": plan.config.model,
            "latency_ms": 0,
            "reply": answer.reply,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost": 0.0,
            "estimated": False,
        }
    entry = append_ledger(
        session,
        workspace_id=plan.workspace_id,
        config=plan.config,
        call=call,
        prices=plan.prices,
        purpose="test",
    )
    if answer.error is not None:
        if answer.error.kind == ErrorKind.AUTH:
            mark_needs_reconnect(session, plan.config.id, answer.error.message)
        # Kept with the failure: the ledger row and the provider's state.
        raise JobFailed(answer.error.message)
    return {
        "ok": True,
        "model": call.model,
        "latency_ms": call.latency_ms,
        "reply": answer.reply,
        "input_tokens": call.usage.input_tokens,
        "output_tokens": call.usage.output_tokens,
        "estimated": call.usage.estimated,
        "cost": entry.cost_micros / 1_000_000,
        "cost_micros": entry.cost_micros,
    }
