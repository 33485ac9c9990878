"""Remote commands for simulated cars: the real command executor on the simulated body.

A simulated car trusts the platform's command-signing key exactly as a provisioned car does:
its keystore (`data_dir/sim/keys/{VIN}.json`) is seeded with the platform's public key on
first use, and the executor checks signatures, counters and expiry before acting through
`SimActuators`. Without a platform key (a cloud that never signed a command) the cars take
no commands, which is also what a real car without a keystore does.

Example:
    fleet = Fleet(cars, host, port, commands=command_executors(settings.data_dir))
"""

from __future__ import annotations

from pathlib import Path

from chelian.agent.runtime import CommandHandler
from chelian.sim.fleet import CommandsFactory
from chelian.sim.source import SimActuators


def command_executors(data_dir: Path) -> CommandsFactory | None:
    from chelian.agent.commands import CommandExecutor
    from chelian.agent.keystore import Keystore
    from chelian.services.commands.keys import platform_public_key

    platform_key = platform_public_key(data_dir)
    if platform_key is None:
        return None
    keys_dir = data_dir / "sim" / "keys"

    def make(vin: str, actuators: SimActuators) -> CommandHandler:
        store = Keystore.open(keys_dir / f"{vin}.json", vin, platform_key=platform_key)
        return CommandExecutor(vin, store, actuators)

    return make
