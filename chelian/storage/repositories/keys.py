"""Public keys the cloud knows: people's device keys and each car's pinned ack key.

Only public halves live in the database. The platform's private key is a file in data_dir
(see services/commands/keys.py), never a row, so a database dump cannot sign a command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from chelian.errors import ConflictError
from chelian.storage.tables import agent_keys, signing_keys, vehicles


@dataclass(frozen=True, slots=True)
class DeviceKey:
    id: int
    kid: str
    public_key: str
    user_id: int
    name: str
    created_ms: int
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class AgentKey:
    vehicle_id: int
    kid: str
    public_key: str
    pinned_ms: int
    how: str


def add_device_key(conn: Connection, *, kid: str, public_key: str, user_id: int, name: str,
                   created_ms: int) -> DeviceKey:
    try:
        key_id = conn.execute(insert(signing_keys).values(kid=kid, public_key=public_key, user_id=user_id,
                                                          name=name, created_ms=created_ms)
                              .returning(signing_keys.c.id)).scalar_one()
    except IntegrityError as exc:
        raise ConflictError(f"key {kid} is already registered") from exc
    return DeviceKey(key_id, kid, public_key, user_id, name, created_ms, None)


def device_key(conn: Connection, kid: str) -> DeviceKey | None:
    row = conn.execute(select(signing_keys).where(signing_keys.c.kid == kid)).first()
    return DeviceKey(*row) if row else None


def device_keys_for(conn: Connection, user_id: int) -> list[DeviceKey]:
    rows = conn.execute(select(signing_keys).where(signing_keys.c.user_id == user_id)
                        .order_by(signing_keys.c.created_ms, signing_keys.c.id))
    return [DeviceKey(*r) for r in rows]


def revoke_device_key(conn: Connection, user_id: int, kid: str, now_ms: int) -> bool:
    c = signing_keys.c
    return conn.execute(update(signing_keys).where(c.user_id == user_id, c.kid == kid, c.revoked_ms.is_(None))
                        .values(revoked_ms=now_ms)).rowcount == 1


def agent_key(conn: Connection, vehicle_id: int) -> AgentKey | None:
    row = conn.execute(select(agent_keys).where(agent_keys.c.vehicle_id == vehicle_id)).first()
    return AgentKey(*row) if row else None


_BY_VINS = (select(vehicles.c.vin, vehicles.c.id, *agent_keys.c).select_from(vehicles)
            .outerjoin(agent_keys, agent_keys.c.vehicle_id == vehicles.c.id)
            .where(vehicles.c.vin.in_(bindparam("vins", expanding=True))))
"""Built once: the relay runs it for every batch of acks."""


def vehicles_and_agent_keys(conn: Connection, vins: Iterable[str]) -> dict[str, tuple[int, AgentKey | None]]:
    """VIN -> (vehicle id, pinned key or None) in one round trip; unknown VINs are absent."""
    rows = conn.execute(_BY_VINS, {"vins": list(vins)})
    return {r[0]: (r[1], AgentKey(*r[2:]) if r[2] is not None else None) for r in rows}


def pin_agent_key(conn: Connection, vehicle_id: int, kid: str, public_key: str, now_ms: int,
                  how: str) -> AgentKey:
    """Pin unless a key is already pinned; returns whichever key is pinned afterwards."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(dialect_insert(agent_keys).values(vehicle_id=vehicle_id, kid=kid, public_key=public_key,
                                                   pinned_ms=now_ms, how=how).on_conflict_do_nothing())
    pinned = agent_key(conn, vehicle_id)
    assert pinned is not None
    return pinned


def unpin_agent_key(conn: Connection, vehicle_id: int) -> bool:
    return conn.execute(delete(agent_keys).where(agent_keys.c.vehicle_id == vehicle_id)).rowcount == 1
