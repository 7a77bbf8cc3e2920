"""The dashboard: one HTML page at / and its script and stylesheet under /static."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")

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
