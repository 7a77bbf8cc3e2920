"""The OpenAPI document says what the server sends: every error, as problem+json.

The document's own rules are checked on every operation, and real error answers (an
undecodable body, bad JSON, a rule broken without a field) are validated against the
schema the document gives for them.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from referencing import Registry, Resource

from herald.app import create_app
from herald.core.errors import InvalidInput
from tests.conftest import Account

PROBLEM_JSON = "application/problem+json"
WRITE_METHODS = {"post", "put", "patch", "delete"}
# Error answers with a body of their own: the health reports say what is down.
OWN_ERROR_BODIES = {
    ("get", "/api/v1/health", "503"),
    ("get", "/api/v1/tasks/health", "503"),
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app().openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def validate(spec: dict[str, Any], path: str, method: str, status: int, response: Any) -> None:
    """Check a real answer against the response the document gives for it."""
    documented = spec["paths"][path][method]["responses"].get(str(status))
    assert documented is not None, f"{method.upper()} {path} does not document {status}"
    content_type = response.headers["content-type"].split(";")[0]
    assert content_type in documented["content"], (content_type, list(documented["content"]))
    schema = documented["content"][content_type]["schema"]
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.opaque(spec))
    ref = schema["$ref"].replace("#/", "urn:openapi#/")
    jsonschema.Draft202012Validator({"$ref": ref}, registry=registry).validate(response.json())
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, f"{status} lacks the documented {name}"


def test_every_error_response_is_problem_json(spec: dict[str, Any]) -> None:
    wrong = []
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (method, path, status) in OWN_ERROR_BODIES:
                continue
            content = response.get("content", {})
            expected = "ValidationProblem" if status == "422" else "Problem"
            if list(content) != [PROBLEM_JSON] or content[PROBLEM_JSON]["schema"] != {
                "$ref": f"#/components/schemas/{expected}"
            }:
                wrong.append(f"{method.upper()} {path} {status}: {sorted(content)}")
    assert wrong == []
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_operation_documents_the_errors_it_can_answer(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        expected = set()
        if operation.get("security"):
            expected.add("401")
        if any(p["in"] == "path" for p in parameters):
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"400", "413", "422"}
        if parameters:
            expected.add("422")
        if method in WRITE_METHODS or operation.get("security"):
            expected.add("503")
        missing += [f"{method.upper()} {path} {s}" for s in sorted(expected - set(responses))]
        if "401" in responses:
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"], path
        for status in ("429", "503"):
            if status in responses and (method, path, status) not in OWN_ERROR_BODIES:
                retry_after = responses[status]["headers"]["Retry-After"]
                if method in WRITE_METHODS or status == "429":
                    assert retry_after["required"], f"{method} {path} {status}"
    assert missing == []
    # Every operation but the public ones needs a token.
    public = {
        (m, p)
        for m, p, op in operations(spec)
        if not op.get("security") and "401" not in op["responses"]
    }
    assert public == {
        ("get", "/api/v1/health"),
        ("get", "/api/v1/health/live"),
        ("get", "/api/v1/health/ready"),
        ("get", "/api/v1/platforms"),
    }


def test_validation_problem_lists_each_field(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "errors" in schemas["ValidationProblem"]["required"]
    assert set(schemas["FieldError"]["required"]) == {"loc", "msg", "type"}
    assert {"type", "title", "status", "detail"} <= set(schemas["Problem"]["required"])


def test_an_undecodable_body_is_a_documented_400(
    client: TestClient, account: Account, spec: dict[str, Any]
) -> None:
    response = client.post(
        "/api/v1/posts",
        content=b'{"title": "caf\xe9"}',  # Latin-1, not UTF-8
        headers={**account.headers, "content-type": "application/json"},
    )
    assert response.status_code == 400
    validate(spec, "/api/v1/posts", "post", 400, response)
    assert "send JSON encoded as UTF-8" in response.json()["detail"]


def test_bad_json_is_a_documented_422_with_errors(
    client: TestClient, account: Account, spec: dict[str, Any]
) -> None:
    response = client.post(
        "/api/v1/posts",
        content=b'{"title": ',
        headers={**account.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    validate(spec, "/api/v1/posts", "post", 422, response)
    assert response.json()["errors"][0]["type"] == "json_invalid"


def test_missing_token_is_a_documented_401(client: TestClient, spec: dict[str, Any]) -> None:
    response = client.get("/api/v1/posts")
    assert response.status_code == 401
    validate(spec, "/api/v1/posts", "get", 401, response)


def test_a_rule_broken_without_a_field_still_lists_errors(db_backend: str) -> None:
    app = create_app()
    rules = APIRouter()

    @rules.post("/rule")
    def broken() -> None:
        raise InvalidInput("slot times are local wall-clock times, without an offset")

    app.include_router(rules)
    with TestClient(app) as client:
        response = client.post("/rule")
    assert response.status_code == 422
    spec = app.openapi()
    spec["paths"]["/rule"]["post"]["responses"]["422"] = spec["paths"]["/api/v1/posts"]["post"][
        "responses"
    ]["422"]
    validate(spec, "/rule", "post", 422, response)
    assert response.json()["errors"] == [
        {
            "loc": [],
            "msg": "slot times are local wall-clock times, without an offset",
            "type": "value_error",
        }
    ]
