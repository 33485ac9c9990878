"""The owner REST API as a FastAPI app, built from explicit platform objects.

`create_app` takes settings, engine, catalog and metrics instead of reading globals, so the
CLI, the all-in-one server and tests can each build their own app; nothing happens at import
time. The caller owns the engine (and disposes of it).

Errors: services raise ChelianError subclasses with a reason meant for people; here they
become `{"detail": reason}` with the matching status. Request-validation errors keep
FastAPI's 422 with its per-field detail.

Example:
    app = create_app(Settings.load(), make_engine(url), Catalog.builtin(), Metrics())
    uvicorn.run(app)
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chelian.api.routes import alerts as alert_routes
from chelian.api.routes import auth, events, history, state, users, vehicles
from chelian.api.routes import commands as command_routes
from chelian.api.routes import diagnostics as diagnostics_routes
from chelian.api.routes import fleets as fleet_routes
from chelian.api.routes import geofences as geofence_routes
from chelian.api.routes import keys as key_routes
from chelian.api.routes import map as map_routes
from chelian.api.routes import metrics as metrics_routes
from chelian.api.routes import trips as trip_routes
from chelian.api.routes import contacts as contact_routes
from chelian.api.routes import incidents as incident_routes
from chelian.api.routes import roadside as roadside_routes
from chelian.api.routes import stolen as stolen_routes
from chelian.api.routes import webhooks as webhook_routes
from chelian.config import Settings
from chelian.errors import AuthError, ChelianError, ConflictError, NotFoundError, ValidationError
from chelian.metrics import Metrics
from chelian.signals import Catalog
from chelian.web.routes import install_console

log = logging.getLogger(__name__)

ERROR_STATUS: dict[type[ChelianError], int] = {
    ValidationError: 400,
    AuthError: 401,
    NotFoundError: 404,
    ConflictError: 409,
}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close what the serving loop opened: the command service's async connections belong to it."""
    yield
    commands = getattr(app.state, "commands", None)
    if commands is not None and commands.async_pool is not None:
        await commands.async_pool.close()


def create_app(settings: Settings, engine: Engine, catalog: Catalog, metrics: Metrics) -> FastAPI:
    app = FastAPI(
        title="chelian",
        version=_version(),
        summary="Your cars' live state, history and events, from your own connected-car platform.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.catalog = catalog
    app.state.metrics = metrics

    app.add_exception_handler(ChelianError, _chelian_error)
    app.add_middleware(RequestCounter, counter=metrics.http_requests)

    # Commands first: Starlette tries routes in order, and commands are the requests whose
    # latency matters most (a car's owner waits at the door); the paths do not overlap.
    app.include_router(command_routes.router)
    for module in (users, auth, vehicles, state, history, events, map_routes, metrics_routes):
        app.include_router(module.router)
    app.include_router(key_routes.router)
    for module in (incident_routes, roadside_routes, stolen_routes, contact_routes, webhook_routes):
        app.include_router(module.router)  # safety and security
    app.include_router(geofence_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(diagnostics_routes.router)
    app.include_router(trip_routes.router)
    app.include_router(fleet_routes.router)
    install_console(app)  # the web console at /, its static files and the push WebSocket
    return app


async def _chelian_error(_request: Request, exc: Exception) -> JSONResponse:
    status = next((code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls)), 500)
    if status == 500:
        log.error("unexpected %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


class RequestCounter:
    """Counts every HTTP request by method, route template and status.

    The route template (`/api/v1/vehicles/{vin}`), not the raw path, keeps the label set
    bounded; requests that match no route share the label `unmatched`. A pure ASGI
    middleware (not BaseHTTPMiddleware) so it adds no task or buffering per request.
    """

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before answering, the server answers 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.counter.labels(scope["method"], route, str(status)).inc()


def _version() -> str:
    try:
        return importlib.metadata.version("chelian")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
