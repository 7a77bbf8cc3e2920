"""The pages Herald serves: the dashboard at / (its script and stylesheet under /static)
and the API docs at /docs (Swagger UI) and /redoc (ReDoc).

Every page loads only from Herald itself, so they work on a machine with no internet: the
docs' scripts and stylesheet come from the ``fastapi-offline`` package (Swagger UI 5 and
ReDoc 2 as published, MIT/Apache-2.0), served under /docs/assets.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
DOCS_ASSETS_DIR = Path(str(files("fastapi_offline").joinpath("static")))
DOCS_URL = "/docs"
DOCS_ASSETS_URL = "/docs/assets"
REDOC_URL = "/redoc"
# The docs pages may load only from Herald: the browser itself refuses anything else (ReDoc
# shows Redocly's logo from Redocly's host; its image then hides itself). Inline script
# and style: FastAPI's pages start Swagger UI and ReDoc with an inline script.
DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    )
)

router = APIRouter(include_in_schema=False)


class RevalidatedStaticFiles(StaticFiles):
    """StaticFiles (content types, ETag, 304) that makes browsers revalidate every time.

    The page names /static/app.js without a version, so a heuristically cached copy
    would outlive an upgrade.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


@router.get("/", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    return HTMLResponse(
        (STATIC_DIR / "index.html").read_text("utf-8"), headers={"Cache-Control": "no-cache"}
    )


def mount_static(app: FastAPI) -> None:
    """Serve src/herald/web/static at /static; call once from create_app."""
    app.mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static")


def mount_docs(app: FastAPI) -> None:
    """Serve the API docs at /docs and /redoc from Herald's own assets; call once from
    create_app, which turns FastAPI's own (CDN-loading) pages off."""
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    oauth2_redirect_url = DOCS_URL + "/oauth2-redirect"
    app.mount(
        DOCS_ASSETS_URL, RevalidatedStaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets"
    )

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def self_only(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        assets = root(request) + DOCS_ASSETS_URL
        return self_only(
            get_swagger_ui_html(
                openapi_url=root(request) + openapi_url,
                title=f"{app.title} API",
                swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{assets}/swagger-ui.css",
                swagger_favicon_url=f"{assets}/favicon.png",
                oauth2_redirect_url=root(request) + oauth2_redirect_url,
                # No badge from the public validator (Swagger UI would fetch it from there).
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return self_only(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        assets = root(request) + DOCS_ASSETS_URL
        return self_only(
            get_redoc_html(
                openapi_url=root(request) + openapi_url,
                title=f"{app.title} API",
                redoc_js_url=f"{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{assets}/favicon.png",
                with_google_fonts=False,
            )
        )
