# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YetiSimulator and EvManager together over mosquitto, with a probe playing the EvseManager."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from everest_py.errors import CommandError
from everest_py.framework import wire
from everest_py.testing import Probe

YETI, CAR = "yeti", "car"
DUTY_10A = 10 / 0.6  # percent


def conn(module_id: str, impl_id: str) -> dict[str, str]:
    return {"module_id": module_id, "implementation_id": impl_id}


def sim_config(**car: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            YETI: {"module": "YetiSimulator", "config_module": {"connector_id": 1}},
            CAR: {
                "module": "EvManager",
                "config_module": {"connector_id": 1, "auto_enable": True, **car},
                "connections": {"ev_board_support": [conn(YETI, "ev_board_support")]},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "bsp": [conn(YETI, "board_support")],
                    "powermeter": [conn(YETI, "powermeter")],
                    "rcd": [conn(YETI, "rcd")],
                    "lock": [conn(YETI, "connector_lock")],
                    "car": [conn(CAR, "main")],
                    "evm": [conn(CAR, "ev_manager")],
                },
            },
        }
    }


async def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def collect(probe: Probe, requirement: str, var: str) -> list[Any]:
    """Every value of a var of a connection, appended as it arrives."""
    values: list[Any] = []
    target = probe.connections[requirement][0]
    topic = probe.topics.var(target["module_id"], target["implementation_id"], var)
    assert probe.bus is not None
    probe.bus.subscribe(topic, lambda t, p: values.append(json.loads(p)["data"]["data"]))
    return values


def error_log(probe: Probe, impl_id: str, error_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(msg_type, error) of every raise and clear of one error type of the simulator."""
    seen: list[tuple[str, dict[str, Any]]] = []
    assert probe.bus is not None

    def on_error(topic: str, payload: bytes) -> None:
        msg = json.loads(payload)
        seen.append((msg["msg_type"], msg["data"]))

    probe.bus.subscribe(probe.topics.error(YETI, impl_id, error_type), on_error)
    return seen


class EvseStandIn:
    """The part of an EvseManager the board needs: PWM on plug-in, power on request, off on unplug."""

    def __init__(self, probe: Probe, duty: float = DUTY_10A, allow_power: bool = True) -> None:
        self.probe = probe
        self.duty = duty
        self.allow_power = allow_power
        self.events: list[str] = []
        self._queue = probe.subscribe_var("bsp", "event")
        self._task: asyncio.Task[None] | None = None
        self._pwm = False

    async def start(self) -> None:
        await self.probe.call("bsp", "enable", {"value": True})
        await self.probe.call("bsp", "cp_state_X1")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _power(self, on: bool) -> None:
        reason = "FullPowerCharging" if on else "PowerOff"
        await self.probe.call("bsp", "allow_power_on", {"value": {"allow_power_on": on, "reason": reason}})

    async def _run(self) -> None:
        while True:
            event = (await self._queue.get())["event"]
            self.events.append(event)
            if event in ("B", "C") and not self._pwm:
                self._pwm = True  # (C straight from A is IEC's simplified mode)
                await self.probe.call("bsp", "pwm_on", {"value": self.duty})
            if event == "C" and self.allow_power:
                await self._power(True)
            elif event in ("A", "E", "F"):
                await self._power(False)
                if event == "A":
                    self._pwm = False
                    await self.probe.call("bsp", "cp_state_X1")


def run_session(
    make_stack,
    run_probe,
    scenario: Callable[[Probe, str], Any],
    config: dict[str, Any] | None = None,
    setup: Callable[[Probe], None] | None = None,
) -> Any:
    """Start the stack and run ``scenario(probe, external_prefix)``; the stack must stop cleanly."""
    stack, prefix = make_stack(config or sim_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    try:
        return run_probe(prefix, lambda probe: scenario(probe, f"ext_{prefix}/"), setup)
    finally:
        assert stack.stop() == 0, stack.log()


def test_a_regulated_session_end_to_end(make_stack, run_probe) -> None:
    script = "sleep 0.2;iec_wait_pwr_ready;sleep 0.5;draw_power_regulated 16,3;sleep 2.5;unplug"

    async def scenario(probe: Probe, ext: str) -> None:
        evse = EvseStandIn(probe)
        meter = collect(probe, "powermeter", "powermeter")
        car_events = collect(probe, "evm", "bsp_event")
        infos = collect(probe, "evm", "ev_info")
        await evse.start()
        await probe.call("car", "execute_charging_session", {"value": script})
        assert await wait_for(lambda: "PowerOn" in evse.events)
        started = await probe.call(
            "powermeter",
            "start_transaction",
            {
                "value": {
                    "evse_id": "DE*PNX*E1",
                    "transaction_id": "tx-1",
                    "identification_status": "ASSIGNED",
                    "identification_flags": [],
                    "identification_type": "ISO14443",
                }
            },
        )
        assert started == {"status": "OK"}
        assert await wait_for(lambda: "A" in evse.events and "PowerOff" in evse.events, 8)
        stopped = await probe.call("powermeter", "stop_transaction", {"transaction_id": "tx-1"})
        await evse.stop()

        assert evse.events[:4] == ["A", "B", "C", "PowerOn"], "A first: the state at enable"
        assert sorted(evse.events[4:]) == ["A", "PowerOff"]
        assert [e["event"] for e in car_events][:4] == ["A", "B", "C", "PowerOn"], "the car side sees the same events"
        charging = [m for m in meter if m["current_A"]["L1"] > 0]
        assert len(charging) >= 2, meter
        for m in charging:
            # min(car 16 A, PWM 10 A) on each of three phases, 230 V
            assert [m["current_A"][p] for p in ("L1", "L2", "L3")] == [pytest.approx(10.0)] * 3
            assert m["power_W"]["total"] == pytest.approx(6900.0)
            assert m["voltage_V"] == {"L1": 230.0, "L2": 230.0, "L3": 230.0}
        energies = [m["energy_Wh_import"]["total"] for m in charging]
        assert energies == sorted(energies) and energies[-1] > energies[0] > 0
        start_wh = json.loads(stopped["start_signed_meter_value"]["signed_meter_data"])["energy_Wh_import"]
        stop_wh = json.loads(stopped["signed_meter_value"]["signed_meter_data"])["energy_Wh_import"]
        assert stopped["status"] == "OK"
        assert 0 <= start_wh < stop_wh
        assert infos and infos[-1]["maximum_current_limit"] == 16

    run_session(make_stack, run_probe, scenario)


def test_diode_fault(make_stack, run_probe) -> None:
    async def scenario(probe: Probe, ext: str) -> None:
        evse = EvseStandIn(probe)
        faults = error_log(probe, "board_support", "evse_board_support/DiodeFault")
        await evse.start()
        await probe.call("car", "execute_charging_session", {"value": "iec_wait_pwr_ready;diode_fail;sleep 1;unplug"})
        assert await wait_for(lambda: len(faults) == 2, 8), faults
        await evse.stop()
        assert [kind for kind, _ in faults] == [wire.RAISE_ERROR, wire.CLEAR_ERROR]
        assert faults[0][1]["severity"] == "High"
        # (an A first if the board's first sample after enable came before the plug-in)
        assert evse.events[-3:] == ["B", "F", "A"], "PWM on a shorted diode shows F"
        assert "PowerOn" not in evse.events

    run_session(make_stack, run_probe, scenario)


def test_rcd_trip_opens_the_relays_by_itself(make_stack, run_probe) -> None:
    script = "iec_wait_pwr_ready;draw_power_regulated 16,1;sleep 0.5;rcd_current 10;sleep 1.5;unplug"
    config = sim_config(auto_exec=True, auto_exec_commands=script)  # the car waits for PWM

    async def scenario(probe: Probe, ext: str) -> None:
        # The stand-in never switches power off itself here: only the board can.
        evse = EvseStandIn(probe)
        dc = error_log(probe, "rcd", "ac_rcd/DC")
        ground = error_log(probe, "rcd", "ac_rcd/MREC2GroundFailure")
        currents = collect(probe, "rcd", "rcd_current_mA")
        await evse.start()
        assert await wait_for(lambda: len(dc) == 1, 8)
        assert await wait_for(lambda: "PowerOff" in evse.events)
        assert evse.events[-2:] == ["PowerOn", "PowerOff"], "the relays opened while the car is still in C"
        assert await probe.call("rcd", "reset") is False, "no re-arming while the residual current is there"
        assert await wait_for(lambda: 10.0 in currents)
        assert await wait_for(lambda: len(dc) == 2 and len(ground) == 2, 8), "unplugging clears the fault"
        await evse.stop()
        assert [k for k, _ in dc] == [wire.RAISE_ERROR, wire.CLEAR_ERROR]
        assert [k for k, _ in ground] == [wire.RAISE_ERROR, wire.CLEAR_ERROR]
        assert await probe.call("rcd", "reset") is True

    run_session(make_stack, run_probe, scenario, config)


def test_external_mqtt_and_bad_scripts(make_stack, run_probe) -> None:
    async def scenario(probe: Probe, ext: str) -> None:
        assert probe.bus is not None
        evse = EvseStandIn(probe, allow_power=False)
        enabled = collect(probe, "car", "enabled")
        undervoltage = error_log(probe, "board_support", "evse_board_support/MREC6UnderVoltage")
        await evse.start()

        with pytest.raises(CommandError) as bad:
            await probe.call("car", "execute_charging_session", {"value": "sleep 1;fly 3"})
        assert "step 2 ('fly 3'): unknown command 'fly'" in str(bad.value)
        with pytest.raises(CommandError) as iso:
            await probe.call("car", "execute_charging_session", {"value": "iso_wait_slac_matched"})
        assert "ISO 15118" in str(iso.value)

        probe.bus.publish(ext + "everest_external/nodered/1/carsim/cmd/enable", b"false")
        assert await wait_for(lambda: enabled[-1:] == [False])
        with pytest.raises(CommandError, match="disabled"):
            await probe.call("car", "execute_charging_session", {"value": "plugin"})
        probe.bus.publish(ext + "everest_external/nodered/1/carsim/cmd/enable", b"true")
        assert await wait_for(lambda: enabled[-1:] == [True])

        topic = ext + "everest_external/nodered/1/carsim/cmd/"
        probe.bus.publish(topic + "execute_charging_session", b"iec_wait_pwr_ready;sleep 30")
        assert await wait_for(lambda: "B" in evse.events)
        probe.bus.publish(topic + "modify_charging_session", b"unplug")
        assert await wait_for(lambda: "A" in evse.events)

        inject = ext + "everest_external/nodered/1/carsim/error"
        probe.bus.publish(inject, json.dumps({"error_type": "MREC6UnderVoltage", "raise": "true"}).encode())
        assert await wait_for(lambda: len(undervoltage) == 1)
        probe.bus.publish(inject, json.dumps({"error_type": "MREC6UnderVoltage", "raise": "false"}).encode())
        assert await wait_for(lambda: len(undervoltage) == 2)
        assert [k for k, _ in undervoltage] == [wire.RAISE_ERROR, wire.CLEAR_ERROR]
        await probe.call("lock", "lock")
        await probe.call("lock", "unlock")
        await evse.stop()

    run_session(make_stack, run_probe, scenario)


def test_plug_in_state_across_a_restart(make_stack, run_probe) -> None:
    config = sim_config(keep_cross_boot_plugin_state=True, plugin_commands="draw_power_fixed 13,1")
    config["active_modules"][CAR]["connections"]["kvs"] = [conn("probe", "kvs")]
    stored: dict[str, Any] = {"ev_manager.car.plugged_in": True}

    def load(key: str) -> Any:
        return stored.get(key)

    def store(key: str, value: Any) -> None:
        stored[key] = value

    def setup(probe: Probe) -> None:
        probe.implement("kvs", "load", load)
        probe.implement("kvs", "store", store)

    async def scenario(probe: Probe, ext: str) -> None:
        assert probe.bus is not None
        evse = EvseStandIn(probe)
        meter = collect(probe, "powermeter", "powermeter")
        await evse.start()
        assert await wait_for(lambda: "PowerOn" in evse.events)
        assert await wait_for(lambda: any(m["current_A"]["L1"] > 0 for m in meter))
        reading = next(m for m in meter if m["current_A"]["L1"] > 0)
        assert reading["current_A"] == {"L1": pytest.approx(10.0), "L2": 0.0, "L3": 0.0, "N": 0.0}
        assert stored["ev_manager.car.plugged_in"] is True
        probe.bus.publish(ext + "everest_external/nodered/1/carsim/cmd/modify_charging_session", b"unplug")
        assert await wait_for(lambda: stored["ev_manager.car.plugged_in"] is False)
        assert await wait_for(lambda: evse.events[-1:] in (["A"], ["PowerOff"]))
        await evse.stop()

    run_session(make_stack, run_probe, scenario, config, setup)
