from __future__ import annotations

import logging

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient


def test_unknown_endpoint_is_problem_json(client: TestClient) -> None:
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "No such endpoint: GET /api/v1/nope"


def test_method_not_allowed_is_problem_json(client: TestClient) -> None:
    response = client.put("/api/v1/health")
    assert response.status_code == 405
    assert response.json()["title"] == "Method Not Allowed"


def test_method_not_allowed_lists_every_method_of_the_path(client: TestClient) -> None:
    # GET and POST /posts are two routes; Starlette's own Allow named only the first.
    for path, allowed in (
        ("/api/v1/posts", "GET, POST"),
        ("/api/v1/posts/00000000-0000-0000-0000-000000000000", "GET, PATCH, DELETE"),
        ("/api/v1/channels/00000000-0000-0000-0000-000000000000/slots/config", "GET, PUT"),
    ):
        response = client.options(path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed, path
        assert response.headers["content-type"] == "application/problem+json"


def test_unhandled_error_shows_only_a_request_id(
    db_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    from herald.app import create_app

    app = create_app()
    boom = APIRouter()

    @boom.get("/boom")
    def explode() -> None:
        raise RuntimeError("database password is hunter2")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        caplog.set_level(logging.ERROR)
        response = client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    problem = response.json()
    assert problem["request_id"] == "req-123"
    assert "req-123" in problem["detail"]
    assert "hunter2" not in response.text
    # The traceback is in the log, tied to the id.
    assert "request_id=req-123" in caplog.text
    assert "hunter2" in caplog.text


def test_openapi_documents_every_endpoint_and_its_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    paths = spec["paths"]
    for route in (
        "/api/v1/auth/login",
        "/api/v1/auth/tokens",
        "/api/v1/channels",
        "/api/v1/channels/{channel_id}",
        "/api/v1/channels/{channel_id}/test",
        "/api/v1/posts",
        "/api/v1/posts/{post_id}",
        "/api/v1/jobs/{job_id}",
        "/api/v1/health",
        "/api/v1/events",
        "/api/v1/tasks/status/{task_id}",
        "/api/v1/posts/{post_id}/publish",
    ):
        assert route in paths, route
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation["responses"], f"{method} {path}"
            if path.startswith(("/api/v1/channels", "/api/v1/posts", "/api/v1/jobs")):
                assert "401" in operation["responses"], f"{method} {path} lacks 401"
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert {"401", "422", "429"} <= set(login)
    assert "application/problem+json" in login["429"]["content"]
    assert "404" in paths["/api/v1/posts/{post_id}"]["get"]["responses"]
