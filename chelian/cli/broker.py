"""`chelian broker ...`: the production broker's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from chelian.cli.common import console, database, with_settings
from chelian.config import Settings
from chelian.link.mosquitto import (
    DEFAULT_PLATFORM_BIND,
    DEFAULT_PLATFORM_PORT,
    DEFAULT_PORT,
    listener_url,
    mosquitto_config_from_settings,
    read_pid_file,
    reload_mosquitto,
)

app = typer.Typer(help="Configure a production MQTT broker (Mosquitto) for chelian.", no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command("mosquitto-config")
@with_settings()
def mosquitto_config(
    settings: Settings,
    out: Annotated[Path, typer.Option(help="Folder for mosquitto.conf and both listeners' password files "
                                           "and ACLs.")],
    port: Annotated[int, typer.Option(help="Car listener: the port cars connect to.")] = DEFAULT_PORT,
    bind_address: Annotated[str | None, typer.Option(
        help="Car listener: address to listen on (default: all).")] = None,
    platform_port: Annotated[int, typer.Option(
        help="Platform listener: the port chelian's ingest workers and command relay connect to "
             "(only the service account may log in there).")] = DEFAULT_PLATFORM_PORT,
    platform_bind: Annotated[str, typer.Option(
        help="Platform listener: address to listen on. Keep the default when ingest runs on this "
             "machine; give a private address when workers run elsewhere.")] = DEFAULT_PLATFORM_BIND,
    reload_pid_file: Annotated[Path | None, typer.Option(
        help="Mosquitto's pid file: send it SIGHUP so it rereads the password files and ACLs.")] = None,
) -> None:
    """Write Mosquitto's config: a car listener and a platform listener, each with its own
    password file (cars from the stored hashes; the service account) and ACL.

    On the car listener a car's session is always named by its VIN, whatever client id it
    sends, so no car can take over another car's or the platform's session. Run it again
    after provisioning, rotating or revoking cars (files are replaced atomically), with
    --reload-pid-file to make a running Mosquitto pick the changes up: until then Mosquitto
    still accepts old secrets.
    """
    with database(settings):
        pass  # migrate a new database first, so the password file can be read from it
    files = mosquitto_config_from_settings(settings, out, port=port, bind_address=bind_address,
                                           platform_port=platform_port, platform_bind=platform_bind)
    _say(f"wrote {files.conf}, {files.password_file}, {files.acl_file}, {files.platform_password_file} "
         f"and {files.platform_acl_file}")
    _say(f"run: mosquitto -c {files.conf}")
    platform_url = listener_url(platform_bind, platform_port)
    car_url = settings.public_mqtt_url or listener_url(bind_address, port)
    _say(f"chelian's services (serve, ingest): CHELIAN_MQTT_URL={platform_url}")
    _say(f"cars (handed out by `vehicle add`): CHELIAN_PUBLIC_MQTT_URL={car_url}"
         + ("" if settings.public_mqtt_url else "   (or the name cars reach this broker by)"))
    if settings.mqtt_url and (urlsplit(settings.mqtt_url).port or 1883) != platform_port:
        _say(f"warning: CHELIAN_MQTT_URL is {settings.mqtt_url}, not the platform listener (port "
             f"{platform_port}): the service account cannot log in on any other")
    if reload_pid_file is not None:
        reload_mosquitto(read_pid_file(reload_pid_file))
        _say("mosquitto reloaded")
