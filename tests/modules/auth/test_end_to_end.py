# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A real EvseManager with Auth, the dummy token provider and validator, EnergyNode and EnergyManager."""

from __future__ import annotations

import asyncio
from typing import Any

from everest_py.testing import Probe

from ..helpers import poll

CAPS: dict[str, Any] = {
    "max_current_A_import": 32.0,
    "min_current_A_import": 6.0,
    "max_phase_count_import": 3,
    "min_phase_count_import": 1,
    "max_current_A_export": 0.0,
    "min_current_A_export": 0.0,
    "max_phase_count_export": 3,
    "min_phase_count_export": 1,
    "supports_changing_phases_during_charging": False,
    "supports_cp_state_E": False,
    "connector_type": "IEC62196Type2Cable",
}


def stack_config() -> dict[str, Any]:
    evse = [{"module_id": "evse", "implementation_id": "evse"}]
    return {
        "active_modules": {
            "evse": {
                "module": "EvseManager",
                "config_module": {"connector_id": 1, "evse_id": "DE*EPY*E1*1"},
                "connections": {"bsp": [{"module_id": "probe", "implementation_id": "board"}]},
            },
            "auth": {
                "module": "Auth",
                "config_module": {"connection_timeout": 10},
                "connections": {
                    "token_provider": [{"module_id": "tokens", "implementation_id": "main"}],
                    "token_validator": [{"module_id": "validator", "implementation_id": "main"}],
                    "evse_manager": evse,
                },
            },
            "tokens": {"module": "DummyTokenProvider", "connections": {"evse": evse}},
            "validator": {"module": "DummyTokenValidator", "config_implementation": {"main": {"sleep": 0}}},
            "grid": {
                "module": "EnergyNode",
                "config_module": {"fuse_limit_A": 16.0, "phase_count": 3},
                "connections": {"energy_consumer": [{"module_id": "evse", "implementation_id": "energy_grid"}]},
            },
            "energy_manager": {
                "module": "EnergyManager",
                "connections": {"energy_trunk": [{"module_id": "grid", "implementation_id": "energy_grid"}]},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "evse": evse,
                    "auth": [{"module_id": "auth", "implementation_id": "main"}],
                },
            },
        }
    }


def test_plug_in_to_charging(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    board: list[tuple[str, Any]] = []

    def setup(probe: Probe) -> None:
        for cmd in ("enable", "pwm_on", "cp_state_X1", "cp_state_F", "cp_state_E", "allow_power_on"):
            probe.implement("board", cmd, lambda cmd=cmd, **args: board.append((cmd, args.get("value"))))
        probe.implement("board", "ac_switch_three_phases_while_charging", lambda **args: None)
        probe.implement("board", "ac_set_overcurrent_limit_A", lambda **args: None)

    async def scenario(probe: Probe) -> None:
        events = probe.subscribe_var("evse", "session_event")
        statuses = probe.subscribe_var("auth", "token_validation_status")
        enforced = probe.subscribe_var("evse", "enforced_limits")
        probe.publish_var("board", "capabilities", CAPS)
        probe.publish_var("board", "event", {"event": "A"})
        # EVSE -> EnergyNode -> EnergyManager -> EnergyNode -> EVSE: the fuse's 16 A arrive
        while True:
            limits = await asyncio.wait_for(enforced.get(), 10)
            if limits["limits_root_side"].get("ac_max_current_A", {}).get("value") == 16.0:
                break
        assert limits["uuid"] == "evse"

        # plug in: the EVSE asks, the token provider offers DEADBEEF, Auth authorizes
        probe.publish_var("board", "event", {"event": "B"})
        seen: list[str] = []
        while "TransactionStarted" not in seen:
            seen.append((await asyncio.wait_for(events.get(), 10))["event"])
        order = ["SessionStarted", "AuthRequired", "Authorized", "TransactionStarted"]
        assert [e for e in seen if e in order] == order
        status = []
        while "UsedToStart" not in status:
            status.append((await asyncio.wait_for(statuses.get(), 5))["status"])
        assert status == ["Processing", "Accepted", "UsedToStart"]

        async def pwm() -> list[Any]:
            return [value for cmd, value in board if cmd == "pwm_on"]

        duty = round(16 / 0.6, 4)
        assert set(await poll(pwm, lambda duties: duty in duties)) == {duty}, "PWM for the 16 A of the fuse"

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0
