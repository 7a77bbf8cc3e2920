"""Herald's exceptions, and the RFC 9457 problem+json rendering of its HTTP errors.

Every exception Herald defines derives from :class:`HeraldException` (a test walks every
``herald`` module to keep it so, and to keep this drawing complete). A name in brackets is
the module the class lives in when it is not this one; "also X" is a second, builtin base
kept for callers (and tests) that catch the builtin.

Hierarchy::

    HeraldException                 the root: every exception Herald defines
    ├── HeraldError                 an API caller's request cannot be done: message + status
    │   ├── NotFound                404 (also for another workspace's row)
    │   ├── Conflict                409
    │   │   └── AlreadyPublished    [publishing.actions] the delivery has already gone out
    │   ├── Unauthorized            401
    │   ├── Forbidden               403
    │   ├── TooManyRequests         429, with Retry-After
    │   │   └── QuotaExceeded       [agents.reserve] a generation over an agent's or the
    │   │                           workspace's monthly quota, refused before any call
    │   ├── PayloadTooLarge         413 (an image past HERALD_MEDIA_MAX_BYTES)
    │   ├── UnsupportedMediaType    415
    │   ├── InvalidInput            422 for a rule the schema cannot express (field-level)
    │   ├── OutgoingRequestRefused  [core.address_guard] the guarded client would not send or
    │   │   │                       read this
    │   │   ├── AddressNotAllowed   [core.address_guard] 422: the host is, or resolves to, a
    │   │   │                       refused address
    │   │   └── ResponseTooLarge    [core.http] 502: the answer is larger than the configured cap
    │   ├── TransactionOpenError    [core.http] 500: a request sent with a transaction open (a bug)
    │   ├── EventsUnavailable       [events.service] 503: live events cannot be served now
    │   ├── FetchFailed             [sources.fetch] 502 (422 for a refused address): a feed or
    │   │                           page gave no usable answer; ``retryable`` says whether
    │   │                           trying again later may help
    │   ├── NotAFeed                [sources.feeds] 422: the document holds no feed
    │   │   └── NoFeedAdvertised    [sources.feed_reader] a web page that advertises no feed
    │   ├── BackupError             [backups.archive] a backup cannot be made, read or restored
    │   │   ├── CorruptBackup       [backups.archive] a member fails its manifest checksum
    │   │   ├── BadBackupName       [backups.archive] 422 (also InvalidInput): not a backup name
    │   │   └── NoSuchBackup        [backups.archive] 404 (also NotFound)
    │   ├── SiteError               [sources.sites.base] 502: a community site's answer could not
    │   │                           be had or read, after the retries it deserved
    │   └── ServiceUnavailable      503, with Retry-After: try again shortly
    │       ├── DatabaseBusy        [core.db] another writer held SQLite past the write wait
    │       ├── Overloaded          [core.deps] a request waited past the pool's timeout for
    │       │                           a database connection
    │       ├── NotReady            [health.service] this API process's database or broker is
    │       │                       down (readiness)
    │       └── DatabaseUnavailable the connection to the database was lost
    ├── ContentTooLarge             413, a request body past its limit (also Starlette's
    │                               HTTPException: it is raised while FastAPI reads the body)
    ├── CliError                    [cli] the command line's HeraldError: a mistake in what
    │                               the user typed, printed as one line
    ├── HeraldFault                 a failure outside any HTTP answer: Herald's setup, its
    │   │                           stored data, a job or a bug; reported in a job's record,
    │   │                           on the command line or in the log
    │   ├── ConfigurationError      [core.settings] settings that cannot work (also RuntimeError)
    │   ├── CredentialsUnreadable   [core.crypto] no configured key decrypts stored credentials
    │   │                           (also RuntimeError)
    │   ├── UnknownPlatform         [adapters.registry] no adapter for a stored platform key
    │   │                           (also LookupError, as the registry lookup it wraps)
    │   ├── NotPrepared             [publishing.outcomes] a claimed delivery cannot be attempted
    │   │                           as stored (its channel's credentials or settings are unusable)
    │   ├── IllegalTransition       [publishing.actions] a delivery moved outside the transitions
    │   │                           table (a bug; also RuntimeError)
    │   ├── ProviderError           [agents.providers.base] one call to a text provider
    │   │                           failed; its kind says whether to retry
    │   ├── JobFailed               [jobs.runner] an expected failure: the job ends FAILURE
    │   │                           with this message and what its step wrote
    │   ├── NestedWriteTransaction  [core.db] a write transaction opened inside another (a bug;
    │   │                           also RuntimeError)
    │   ├── TransactionOpen         [channels.store] the adapter store used inside a transaction
    │   │                           (a bug; also RuntimeError)
    │   ├── NoDeliveryProgress      [channels.store] a store built for no delivery (channel test,
    │   │                           preview) asked for a delivery's progress (a bug; also
    │   │                           RuntimeError)
    │   ├── EmbeddedRedisError      [runtime.embedded_redis] the embedded Redis cannot start
    │   │                           (also RuntimeError)
    │   └── Failure                 [runtime.processes] `herald up` cannot run as started
    │       ├── GaveUp              [runtime.processes] a child process keeps exiting
    │       └── NotHealthy          [runtime.supervisor] Herald did not become healthy in time
    ├── AdapterError                [adapters.base] a platform call that did not succeed; the
    │   │                           publishing engine decides what the delivery does next
    │   ├── PermanentError          failure: the platform refused the content; retrying won't help
    │   ├── AmbiguousError          failure: the request may have reached the platform; a person
    │   │                           decides (the delivery becomes unconfirmed)
    │   ├── RetryableError          control flow (also ControlFlow): nothing was posted; try
    │   │                           again at retry_after (connect error, 5xx, 429)
    │   └── AuthError               control flow (also ControlFlow): hold the channel's deliveries
    │                               until it is reconnected
    └── ControlFlow                 not a failure: tells the caller what to do next (wait and
                                    retry, hold), as Dramatiq's Retry and Celery's Retry do;
                                    RetryableError and AuthError above are its members

The publishing engine's own outcomes (published, retry later, hold, give up) are values it
returns, not exceptions. Builtins are raised where Python or a library expects one:
ValueError for a bad argument or from a pydantic validator, TypeError from a JSON encoder's
default, ConnectionError for kombu to reconnect, AttributeError from a module's
``__getattr__``, RuntimeError from a guard on library internals Herald relies on.

A lost database connection before anything was committed is answered by replaying the
request once (see :mod:`herald.core.replay`); if the replay fails too, or the connection
was lost while committing (the change may or may not have been saved), the answer is 503.

Payload validation errors (pydantic) are also 422, with ``errors`` listing each field.
Unhandled exceptions become a 500 that shows only a request id; the traceback is logged
with that id.

FastAPI is imported where a response is built, not at the top: every service raises these
errors, and the command line (which loads the services but never answers HTTP) would
otherwise pay FastAPI's import, most of a simple command's start-up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald.core.exceptions import HeraldException

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://herald.dev/problems/"
# FastAPI's 400 for a body it cannot decode (not UTF-8, a broken multipart form).
UNREADABLE_BODY = "There was an error parsing the body"


class HeraldError(HeraldException):
    """An API caller's request cannot be done: rendered as problem+json with its status."""

    status_code: int = 400
    slug: str = "bad-request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class NotFound(HeraldError):
    status_code = 404
    slug = "not-found"


class Conflict(HeraldError):
    status_code = 409
    slug = "conflict"


class Unauthorized(HeraldError):
    status_code = 401
    slug = "unauthorized"

    def __init__(
        self, message: str = "Sign in first: send 'Authorization: Bearer <token>'."
    ) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(HeraldError):
    status_code = 403
    slug = "forbidden"


class TooManyRequests(HeraldError):
    status_code = 429
    slug = "too-many-requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class PayloadTooLarge(HeraldError):
    status_code = 413
    slug = "payload-too-large"


class ContentTooLarge(StarletteHTTPException, HeraldException):
    """413: a request body past its limit (``herald.core.limits.BodyLimit``).

    An HTTPException, not a HeraldError: it is raised while FastAPI reads the body, and
    FastAPI turns anything else raised there into a 400."""

    slug = "payload-too-large"

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(
            413,
            detail=f"The request body is larger than {limit:,} bytes ({setting}); "
            "send less (for a long text, split it; an image goes to POST /api/v1/media).",
        )
        self.limit = limit
        self.setting = setting


class UnsupportedMediaType(HeraldError):
    status_code = 415
    slug = "unsupported-media-type"


class ServiceUnavailable(HeraldError):
    status_code = 503
    slug = "service-unavailable"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "1", **(headers or {})})


class DatabaseUnavailable(ServiceUnavailable):
    slug = "database-unavailable"


# Set on a 503 for a lost database connection that happened before anything was
# committed: the replay middleware runs the request once more (and strips the header).
REPLAYABLE_HEADER = "x-herald-replayable"


class InvalidInput(HeraldError):
    status_code = 422
    slug = "invalid-input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors

    @classmethod
    def from_validation(cls, exc: ValidationError, *, prefix: str) -> InvalidInput:
        """A pydantic error on a nested document, without echoing its (secret) input."""
        errors = [
            {"loc": ["body", prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        return cls(f"{where}: {first['msg']}", errors=errors)


class Problem(BaseModel):
    """RFC 9457 problem details, as every Herald API error is rendered."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    request_id: str | None = None


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    from fastapi.responses import JSONResponse  # noqa: PLC0415 - start-up (see above)

    title = HTTPStatus(status).phrase
    body = Problem(
        type=TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=errors,
        request_id=request_id,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: echoing the input could leak a credential.
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


def _allowed_methods(request: Request) -> str:
    """Every method the request's path answers to, for a 405's ``Allow``.

    Starlette's 405 names only the first route that matched the path, though
    ``GET /posts`` and ``POST /posts`` are two routes.
    """
    from starlette.routing import Match  # noqa: PLC0415 - start-up (see above)

    routes = request.app.router.routes
    return ", ".join(
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


async def _herald_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HeraldError)
    errors = None
    if isinstance(exc, InvalidInput):
        # Every 422 lists its errors (the OpenAPI document promises it), if only one.
        loc = ["body", exc.field] if exc.field else []
        errors = exc.errors or [{"loc": loc, "msg": exc.message, "type": "value_error"}]
    return problem_response(
        exc.status_code,
        exc.message,
        slug=exc.slug,
        instance=request.url.path,
        errors=errors,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    from fastapi.exceptions import RequestValidationError  # noqa: PLC0415 - start-up (see above)

    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
    return problem_response(
        422,
        f"{where}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        slug="validation-error",
        instance=request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No such endpoint: {request.method} {request.url.path}"
    if exc.status_code == 400 and detail == UNREADABLE_BODY:  # FastAPI's own words
        detail = (
            "Herald could not read the request body: send JSON encoded as UTF-8 "
            "(Content-Type: application/json), or multipart/form-data for an upload."
        )
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(
        exc.status_code,
        detail,
        slug=getattr(exc, "slug", None),
        instance=request.url.path,
        headers=headers or None,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        # Raised before the commit (a lost commit is DatabaseUnavailable): nothing was
        # saved, so the request can run again on a fresh connection.
        response = problem_response(
            503,
            "The connection to the database was lost. Try again in a moment.",
            slug="database-unavailable",
            instance=request.url.path,
            headers={"Retry-After": "1", REPLAYABLE_HEADER: "1"},
        )
        log.warning("database connection lost during %s %s", request.method, request.url.path)
        return response
    if _is_sqlite_busy(exc):
        return problem_response(
            503,
            "The database is busy. Try again in a moment.",
            slug="database-busy",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )
    return await _unhandled(request, exc)


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed in use past the pool's timeout: the process has more
    # requests in hand than it has connections for. Nothing was saved; try again shortly.
    assert isinstance(exc, PoolTimeout)
    log.warning("no database connection free for %s %s", request.method, request.url.path)
    return problem_response(
        503,
        "Herald is answering more requests than it has database connections for. "
        "Try again in a moment.",
        slug="overloaded",
        instance=request.url.path,
        headers={"Retry-After": "1"},
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    log.error("unhandled error, request_id=%s", request_id, exc_info=exc)
    return problem_response(
        500,
        f"Herald hit an unexpected error. Quote request id {request_id} when reporting it.",
        slug="internal-error",
        instance=request.url.path,
        request_id=request_id,
    )


# Each exception type and the handler that renders it; Starlette picks the most specific.
_Handler = Callable[["Request", Exception], Awaitable["JSONResponse"]]


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError  # noqa: PLC0415 - start-up (see above)

    handlers: tuple[tuple[type[Exception], _Handler], ...] = (
        (HeraldError, _herald_error),
        (RequestValidationError, _validation_error),
        (StarletteHTTPException, _http_error),
        (DBAPIError, _database_error),
        (PoolTimeout, _pool_timeout),
        (Exception, _unhandled),
    )
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)


def _is_sqlite_busy(exc: DBAPIError) -> bool:
    # SQLITE_BUSY / SQLITE_LOCKED from a writer that is not Herald's (Herald's own writers
    # queue on the lock file and raise DatabaseBusy).
    code = getattr(exc.orig, "sqlite_errorname", "")
    return code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for problem+json errors that are the route's own.

    Only for what :func:`herald.core.openapi.document_errors` cannot infer from the
    operation (403, 409, 415, 429, a 404 for an id in the body, a 422 for a rule on a route
    that takes no input): 401, 404 for path ids, 400/413/422 and 503 are added to every
    operation that can answer them.
    """
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
