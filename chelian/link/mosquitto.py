"""Configuration for a production Mosquitto (2.x) that enforces chelian's rules by itself.

Mosquitto gets two listeners, each with its own users and ACL (`per_listener_settings true`):

* the **car listener** (`port`, 1883 by default, usually public): only cars can log in
  (`passwd`: `VIN:$7$...` lines copied straight from the database - car secrets are stored
  in Mosquitto's own PBKDF2-SHA512 format, so no plaintext is ever needed). It runs with
  `use_username_as_clientid true`: whatever client id a car sends, its session is named by
  its VIN, so a car can take over neither another car's session nor the session of one of
  chelian's own services. `acl`: `pattern` rules with `%u`, one rule for every car: a car
  may write only `v1/vehicles/{its VIN}/{telemetry|events|status|acks}` and read only
  `v1/vehicles/{its VIN}/commands`.
* the **platform listener** (`platform_port`, 1885 on 127.0.0.1 by default): only the
  service account of chelian's own components (ingest workers, command relay) can log in
  (`platform-passwd`, hashed here with the same function); `platform-acl` lets it read and
  write `v1/vehicles/#` (which covers its `$share/{group}/v1/vehicles/...` subscriptions).
  Their client ids (`chelian-ingest-{host}`, `chelian-commands-0`) name persistent sessions
  whose queued QoS 1 messages must survive; no car can log in here to steal them.

`mosquitto.conf` adds persistence, an expiry for abandoned persistent sessions, and queue
limits raised well above Debian's defaults, which drop QoS 1 messages under load.

After cars are provisioned, rotated or revoked, rewrite the files and send Mosquitto SIGHUP
(`sync_mosquitto`, or `chelian broker mosquitto-config --reload-pid-file`): it rereads the
password and ACL files and disconnects clients whose credentials are no longer valid
(observed with Mosquitto 2.0.11). Until then Mosquitto keeps accepting the old secrets.

Example:
    files = write_mosquitto_config(engine, Path("/etc/mosquitto/chelian"), port=1883,
                                   platform_port=1885, service_account=service_account(settings))
    # mosquitto -c /etc/mosquitto/chelian/mosquitto.conf
    sync_mosquitto(engine, files, service_account(settings), pid=1234)
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from chelian.config import Settings
from chelian.errors import ChelianError, ConfigError
from chelian.link.broker import packet_limit
from chelian.link.service_account import ServiceAccount
from chelian.link.service_account import service_account as resolve_service_account
from chelian.link.topics import CAR_PUBLISHES, CAR_SUBSCRIBES, ROOT
from chelian.security.hashing import hash_car_secret
from chelian.storage.db import make_engine
from chelian.storage.repositories import vehicles

log = logging.getLogger("chelian.link.mosquitto")

CONF_NAME, PERSISTENCE_NAME = "mosquitto.conf", "persistence"
PASSWORD_NAME, ACL_NAME = "passwd", "acl"  # the car listener's
PLATFORM_PASSWORD_NAME, PLATFORM_ACL_NAME = "platform-passwd", "platform-acl"
DEFAULT_PORT = 1883
"""The car listener: MQTT's registered port, the one car firmware and firewalls expect."""
DEFAULT_PLATFORM_PORT = 1885
"""The platform listener. Not 1884: that is the embedded broker's default (`chelian serve`
without `--mqtt-url`), and a demo or a test platform must be able to run beside this
Mosquitto on one machine. Not 8883 either: MQTT over TLS by convention, which a TLS
terminator in front of the car listener would want."""
DEFAULT_PLATFORM_BIND = "127.0.0.1"
"""Ingest and relay usually run beside the broker; give a private address when they do not."""
DEFAULT_PERSISTENT_CLIENT_EXPIRATION = "7d"
"""A persistent session nobody reconnects to for this long is deleted. Without it, the
session of an ingest worker that was removed (or renamed) stays a member of the `$share`
group forever and keeps receiving - into a queue nobody reads - its share of every car's
messages. A week covers a long outage or a holiday; a worker away longer starts afresh."""
DEFAULT_MAX_QUEUED_MESSAGES = 100_000
"""Per-client queue above the in-flight window (Debian's default is 1000): the ingest's
persistent session must hold everything cars send while it restarts."""
DEFAULT_MAX_INFLIGHT_MESSAGES = 10_000
"""Per-client unacknowledged QoS 1 window (default 20): the ingest acks only after a batch
(up to `ingest_batch_max` messages, a few batches in the pipeline) is committed."""
_ALL_ADDRESSES = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class MosquittoFiles:
    conf: Path
    password_file: Path
    """Cars only (the car listener)."""
    acl_file: Path
    persistence_dir: Path
    platform_password_file: Path
    """The service account only (the platform listener)."""
    platform_acl_file: Path

    @classmethod
    def in_dir(cls, out_dir: Path) -> MosquittoFiles:
        out_dir = Path(out_dir).resolve()
        return cls(out_dir / CONF_NAME, out_dir / PASSWORD_NAME, out_dir / ACL_NAME,
                   out_dir / PERSISTENCE_NAME, out_dir / PLATFORM_PASSWORD_NAME, out_dir / PLATFORM_ACL_NAME)


def car_password_lines(engine: Engine, account: ServiceAccount) -> list[str]:
    """`username:hash` for every live car credential (never the service account's name)."""
    with engine.connect() as conn:
        credentials = vehicles.all_credentials(conn)
    lines = []
    for cred in credentials:
        if cred.username == account.username or not _valid_username(cred.username):
            log.warning("mosquitto_user_skipped username=%s reason=reserved_or_invalid", cred.username)
            continue
        lines.append(f"{cred.username}:{cred.secret_hash}")
    return lines


def platform_password_lines(account: ServiceAccount) -> list[str]:
    """The platform listener's only user: the service account."""
    if not _valid_username(account.username):
        raise ConfigError(f"service account username {account.username!r} cannot be used in a Mosquitto file")
    return [f"{account.username}:{hash_car_secret(account.password)}"]


def car_acl_text() -> str:
    """The car listener's ACL: per-car pattern rules (the username is the VIN)."""
    rules = [f"pattern write {ROOT}/%u/{channel}" for channel in CAR_PUBLISHES]
    rules += [f"pattern read {ROOT}/%u/{channel}" for channel in CAR_SUBSCRIBES]
    return "\n".join([
        "# Generated by chelian: regenerate instead of editing.",
        "# Every car's username is its VIN; it may only use topics under its own VIN.",
        *rules,
        "",
    ])


def platform_acl_text(service_username: str) -> str:
    """The platform listener's ACL: the service account may use everything below the root."""
    if not _valid_username(service_username):
        raise ConfigError(f"service account username {service_username!r} cannot be used in a Mosquitto ACL")
    return "\n".join([
        "# Generated by chelian: regenerate instead of editing.",
        "# The platform's service account (ingest workers, command relay).",
        f"user {service_username}",
        f"topic readwrite {ROOT}/#",
        "",
    ])


def conf_text(files: MosquittoFiles, *, port: int = DEFAULT_PORT, bind_address: str | None = None,
              platform_port: int = DEFAULT_PLATFORM_PORT, platform_bind: str | None = DEFAULT_PLATFORM_BIND,
              max_payload_bytes: int = 16384, max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES,
              max_inflight_messages: int = DEFAULT_MAX_INFLIGHT_MESSAGES, autosave_interval_s: int = 60,
              persistent_client_expiration: str = DEFAULT_PERSISTENT_CLIENT_EXPIRATION) -> str:
    if port == platform_port:
        raise ConfigError(f"the car listener and the platform listener need two ports (both are {port})")

    def listener(p: int, address: str | None) -> str:
        return f"listener {p} {address}" if address else f"listener {p}"

    return "\n".join([
        "# Generated by chelian: regenerate instead of editing.",
        "# Each listener has its own users and ACL: cars cannot log in where chelian's services do.",
        "per_listener_settings true",
        "",
        "# Persistent sessions (the ingest's) and their queued QoS 1 messages survive a restart.",
        "persistence true",
        f"persistence_location {files.persistence_dir}/",
        f"autosave_interval {autosave_interval_s}",
        "# A removed ingest worker's session would otherwise stay in the $share group for ever,",
        "# receiving its share of every car's messages into a queue nobody reads.",
        f"persistent_client_expiration {persistent_client_expiration}",
        "",
        "# Debian's defaults (1000 queued, 20 in flight) drop QoS 1 messages under load.",
        f"max_queued_messages {max_queued_messages}",
        f"max_inflight_messages {max_inflight_messages}",
        "",
        "# Oversized payloads still reach the ingest (it dead-letters them); this only stops",
        "# a client from making the broker buffer megabytes.",
        f"max_packet_size {packet_limit(max_payload_bytes)}",
        "set_tcp_nodelay true",
        "",
        "# Cars. A car's session is always named by its username, the VIN, whatever client id",
        "# it sends: it can take over no other car's session and none of the platform's.",
        listener(port, bind_address),
        "allow_anonymous false",
        "use_username_as_clientid true",
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        "",
        "# chelian's own services (ingest workers, command relay): the service account only.",
        listener(platform_port, platform_bind),
        "allow_anonymous false",
        f"password_file {files.platform_password_file}",
        f"acl_file {files.platform_acl_file}",
        "",
    ])


def write_auth_files(engine: Engine, files: MosquittoFiles, account: ServiceAccount, *,
                     broker_user: str | None = None) -> int:
    """Rewrite both listeners' password and ACL files; returns the number of cars."""
    cars = car_password_lines(engine, account)
    _write_atomic(files.password_file, "".join(f"{line}\n" for line in cars), group_of=broker_user)
    _write_atomic(files.platform_password_file, "\n".join(platform_password_lines(account)) + "\n",
                  group_of=broker_user)
    _write_atomic(files.acl_file, car_acl_text(), group_of=broker_user)
    _write_atomic(files.platform_acl_file, platform_acl_text(account.username), group_of=broker_user)
    return len(cars)


def write_mosquitto_config(engine: Engine, out_dir: Path, *, service_account: ServiceAccount,
                           port: int = DEFAULT_PORT, bind_address: str | None = None,
                           platform_port: int = DEFAULT_PLATFORM_PORT,
                           platform_bind: str | None = DEFAULT_PLATFORM_BIND, max_payload_bytes: int = 16384,
                           max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES,
                           max_inflight_messages: int = DEFAULT_MAX_INFLIGHT_MESSAGES,
                           autosave_interval_s: int = 60,
                           persistent_client_expiration: str = DEFAULT_PERSISTENT_CLIENT_EXPIRATION,
                           broker_user: str | None = "mosquitto") -> MosquittoFiles:
    """Write mosquitto.conf and both listeners' password and ACL files into `out_dir`.

    Mosquitto started as root drops to `broker_user` before it reads the password and ACL
    files and writes its persistence database. So when this runs as root and that user
    exists, the files become group-readable by it (0640) and the persistence directory
    its own; otherwise they stay private (0600) to the user running this, who is then
    expected to run Mosquitto too.
    """
    files = MosquittoFiles.in_dir(out_dir)
    conf = conf_text(files, port=port, bind_address=bind_address, platform_port=platform_port,
                     platform_bind=platform_bind, max_payload_bytes=max_payload_bytes,
                     max_queued_messages=max_queued_messages, max_inflight_messages=max_inflight_messages,
                     autosave_interval_s=autosave_interval_s,
                     persistent_client_expiration=persistent_client_expiration)
    try:
        files.persistence_dir.mkdir(parents=True, exist_ok=True)
        owner = _broker_account(broker_user)
        if owner is not None:
            os.chown(files.persistence_dir, owner.pw_uid, owner.pw_gid)
        count = write_auth_files(engine, files, service_account, broker_user=broker_user)
        _write_atomic(files.conf, conf, mode=0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write Mosquitto configuration into {files.conf.parent}: {exc}") from exc
    log.info("mosquitto_config_written dir=%s cars=%d port=%d platform_port=%d", files.conf.parent, count,
             port, platform_port)
    return files


def sync_mosquitto(engine: Engine, files: MosquittoFiles, account: ServiceAccount, *,
                   pid: int | None = None) -> int:
    """Rewrite the password and ACL files, then (given its pid) make Mosquitto reload them.

    Returns the number of cars in the car listener's password file.
    """
    try:
        count = write_auth_files(engine, files, account)
    except OSError as exc:
        raise ConfigError(f"cannot rewrite Mosquitto files in {files.password_file.parent}: {exc}") from exc
    if pid is not None:
        reload_mosquitto(pid)
    return count


def listener_url(address: str | None, port: int) -> str:
    """The `mqtt://` URL of a listener; one on all addresses is reached via this host's name."""
    if address is None or address in _ALL_ADDRESSES:
        address = socket.gethostname()
    return f"mqtt://{f'[{address}]' if ':' in address else address}:{port}"


def reload_mosquitto(pid: int) -> None:
    """SIGHUP: Mosquitto rereads its password and ACL files without dropping valid clients."""
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise ChelianError(f"no Mosquitto process with pid {pid}") from exc
    except PermissionError as exc:
        raise ChelianError(f"not allowed to signal Mosquitto (pid {pid}): run as its user or root") from exc
    log.info("mosquitto_reloaded pid=%d", pid)


def read_pid_file(path: Path) -> int:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError) as exc:
        raise ChelianError(f"cannot read a Mosquitto pid from {path}: {exc}") from exc


def _valid_username(username: str) -> bool:
    # ':' separates user and hash in the password file; whitespace and newlines break both files.
    return bool(username) and ":" not in username and not any(c.isspace() for c in username)


def _broker_account(broker_user: str | None) -> pwd.struct_passwd | None:
    """The account Mosquitto drops to, when that matters (we are root and it exists)."""
    if broker_user is None or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(broker_user)
    except KeyError:
        return None


def _write_atomic(path: Path, text: str, mode: int = 0o600, group_of: str | None = None) -> None:
    """Replace `path` in one rename, keeping an existing file's mode and owner.

    Mosquitto may reread the file at any moment (SIGHUP), so it must never see half of it;
    and an operator who changed its owner or mode keeps that on rewrite. A new file is made
    readable to the group of `group_of` (see write_mosquitto_config).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            current = path.stat()
        except FileNotFoundError:
            owner = _broker_account(group_of)
            if owner is not None:
                os.chown(tmp, 0, owner.pw_gid)
                os.chmod(tmp, mode | 0o040)
        else:
            os.chmod(tmp, stat.S_IMODE(current.st_mode))
            try:
                os.chown(tmp, current.st_uid, current.st_gid)
            except PermissionError:
                pass  # not root: the file stays ours, with the old mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def mosquitto_config_from_settings(settings: Settings, out_dir: Path, *, port: int = DEFAULT_PORT,
                                   bind_address: str | None = None,
                                   platform_port: int = DEFAULT_PLATFORM_PORT,
                                   platform_bind: str | None = DEFAULT_PLATFORM_BIND) -> MosquittoFiles:
    """write_mosquitto_config for a platform's settings: its database, service account and limits."""
    engine = make_engine(settings.effective_database_url)
    try:
        account = resolve_service_account(settings)
        return write_mosquitto_config(engine, out_dir, port=port, service_account=account,
                                      bind_address=bind_address, platform_port=platform_port,
                                      platform_bind=platform_bind,
                                      max_payload_bytes=settings.max_payload_bytes,
                                      max_inflight_messages=max(DEFAULT_MAX_INFLIGHT_MESSAGES,
                                                                4 * settings.ingest_batch_max))
    finally:
        engine.dispose()
