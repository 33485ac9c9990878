"""One push connection: authenticate with the first message, send a snapshot, then batches.

Protocol (JSON text frames), on `WS /api/v1/live`:

    client -> {"token": "<bearer token from POST /api/v1/auth/token>"}    (within AUTH_TIMEOUT_S)
    server -> {"type": "hello", "email": ..., "interval_ms": 300}
    server -> {"type": "snapshot", "server_ms": ..., "cars": [{vin, name, lat, lon, heading, speed,
                                                              online, alert, ts_ms, fleet, owner}, ...]}
    server -> {"type": "cars", "server_ms": ..., "cars": [partial updates, one per changed car]}

The cars are the user's own and those of the fleets they operate; `fleet` is the car's fleet
(or null) and `owner` the owner's e-mail (null for the user's own cars).

Why the token goes in the first message and not in the URL: URLs end up in proxy and access
logs, a first frame does not; browsers cannot set an Authorization header on a WebSocket.
A bad or missing token gets `{"type": "error", "detail": ...}` and close code 4401 (the
4000-4999 range is the application's), so the page can send the user back to sign-in.

The token is checked once, at connect: an open connection keeps working until it closes,
and the client re-authenticates on reconnect (a token that expired meanwhile is refused then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from chelian.errors import AuthError
from chelian.services.accounts.signup import user_for_token
from chelian.storage.db import now_ms
from chelian.storage.repositories.users import User
from chelian.web.push import PushHub, Subscription
from chelian.web.snapshot import fleet_snapshot

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
FLUSH_INTERVAL_S = 0.3
"""Server-side batching: at most ~3 frames a second per connection, whatever the fleet does."""
CLOSE_UNAUTHORISED = 4401


async def serve_live(ws: WebSocket, hub: PushHub, engine: Engine,
                     interval_s: float = FLUSH_INTERVAL_S) -> None:
    await ws.accept()
    user = await _authenticate(ws, engine)
    if user is None:
        return
    sub = hub.subscribe(user.id)  # before the snapshot, so nothing committed in between is lost
    try:
        await ws.send_json({"type": "hello", "email": user.email, "interval_ms": round(interval_s * 1000)})
        cars = await run_in_threadpool(_snapshot, engine, user.id)
        await ws.send_json({"type": "snapshot", "server_ms": now_ms(), "cars": cars})
        await _pump(ws, sub, interval_s)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(sub)


async def _authenticate(ws: WebSocket, engine: Engine) -> User | None:
    try:
        first = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S)
        token = json.loads(first).get("token")
        if not isinstance(token, str) or not token:
            raise AuthError('the first message must be {"token": "<access token>"}')
        return await run_in_threadpool(user_for_token, engine, token)
    except (TimeoutError, ValueError, AttributeError, AuthError) as exc:
        detail = str(exc) if isinstance(exc, AuthError) else 'send {"token": "<access token>"} first'
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", "detail": detail})
            await ws.close(CLOSE_UNAUTHORISED, detail[:120])
        return None
    except WebSocketDisconnect:
        return None


def _snapshot(engine: Engine, user_id: int) -> list[dict]:
    with engine.connect() as conn:
        return fleet_snapshot(conn, user_id, now_ms())


async def _pump(ws: WebSocket, sub: Subscription, interval_s: float) -> None:
    """Flush the subscription every interval until the client goes away."""
    closed = asyncio.create_task(_until_closed(ws))
    try:
        while not closed.done():
            await asyncio.wait([closed], timeout=interval_s)
            batch = sub.take()
            if batch and not closed.done():
                await ws.send_json({"type": "cars", "server_ms": now_ms(), "cars": list(batch.values())})
    finally:
        closed.cancel()


async def _until_closed(ws: WebSocket) -> None:
    """Read (and ignore) client frames; returns when the client disconnects."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
