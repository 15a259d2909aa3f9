# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Module tests: a probe session against a running stack, schema checks against the contracts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from everest_py.framework.contracts import Contracts
from everest_py.testing import Broker, Probe

T = TypeVar("T")
Scenario = Callable[[Probe], Awaitable[T]]


@pytest.fixture
def run_probe(broker: Broker) -> Callable[..., Any]:
    """run_probe(prefix, scenario, setup=None): join the stack as ProbeModule and run ``await scenario(probe)``.

    ``setup(probe)`` runs after the probe is connected and before it reports ready (to implement
    commands of the probe's own implementations).
    """

    def run(prefix: str, scenario: Scenario[T], setup: Callable[[Probe], None] | None = None) -> T:
        async def main() -> T:
            probe = Probe(broker.unix, prefix)
            await probe.connect()
            try:
                if setup is not None:
                    setup(probe)
                await probe.join()
                probe.ready()
                async with asyncio.timeout(10):
                    await probe.global_ready.wait()
                return await scenario(probe)
            finally:
                await probe.close()

        return asyncio.run(main())

    return run


@pytest.fixture(scope="session")
def contracts() -> Contracts:
    return Contracts()


@pytest.fixture(scope="session")
def check_result(contracts: Contracts) -> Callable[[str, str, Any], None]:
    """check_result(interface, cmd, value): raise SchemaProblem unless ``value`` is a valid result of ``cmd``."""

    def check(interface: str, cmd: str, value: Any) -> None:
        schema = contracts.interface(interface).cmds[cmd].result
        assert schema is not None
        contracts.validator(("test", interface, cmd), schema)(value)

    return check
