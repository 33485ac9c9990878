"""The one schema, shared by SQLite and PostgreSQL.

Timestamps are integer epoch milliseconds (`*_ms`): the same arithmetic works in both
dialects (downsampling buckets are `ts_ms / 60000`), comparisons are cheap, and no driver
ever guesses a time zone. The API turns them into UTC-aware datetimes at the edge.

Telemetry is one row per message with its signals as JSON (native types kept). Latest
state is one narrow row per (car, signal): a value is stored in `value_num` (numbers and
booleans as 0/1) or `value_text` (strings, and arrays as JSON); the signal catalog says
which, so reading it back restores the right type.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

# Explicit constraint names so Alembic migrations are identical on both dialects.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL (indexed operators, parsed once on insert); JSON text on SQLite.
SignalsJSON = JSON().with_variant(JSONB(), "postgresql")

# BigInteger ids autoincrement on PostgreSQL; SQLite only does so for INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

vehicles = Table(
    "vehicles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("vin", String(17), nullable=False, unique=True),
    Column("make", String(64), nullable=False),
    Column("model", String(64), nullable=False),
    Column("year", Integer, nullable=False),
    Column("owner_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("online", Boolean, nullable=False, server_default="0"),
    Column("status_ms", BigInteger, nullable=True),
)

vehicle_credentials = Table(
    "vehicle_credentials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("secret_hash", String(255), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
)

telemetry = Table(
    "telemetry",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("signals", SignalsJSON, nullable=False),
    Index("ix_telemetry_vehicle_ts", "vehicle_id", "ts_ms"),
)
"""One row per accepted telemetry message: its valid signals as a JSON object.

(vehicle, seq) as primary key is what makes a redelivered message land once. A row per
message rather than per signal keeps the insert path 25x narrower (two small B-trees
instead of one entry per sample), which is what lets ingest keep up with a fleet; one
signal's history is read back with the dialect's JSON operators (see
`repositories/telemetry.py`).
"""

latest_state = Table(
    "latest_state",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(255), primary_key=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("value_num", Float, nullable=True),
    Column("value_text", Text, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("data", JSON, nullable=False),
    UniqueConstraint("vehicle_id", "seq"),
    Index("ix_events_vehicle_ts", "vehicle_id", "ts_ms"),
)

rejected_messages = Table(
    "rejected_messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("topic", String(512), nullable=False),
    Column("vin", String(17), nullable=True, index=True),
    Column("reason", String(64), nullable=False, index=True),
    Column("detail", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("digest", String(64), nullable=True),
    Index("uq_rejected_messages_digest", "digest", unique=True),
)
"""The dead-letter table: the raw payload of every rejected message, with why.

`digest` (sha256 of topic, reason and payload; NULL on rows from before migration 0006) keeps a
redelivered message from being dead-lettered twice."""

# --- remote commands (chelian/services/commands) ---------------------------------------

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kid", String(22), nullable=False, unique=True),
    Column("public_key", String(43), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
)
"""Public keys of people's own devices (base64url Ed25519), for commands they sign themselves.

Registering a key here gives it no power over any car - only an owner-signed `enrol_key`
on the car does; the cloud uses it to check pre-signed envelopes and to say who sent them."""

agent_keys = Table(
    "agent_keys",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("kid", String(22), nullable=False),
    Column("public_key", String(43), nullable=False),
    Column("pinned_ms", BigInteger, nullable=False),
    Column("how", String(16), nullable=False),
)
"""Each car's own ack-signing key, pinned on first use (`how` = first_use) or by its owner."""

command_counters = Table(
    "command_counters",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("kid", String(22), primary_key=True),
    Column("counter", BigInteger, nullable=False),
)
"""The last counter the cloud signed for each (car, key); bumped with UPDATE ... RETURNING."""

commands = Table(
    "commands",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("args", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("result", JSON, nullable=True),
    Column("signer", String(16), nullable=False),
    Column("kid", String(22), nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("requested_by", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("env_hash", String(43), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("issued_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Column("last_sent_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("acked_ms", BigInteger, nullable=True),
    Column("car_ts_ms", BigInteger, nullable=True),
    Column("finished_ms", BigInteger, nullable=True),
    Column("origin", String(64), nullable=False, server_default="user"),
    UniqueConstraint("requested_by", "idempotency_key"),
    Index("ix_commands_vehicle_created", "vehicle_id", "created_ms"),
    Index("ix_commands_status_expires", "status", "expires_ms"),
)
"""Every command and what became of it: the audit trail (who, what, when, result, latency).

Who: `requested_by` is the user on whose behalf it was sent, `origin` what sent it - `user`
(their API token or the console), `service:<name>` (a platform service acting for them, e.g.
`service:theft` tracking a stolen car); apps of the developer platform will be `app:<id>` -
and `signer`/`kid` which key signed it (the platform's, or the owner's own device).

`payload` is the exact envelope published to the car, so a resend is byte-identical (the car
answers it from its memory instead of acting twice); `env_hash` is what the car's signed ack
quotes, so an ack can only settle the envelope it answers."""
