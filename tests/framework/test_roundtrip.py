# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Commands, variables and errors between modules, in one host and across isolated processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from everest_py.errors import CommandError
from everest_py.testing import Probe


def stack_config(safe_file: str) -> dict[str, Any]:
    return {
        "active_modules": {
            "board": {"module": "FakeBoard", "config_module": {"safe_state_file": safe_file}},
            "user": {
                "module": "BoardUser",
                "connections": {"bsp": [{"module_id": "board", "implementation_id": "board_support"}]},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "user": [{"module_id": "user", "implementation_id": "main"}],
                    "board": [{"module_id": "board", "implementation_id": "board_support"}],
                },
            },
        }
    }


async def through_user(probe: Probe, cmd: str, args: dict[str, Any]) -> Any:
    await probe.call("user", "store", {"key": f"call_{cmd}", "value": args})
    return await probe.call("user", "load", {"key": f"result_{cmd}"})


async def exercise(probe: Probe) -> None:
    assert await through_user(probe, "enable", {"value": True}) == {"retval": None}
    assert await probe.call("user", "load", {"key": "events"}) == ["B"]

    await through_user(probe, "pwm_on", {"value": 60})
    await through_user(probe, "pwm_on", {"value": 60})  # raised once only: (type, sub_type) is unique
    await through_user(probe, "pwm_on", {"value": 10})
    assert await probe.call("user", "load", {"key": "errors"}) == [
        ["raised", "evse_board_support/DiodeFault", "duty 60"],
        ["cleared", "evse_board_support/DiodeFault", "ClearedByModule"],
    ]

    failed = await through_user(probe, "cp_state_X1", {})
    assert failed["error"] == "HandlerException"
    assert "X1 is broken" in failed["message"]

    power = {"allow_power_on": True, "reason": "FullPowerCharging"}
    assert await through_user(probe, "allow_power_on", {"value": power}) == {"retval": None}
    assert await probe.call("user", "load", {"key": "events"}) == ["B", "PowerOn"]

    # The caller validates its arguments against the interface before sending.
    bad = await through_user(probe, "pwm_on", {"value": "fast"})
    assert bad["error"] == "SchemaValidationError"
    # The provider validates too (the probe sends unchecked).
    with pytest.raises(CommandError) as err:
        await probe.call("board", "enable", {"value": "yes"})
    assert err.value.error_type == "SchemaValidationError"


@pytest.mark.parametrize(
    ("protocol", "qos"), [("5", 0), ("3.1.1", 0), ("5", 2)], ids=["mqtt5", "mqtt3.1.1", "mqtt5-qos2"]
)
@pytest.mark.parametrize("isolate", [False, True], ids=["one-host", "isolated"])
def test_round_trips(make_stack, broker, tmp_path, isolate, protocol, qos):
    safe = tmp_path / "safe_state"
    args = ["--mqtt-protocol", protocol, "--mqtt-qos", str(qos)] + (["--isolate"] if isolate else [])
    stack, prefix = make_stack(stack_config(str(safe)), *args)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    if isolate:
        assert len(stack.children()) == 2

    async def scenario() -> None:
        probe = Probe(broker.unix if protocol == "5" else broker.tcp, prefix, protocol=protocol)
        await probe.start()
        try:
            await exercise(probe)
        finally:
            await probe.close()

    asyncio.run(scenario())
    assert stack.stop() == 0, stack.log()
    assert "[board] enable True" in stack.log()  # module-internal loggers name the module
    # safe_state runs on start and on stop
    assert len(safe.read_text().splitlines()) == 2
