"""The platforms' own published schemas, so a fake checks what it receives against them.

The files live outside the repository (their licences are the platforms', see
``../shared/platform-specs/README.md``). ``HERALD_PLATFORM_SPECS`` points at that folder;
without it, ``../shared/platform-specs`` beside the checkout is used when it exists. When
the folder is missing, :func:`spec_path` returns None and fakes skip only this extra
conformance layer (their own checks of auth, shape and limits still run).

- :class:`OpenAPI`: the JSON request body of one operation, validated with ``jsonschema``
  (OpenAPI 3.0's ``nullable`` understood), per operation, since some of these documents
  fail whole-document validation (see the README there).
- :func:`ghost_validator`: Ghost's Admin API JSON Schemas (draft-07), all registered by id.
- :func:`graphql_errors`: a GraphQL document and its variables checked against an SDL.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from graphql import GraphQLError, OperationDefinitionNode, build_schema, parse, validate
from graphql.execution.values import get_variable_values
from referencing import Registry
from referencing.jsonschema import DRAFT7, DRAFT202012

from tests.services import IN_CI, service_missing

_REPO = Path(__file__).resolve().parents[2]


def specs_dir() -> Path | None:
    configured = os.environ.get("HERALD_PLATFORM_SPECS")
    candidates = [Path(configured)] if configured else []
    candidates.append(_REPO.parent / "shared" / "platform-specs")
    for candidate in candidates:
        if (candidate / "README.md").is_file():
            return candidate
    if IN_CI:
        # CI must not quietly skip the conformance layer (.ci/run sets the path).
        raise RuntimeError("CI=true but no platform specs folder: set HERALD_PLATFORM_SPECS")
    return None


# For a test that checks against the published schemas (the fixture is in
# tests/adapters/conftest.py: it calls require_specs).
needs_specs = pytest.mark.usefixtures("platform_specs")


def require_specs() -> Path:
    """The specs folder, for a test that checks against it: without it the test skips
    locally and fails in CI (as a missing service does, ``tests/services.py``)."""
    folder = specs_dir()
    if folder is None:
        service_missing("the platform specs folder", "set HERALD_PLATFORM_SPECS")
    assert folder is not None  # service_missing skipped or failed the test
    return folder


def spec_path(relative: str) -> Path | None:
    """The spec file at ``relative`` inside the specs folder, or None without the folder."""
    folder = specs_dir()
    if folder is None:
        return None
    path = folder / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the platform specs folder")
    return path


def _with_nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema's ``null`` type."""
    if isinstance(node, dict):
        out = {k: _with_nullable(v) for k, v in node.items()}
        if out.pop("nullable", False) is True:
            if "type" in out:
                kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
                out["type"] = [*kinds, "null"]
            elif "enum" in out:
                out["enum"] = [*out["enum"], None]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_with_nullable(v) for v in node]
    return node


class OpenAPI:
    """One OpenAPI 3.x document; validate request bodies per operation."""

    def __init__(self, path: Path) -> None:
        document = json.loads(path.read_text())
        self.version = str(document.get("openapi", "3.0"))
        if self.version.startswith("3.0"):
            document = _with_nullable(document)
        self.document = document
        self.uri = "urn:herald-spec:" + path.name
        spec = DRAFT202012 if self.version.startswith("3.1") else DRAFT7
        self.registry: Registry[Any] = Registry().with_resource(
            self.uri, spec.create_resource(document)
        )

    def operation(self, method: str, path: str) -> dict[str, Any]:
        try:
            operation: dict[str, Any] = self.document["paths"][path][method.lower()]
        except KeyError:
            raise KeyError(f"{method} {path} is not in {self.uri}") from None
        return operation

    def request_schema(
        self, method: str, path: str, content_type: str = "application/json"
    ) -> dict[str, Any]:
        body = self.operation(method, path)["requestBody"]
        if "$ref" in body:
            body = self._resolve(body["$ref"])
        return dict(body["content"][content_type]["schema"])

    def _resolve(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def errors(
        self, method: str, path: str, body: Any, content_type: str = "application/json"
    ) -> list[str]:
        """Every way ``body`` breaks the operation's request schema (empty when it fits)."""
        schema = self.request_schema(method, path, content_type)
        return self.errors_for(schema, body)

    def errors_for(self, schema: dict[str, Any], value: Any) -> list[str]:
        rooted = self._rooted(schema)
        validator_cls = (
            jsonschema.Draft202012Validator
            if self.version.startswith("3.1")
            else jsonschema.Draft7Validator
        )
        validator = validator_cls(rooted, registry=self.registry)
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
            for error in sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        ]

    def _rooted(self, node: Any) -> Any:
        """Make local ``#/…`` refs point into this document."""
        if isinstance(node, dict):
            return {
                k: (self.uri + v if k == "$ref" and v.startswith("#") else self._rooted(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [self._rooted(v) for v in node]
        return node


@lru_cache(maxsize=16)
def openapi(relative: str) -> OpenAPI | None:
    """The OpenAPI document at ``relative`` in the specs folder (cached), or None."""
    path = spec_path(relative)
    return OpenAPI(path) if path is not None else None


@lru_cache(maxsize=16)
def ghost_validator(schema_id: str) -> jsonschema.Draft7Validator | None:
    """Validator for one of Ghost's Admin API schemas (``posts.add``, ``images.upload``…)."""
    folder = spec_path("ghost/admin-api-schema")
    if folder is None:
        return None
    registry: Registry[Any] = Registry()
    schemas: dict[str, Any] = {}
    for file in sorted(folder.glob("*.json")):
        contents = json.loads(file.read_text())
        schemas[contents["$id"]] = contents
        registry = registry.with_resource(contents["$id"], DRAFT7.create_resource(contents))
    return jsonschema.Draft7Validator(schemas[schema_id], registry=registry)


def ghost_errors(schema_id: str, body: Any) -> list[str]:
    validator = ghost_validator(schema_id)
    if validator is None:
        return []
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in validator.iter_errors(body)
    ]


@lru_cache(maxsize=4)
def _graphql_schema(relative: str) -> Any:
    path = spec_path(relative)
    # The published SDL breaks a deprecation rule between an interface and its types
    # (IUser.ambassador); that does not matter for checking requests.
    return build_schema(path.read_text(), assume_valid=True) if path is not None else None


def graphql_errors(relative: str, query: str, variables: dict[str, Any] | None = None) -> list[str]:
    """Problems with a GraphQL request against the SDL at ``relative`` (empty when valid).

    Checks the document (fields, arguments, types) and coerces the variables to their
    declared input types, as a server does before running anything.
    """
    schema = _graphql_schema(relative)
    if schema is None:
        return []

    try:
        document = parse(query)
    except GraphQLError as exc:
        return [exc.message]
    errors = [error.message for error in validate(schema, document)]
    if errors:
        return errors
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            coerced = get_variable_values(
                schema, definition.variable_definitions or (), variables or {}
            )
            if isinstance(coerced, list):
                errors += [error.message for error in coerced]
    return errors
