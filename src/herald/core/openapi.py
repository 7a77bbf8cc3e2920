"""The OpenAPI document says what the server really sends, errors included.

Routes declare only what is theirs (their success model, and errors that no rule below can
infer: 403, 409, 415, 429, a 404 for an id in the body); :func:`document_errors` adds the
rest to every operation, from what the operation itself shows:

======================================  ======  =============================================
the operation                           status  why
======================================  ======  =============================================
needs a bearer token (``security``)     401     no, unknown or expired token
takes an id in its path                 404     no such row, or another workspace's
takes parameters or a body              422     validation; ``errors`` lists each field
takes a body                            400     the body is not JSON in UTF-8
takes a body                            413     the body is larger than the server reads
writes (POST, PUT, PATCH, DELETE)       503     the database is busy; ``Retry-After``
needs a bearer token (``security``)     503     too many requests for the database
                                                connections (:mod:`herald.core.deps`)
======================================  ======  =============================================

Every error response is ``application/problem+json`` with the ``Problem`` schema
(``ValidationProblem`` for 422), never FastAPI's default ``application/json``
``HTTPValidationError``: the handlers in :mod:`herald.core.errors` render no other shape.
An error a route documents with a model of its own (health's 503 is a ``Health`` body) is
left as the route wrote it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from herald.core.errors import PROBLEM_JSON, Problem

SCHEMAS = "#/components/schemas/"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
# FastAPI's own 422 documentation, replaced by ValidationProblem wherever it appears.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


class FieldError(BaseModel):
    """One invalid input: where it is, what is wrong, and the kind of error."""

    loc: list[str | int] = Field(
        description='Where: `["body", "credentials", "secret"]`, `["query", "limit"]`.'
    )
    msg: str = Field(description="What is wrong, for a person.")
    type: str = Field(description="The kind of error, for a program (`missing`, ...).")


class ValidationProblem(Problem):
    """A 422: the request's parameters or body break the schema or a rule on a field."""

    errors: list[FieldError]  # type: ignore[assignment]


RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
WWW_AUTHENTICATE = {
    "description": "`Bearer`: the scheme to sign in with.",
    "required": True,
    "schema": {"type": "string"},
}

# status -> (description, headers) of the errors the rules add.
GENERIC: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The body could not be read: it is not JSON encoded as UTF-8.", {}),
    401: (
        "No token, or the token is unknown or expired: sign in with `POST /api/v1/auth/login`.",
        {"WWW-Authenticate": WWW_AUTHENTICATE},
    ),
    404: ("No such row in your workspace (another workspace's rows are not found either).", {}),
    413: ("The body is larger than Herald reads (`HERALD_MAX_REQUEST_BYTES`).", {}),
    422: ("The parameters or the body are invalid; `errors` lists each field.", {}),
    503: (
        "The database is busy (another write holds it, or it is unreachable), or the server "
        "has more requests in hand than database connections: try again after "
        "`Retry-After` seconds.",
        {"Retry-After": RETRY_AFTER},
    ),
}
# Headers an error of this status carries however it was documented (503 from a
# route's own cause, e.g. the live events' Redis, may come without Retry-After).
ALWAYS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": WWW_AUTHENTICATE},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": {**RETRY_AFTER, "required": False}},
}


def problem_schemas() -> dict[str, Any]:
    """The JSON Schemas of Problem, ValidationProblem and FieldError, keyed by name."""
    _, top = models_json_schema(
        [(Problem, "serialization"), (ValidationProblem, "serialization")],
        ref_template=SCHEMAS + "{model}",
    )
    return dict(top["$defs"])


def _statuses(operation: dict[str, Any], method: str) -> list[int]:
    statuses = []
    if operation.get("security"):
        statuses.append(401)
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "path" for p in parameters):
        statuses.append(404)
    if "requestBody" in operation:
        statuses += [400, 413]
    if parameters or "requestBody" in operation:
        statuses.append(422)
    if method in WRITE_METHODS or operation.get("security"):
        statuses.append(503)
    return statuses


PROBLEM_REFS = frozenset(
    SCHEMAS + name for name in ("Problem", "ValidationProblem", *FASTAPI_VALIDATION_SCHEMAS)
)
# Descriptions that say no more than the status code; the rules' own say what to do.
BARE_DESCRIPTIONS = frozenset({"", "Validation Error", "Additional Response"})


def _is_problem(response: dict[str, Any]) -> bool:
    """True when the response documents a problem (or nothing), not a model of its own."""
    return all(
        media.get("schema", {}).get("$ref", SCHEMAS + "Problem") in PROBLEM_REFS
        for media in response.get("content", {}).values()
    )


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add every error each operation can answer, as problem+json; returns ``schema``."""
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in _statuses(operation, method):
                description, headers = GENERIC[status]
                # A read's own 503 (a health report's body) keeps the headers it documents:
                # the generic one (no database connection free) is not what it answers.
                own_read_error = (
                    status == 503 and str(status) in responses and method not in WRITE_METHODS
                )
                responses.setdefault(str(status), {"description": description})
                if headers and not own_read_error:
                    responses[str(status)].setdefault("headers", dict(headers))
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400 or not _is_problem(response):
                    continue
                status = int(code)
                name = "ValidationProblem" if status == 422 else "Problem"
                response["content"] = {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + name}}}
                description = response.get("description", "")
                if status in GENERIC and (
                    description in BARE_DESCRIPTIONS or description == HTTPStatus(status).phrase
                ):
                    response["description"] = GENERIC[status][0]
                if status in ALWAYS_HEADERS:
                    response["headers"] = {**ALWAYS_HEADERS[status], **response.get("headers", {})}
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    components.update(problem_schemas())
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with :func:`document_errors` applied (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(build())  # build() caches the document in app.openapi_schema
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
