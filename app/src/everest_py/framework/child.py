# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""One module in a process of its own, configured by EVerest's environment (``EV_MODULE`` …).

The manager starts this for isolated modules; started by hand it is a standalone module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from everest_py.errors import BusError, ConfigError
from everest_py.framework import logs
from everest_py.framework.bus import BrokerEndpoint, Bus
from everest_py.framework.contracts import PACKAGE_CONTRACTS, Contracts
from everest_py.framework.registry import Registry
from everest_py.framework.runtime import Host

log = logging.getLogger(__name__)


def _dirs(name: str) -> list[Path]:
    value = os.environ.get(f"EVEREST_PY_{name.upper()}")
    return [Path(value)] if value else []


async def run_module(module_id: str, env: dict[str, str]) -> int:
    contracts = Contracts(
        (PACKAGE_CONTRACTS,),
        interfaces_dirs=_dirs("interfaces_dir"),
        types_dirs=_dirs("types_dir"),
        errors_dirs=_dirs("errors_dir"),
    )
    registry = Registry(contracts, _dirs("modules_dir"))
    host: Host | None = None

    def on_handler_error(err: BaseException) -> None:
        if host is not None:
            host.fail(f"a message handler failed: {err!r}", err)

    bus = Bus(
        BrokerEndpoint.from_env(env),
        protocol=env.get("EV_MQTT_PROTOCOL", "5"),
        qos=int(env.get("EV_MQTT_QOS", "0")),
        on_handler_error=on_handler_error,
    )
    await bus.connect()
    host = Host(
        bus,
        registry,
        prefix=env.get("EV_MQTT_EVEREST_PREFIX", "everest"),
        external_prefix=env.get("EV_MQTT_EXTERNAL_PREFIX", ""),
        telemetry_prefix=env.get("EV_TELEMETRY_PREFIX", "everest-telemetry"),
        telemetry_enabled=env.get("EV_TELEMETRY_ENABLED") == "1",
        validate_schema=env.get("EV_VALIDATE_SCHEMA") == "1",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host.spawn(host.add(module_id), "start", module_id)
    stop_wait = loop.create_task(stop.wait())
    fail_wait = loop.create_task(host.failed.wait())
    await asyncio.wait({stop_wait, fail_wait}, return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    fail_wait.cancel()
    await host.stop()
    await bus.close()
    return 1 if host.failure else 0


def main() -> None:
    env = dict(os.environ)
    logs.setup(int(env.get("EV_LOG_VERBOSITY", "0") or 0), default_id=env.get("EV_MODULE", "module"))
    module_id = env.get("EV_MODULE")
    if not module_id:
        print("everest-py: EV_MODULE names no module id", file=sys.stderr)
        sys.exit(2)
    try:
        code = asyncio.run(run_module(module_id, env))
    except (BusError, ConfigError) as err:
        for line in str(err).splitlines():
            log.error("%s", line)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
