"""Remote commands for the caller's cars: send (202, idempotent), read (optionally waiting), list.

The service lives on `app.state.commands`: the runtime puts one there wired to its MQTT
relay; an app without a relay (tests, an API-only process) builds one on first use, and its
commands stay `queued` until a relay somewhere sends them, or expire.

`GET .../commands/{id}?wait_s=N` is async: a waiting request holds no worker thread, and the
relay wakes it the moment the ack is committed (see services/commands/notify.py). The caller
who created the command in this process is answered from memory (notify.py says what that
trades).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from chelian.api.deps import API_PREFIX, oauth2_scheme, parse_instant
from chelian.api.schemas.commands import CommandCreate, CommandPublic, CommandsPublic
from chelian.errors import NotFoundError
from chelian.security.hashing import token_digest
from chelian.services.commands.lifecycle import MAX_WAIT_S, STATES, CommandService, caller_car
from chelian.services.commands.presigned import submit_presigned
from chelian.storage.db import now_ms
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories.commands import CallerView, Car, CommandRow

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["commands"])

DEFAULT_LIST, MAX_LIST = 50, 500


def command_service(request: Request) -> CommandService:
    service = getattr(request.app.state, "commands", None)
    if service is None:
        service = CommandService.from_settings(request.app.state.settings, request.app.state.engine)
        request.app.state.commands = service
    return service


async def get_commands(request: Request) -> CommandService:
    """Async: a plain attribute read must not cost a worker-thread hop on the hot path."""
    return command_service(request)


CommandsDep = Annotated[CommandService, Depends(get_commands)]


Token = Annotated[str, Depends(oauth2_scheme)]


def find_caller(commands: CommandService, vin: str, token: str, command_id: str | None = None) -> CallerView:
    """CurrentUser + OwnedVehicle (+ the command) in one query on one short-lived connection.

    Same rules (the token's user, 404 for anyone else's car or command), but the connection is
    not held for the whole request - a long poll (`wait_s`) must not keep one while it waits,
    and a request holding one while the service checks out another can starve the pool under
    load - and it costs one round trip instead of three on the command hot path."""
    with commands.autocommit.connect() as conn:
        view = repo.caller_view(conn, token_digest(token), now_ms(), vin.strip().upper(), command_id)
    caller_car(view, vin)
    if command_id is not None and view.command is None:
        raise NotFoundError(f"no command {command_id} for this vehicle")
    return view


def caller_and_vehicle(vin: str, token: Token, commands: CommandsDep) -> CallerView:
    return find_caller(commands, vin, token)


CallerVehicle = Annotated[CallerView, Depends(caller_and_vehicle)]

# The two hot routes are async and run their blocking part in *one* worker-thread hop (caller
# lookup included): every hop is a GIL hand-off that costs milliseconds on a busy server. They
# take the service from the Request rather than as a dependency: FastAPI solving one more
# dependency per request cost more CPU than the rest of the route.


@router.post("/{vin}/commands", status_code=status.HTTP_202_ACCEPTED, response_model=CommandPublic,
             responses={400: {"description": "Unknown type, invalid args, a type the platform may not sign, "
                                             "or a pre-signed envelope that cannot be relayed"},
                        404: {"description": "Not one of your cars"},
                        409: {"description": "Idempotency-Key already used for a different request"}})
async def send_command(
    vin: str, body: CommandCreate, token: Token, request: Request,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255,
                                                  description="Retry with the same key: same command, "
                                                              "never sent twice")] = None,
) -> Response:
    """Queue a command for the car; it is sent when the car is online and expires otherwise."""
    commands = command_service(request)

    def presigned() -> tuple[Car, CommandRow, bool]:
        caller = find_caller(commands, vin, token)
        assert caller.user_id is not None and caller.vehicle is not None
        signed = body.signed.model_dump(exclude_none=True)  # type: ignore[union-attr]
        return caller.vehicle, *submit_presigned(commands, caller.vehicle, caller.user_id, signed,
                                                 idempotency_key)

    if body.signed is not None:
        vehicle, row, created = await run_in_threadpool(presigned)
    else:
        assert body.type is not None
        # Caller, car, Idempotency-Key and counter in one statement, on the same connection as
        # the INSERT: a platform command costs one pool checkout and two round trips.
        vehicle, row, created = await commands.request_async(token_digest(token), vin, body.type, body.args,
                                                             body.expires_in_s, idempotency_key)
    return _json(CommandPublic.of(vehicle.vin, row), status.HTTP_202_ACCEPTED,
                 None if created else {"Idempotent-Replayed": "true"})


@router.get("/{vin}/commands/{command_id}", response_model=CommandPublic,
            responses={404: {"description": "Not one of your cars, or no such command for it"}})
async def read_command(
    vin: str, command_id: str, token: Token, request: Request,
    wait_s: Annotated[float, Query(ge=0, description=f"wait until the command is final, at most this long "
                                                     f"(capped at {MAX_WAIT_S:g} s)")] = 0,
) -> Response:
    commands = command_service(request)
    found: list[Car] = []
    asker = (token_digest(token), vin.strip().upper())

    def read() -> CommandRow:
        if found:
            return commands.get(found[0].id, command_id)
        caller = find_caller(commands, vin, token, command_id)  # the first read checks the caller too
        assert caller.vehicle is not None and caller.command is not None
        found.append(caller.vehicle)
        return commands.current(caller.command)

    row = await commands.wait(command_id, wait_s, read, asker)
    return _json(CommandPublic.of(found[0].vin if found else asker[1], row))


def _json(command: CommandPublic, status_code: int = status.HTTP_200_OK,
          headers: dict[str, str] | None = None) -> Response:
    """The response_model's JSON, serialised here: FastAPI would validate the model it was just
    built from once more before serialising it (CommandPublic.of builds it valid)."""
    return Response(command.__pydantic_serializer__.to_json(command), status_code, headers,
                    media_type="application/json")


@router.get("/{vin}/commands", response_model=CommandsPublic,
            responses={404: {"description": "Not one of your cars"}})
def list_commands(
    caller: CallerVehicle, commands: CommandsDep,
    status_: Annotated[str | None, Query(alias="status", pattern="^(" + "|".join(STATES) + ")$")] = None,
    before: Annotated[str | None, Query(description="only commands created before this (ISO-8601 or "
                                                    "epoch ms)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = DEFAULT_LIST,
) -> CommandsPublic:
    """Newest first: the car's command audit trail."""
    vehicle = caller.vehicle
    assert vehicle is not None
    before_ms = parse_instant(before, "before") if before is not None else None
    rows = commands.list(vehicle.id, limit=limit + 1, before_ms=before_ms, status=status_)
    data = [CommandPublic.of(vehicle.vin, r) for r in rows[:limit]]
    return CommandsPublic(vin=vehicle.vin, data=data, count=len(data), truncated=len(rows) > limit)
