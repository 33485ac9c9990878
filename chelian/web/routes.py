"""The web console's HTTP surface: the page at `/`, its static files, and the push WebSocket.

Served by the same FastAPI app (and so the same `chelian serve` process and port) as the
API, so the console needs no second server, no CORS and no CDN: everything under
`/static` is in the repository (vendored libraries: see scripts/build-web).

The push hub lives on `app.state.push`: the runtime puts there the one it feeds (from
ingest directly on SQLite; on PostgreSQL from every ingest process's `chelian_live`
notifications, see feed.py); an app built without a runtime (tests) gets an unfed one on
first use, whose connections receive the snapshot and then nothing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from chelian.api.deps import API_PREFIX
from chelian.web.live import serve_live
from chelian.web.push import PushHub

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def hub_for(app: FastAPI) -> PushHub:
    hub = getattr(app.state, "push", None)
    if hub is None:
        hub = app.state.push = PushHub(app.state.engine)
    return hub


@router.get("/")
def console_page() -> FileResponse:
    # no-cache: the page is tiny, and a stale page must never outlive a new app.js
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.websocket(f"{API_PREFIX}/live")
async def live(ws: WebSocket) -> None:
    await serve_live(ws, hub_for(ws.app), ws.app.state.engine)


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
