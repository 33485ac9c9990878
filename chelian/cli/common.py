"""What every command shares: the common options, building Settings, opening the database,
and turning chelian's errors into one red line and exit code 1 instead of a traceback.

Commands declare only their own options and take a `settings: Settings` parameter;
`@with_settings` adds `--data-dir`, `--database-url`, `--config` (and, with `broker=True`,
`--mqtt-url`, `--mqtt-port`) to the command, and the same options given before the command
name (`chelian --data-dir X user add ...`) apply too; the command's own copy wins.
Precedence, lowest first: defaults, `--config` TOML file, CHELIAN_* environment, flags.

Example:
    @app.command()
    @with_settings(broker=True)
    def ping(settings: Settings) -> None:
        with database(settings) as engine:
            ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from chelian.config import Settings
from chelian.errors import ChelianError, ConfigError
from chelian.storage.db import is_migrated, make_engine, upgrade

PANEL = "Common options"
console = Console()
err_console = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Where chelian keeps its files (database, broker secrets). (default: ~/.chelian)",
    rich_help_panel=PANEL, show_default=False)]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", help="postgresql://user@host/db or sqlite:///path. (default: SQLite in --data-dir)",
    rich_help_panel=PANEL, show_default=False)]
MqttUrl = Annotated[str | None, typer.Option(
    "--mqtt-url", help="An external broker, mqtt://host:port. (default: chelian's embedded broker)",
    rich_help_panel=PANEL, show_default=False)]
MqttPort = Annotated[int | None, typer.Option(
    "--mqtt-port", help="Port of the embedded broker. (default: 1884)", rich_help_panel=PANEL,
    show_default=False)]
ConfigFile = Annotated[Path | None, typer.Option(
    "--config", help="A TOML file of settings (same names as the CHELIAN_* variables, lower case).",
    rich_help_panel=PANEL, show_default=False)]

_DB_OPTIONS: dict[str, Any] = {"data_dir": DataDir, "database_url": DatabaseUrl, "config": ConfigFile}
_BROKER_OPTIONS: dict[str, Any] = {"mqtt_url": MqttUrl, "mqtt_port": MqttPort}
COMMON_OPTIONS = (*_DB_OPTIONS, *_BROKER_OPTIONS)
_CTX = "_chelian_ctx"
"""The typer context a wrapped command receives, to read options given before its name."""


def one_line(message: str) -> str:
    """Multi-line messages (e.g. several invalid settings) joined so the error stays one line."""
    out = ""
    for part in (p.strip() for p in message.splitlines()):
        if part:
            out += ("" if not out else " " if out.endswith(":") else "; ") + part
    return out


def fail(message: str) -> NoReturn:
    err_console.print(f"error: {one_line(message)}", style="red", markup=False, highlight=False,
                      soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def reported_errors() -> Iterator[None]:
    """ChelianError anywhere inside becomes `error: ...` on stderr and exit code 1."""
    try:
        yield
    except ChelianError as exc:
        fail(str(exc))


def load_settings(ctx: typer.Context | None = None, **options: Any) -> Settings:
    """Settings from flags given to the command or before its name (None means "not given")."""
    root = ctx.find_root().obj if ctx is not None else None
    given = {k: v for k, v in options.items() if v is not None}
    merged = {**(root if isinstance(root, dict) else {}), **given}
    config = merged.pop("config", None)
    return Settings.load(config, **merged)


def remember_root_options(ctx: typer.Context, **options: Any) -> None:
    """Called by the app callback: keep `chelian --data-dir X ...` for the command to use."""
    ctx.obj = {k: v for k, v in options.items() if v is not None}


def with_settings(*, broker: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the common options and call it with `settings=` built from them."""
    extra = {**_DB_OPTIONS, **(_BROKER_OPTIONS if broker else {})}

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "settings"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                 for name, annotation in {**extra, _CTX: typer.Context}.items()]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            ctx = kwargs.pop(_CTX)
            common = {name: kwargs.pop(name) for name in extra}
            with reported_errors():
                return fn(settings=load_settings(ctx, **common), **kwargs)

        # Typer reads the signature and type hints: show it the command's own options plus ours.
        command.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        return command

    return decorate


def safe_url(url: str) -> str:
    """A database URL fit to print: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@contextmanager
def database(settings: Settings, *, always_upgrade: bool = False) -> Iterator[Engine]:
    """An engine on the configured database, migrated first if it is new; disposed afterwards.

    Migrating a new database on first use is what lets `chelian user add` work on a fresh
    install; an existing database is upgraded only on purpose (`chelian db upgrade`).
    """
    url = settings.effective_database_url
    engine = make_engine(url)
    try:
        try:
            if always_upgrade or not is_migrated(engine):
                upgrade(url)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ConfigError(f"cannot open database {safe_url(url)}: {one_line(str(cause))}") from exc
        yield engine
    finally:
        engine.dispose()


def external_broker_hint(settings: Settings, what: str) -> None:
    """On an external broker nothing changes until its files are rewritten and reloaded: say so."""
    if not settings.embedded_broker:
        err_console.print(f"The broker at {settings.mqtt_url} {what} only once its password file is "
                          "rewritten and reloaded; for Mosquitto: `chelian broker mosquitto-config --out DIR "
                          "--reload-pid-file PIDFILE` (SIGHUP).", style="yellow", markup=False,
                          highlight=False, soft_wrap=True)
