"""`chelian broker ...`: the production broker's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chelian.cli.common import console, database, with_settings
from chelian.config import Settings
from chelian.link.mosquitto import mosquitto_config_from_settings, read_pid_file, reload_mosquitto

app = typer.Typer(help="Configure a production MQTT broker (Mosquitto) for chelian.", no_args_is_help=True)


@app.command("mosquitto-config")
@with_settings()
def mosquitto_config(
    settings: Settings,
    out: Annotated[Path, typer.Option(help="Folder for mosquitto.conf, the password file and the ACL.")],
    port: Annotated[int, typer.Option(help="Port Mosquitto listens on.")] = 1883,
    bind_address: Annotated[str | None, typer.Option(help="Address to listen on (default: all).")] = None,
    reload_pid_file: Annotated[Path | None, typer.Option(
        help="Mosquitto's pid file: send it SIGHUP so it rereads the password file and ACL.")] = None,
) -> None:
    """Write Mosquitto's password file (from the stored car hashes), ACL and config.

    Run it again after provisioning or rotating cars (files are replaced atomically), with
    --reload-pid-file to make a running Mosquitto pick the changes up.
    """
    with database(settings):
        pass  # migrate a new database first, so the password file can be read from it
    files = mosquitto_config_from_settings(settings, out, port=port, bind_address=bind_address)
    console.print(f"wrote {files.conf}, {files.password_file} and {files.acl_file}", markup=False,
                  highlight=False, soft_wrap=True)
    console.print(f"run: mosquitto -c {files.conf}", markup=False, highlight=False, soft_wrap=True)
    if reload_pid_file is not None:
        reload_mosquitto(read_pid_file(reload_pid_file))
        console.print("mosquitto reloaded", markup=False, highlight=False)
