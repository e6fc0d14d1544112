"""The chat page: ``GET /`` is a single-page app, ``/ui/*`` its static files.

The page is a plain client of the public ``/v1`` API (it asks for the API key itself), so
neither route needs a key. The files ship in the package (``api/ui``); nothing is fetched
from elsewhere at run time, which the Content-Security-Policy also enforces.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
PATH = "/ui"
# Same-origin only: scripts, styles and API calls all come from this server.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", media_type="text/html", headers=_HEADERS)


def mount(app: FastAPI) -> None:
    """``/ui`` as static files (an APIRouter cannot carry a mount into the app)."""
    app.mount(PATH, StaticFiles(directory=UI_DIR), name="ui")
