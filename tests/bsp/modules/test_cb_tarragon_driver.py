# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonDriver on a simulated Tarragon tree, driven over the bus by a probe."""

from __future__ import annotations

import asyncio
import errno
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from everest_bsp.sim.tarragon_tree import CP_PWM_DEVICE, TarragonTree
from everest_py.errors import CommandError
from everest_py.testing import Probe

STATE_MV = {"A": 12000, "B": 9000, "C": 6000, "D": 3000}


def raw(mv: int) -> int:
    """Raw count of the CP peak detectors for a pilot voltage (inverse of chargebyte-hw.md §2.3)."""
    return round((mv + 16013) * 476 / 4561 * 4095 / 3300)


class Board:
    """Pilot voltages by hand; contactor feedback contacts that follow their coils (or not)."""

    def __init__(self, tree: TarragonTree, feedback: tuple[str, str] = ("none", "none")) -> None:
        self.tree = tree
        self.feedback = feedback
        self.stuck = [False, False]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        self.pilot(12000, 12000)
        self.pp(1000)  # a 32 A cable plugged

    def pilot(self, pos_mv: int, neg_mv: int) -> None:
        self.tree.write_adc("voltage2", raw(pos_mv))
        self.tree.write_adc("voltage3", raw(neg_mv))

    def car(self, state: str) -> None:
        """The car's state with the pilot oscillating (-12 V low phase)."""
        self.pilot(STATE_MV[state], -12000)

    def pp(self, mv: int) -> None:
        self.tree.write_adc("voltage5", mv * 4096 // 3300 + 1)

    def _follow(self) -> None:
        while not self._stop.is_set():
            for i, kind in enumerate(self.feedback):
                if kind == "none" or self.stuck[i]:
                    continue
                closed = self.tree.level(f"RELAY_{i + 1}_ENABLE")
                want = closed if kind == "no" else not closed
                if self.tree.level(f"RELAY_{i + 1}_SENSE") != want:
                    self.tree.set_input(f"RELAY_{i + 1}_SENSE", want)
            self.tree.wait_output(0.005)
            self.tree.output_events()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def board(tree: TarragonTree) -> Iterator[Callable[..., Board]]:
    made: list[Board] = []

    def make(feedback: tuple[str, str] = ("none", "none")) -> Board:
        for i, kind in enumerate(feedback):  # an nc contact reads closed while the relay is open
            tree.set_input(f"RELAY_{i + 1}_SENSE", kind == "nc")
        b = Board(tree, feedback)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def driver_config(tree: TarragonTree, **cfg: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            "bsp": {
                "module": "CbTarragonDriver",
                "config_module": {"hal_root": str(tree.root), "contactor_min_close_interval_s": 0.3, **cfg},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "bsp": [{"module_id": "bsp", "implementation_id": "evse_board_support"}],
                    "rcd": [{"module_id": "bsp", "implementation_id": "ac_rcd"}],
                },
            },
        }
    }


class Rig:
    """The probe's view: events, errors, and calls into the driver."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.events = probe.subscribe_var("bsp", "event")
        self.ampacity = probe.subscribe_var("bsp", "ac_pp_ampacity")
        self.capabilities = probe.subscribe_var("bsp", "capabilities")
        self.errors: dict[tuple[str, str], bool] = {}
        self.error_log: list[tuple[str, str, bool]] = []
        assert probe.bus is not None
        probe.bus.subscribe(probe.topics.impl("bsp", "+") + "/error/#", self._on_error)

    def _on_error(self, topic: str, payload: bytes) -> None:
        msg = json.loads(payload)
        data = msg["data"]
        active = msg["msg_type"] == "RaiseError"
        key = (data["type"], data.get("sub_type", ""))
        self.errors[key] = active
        self.error_log.append((*key, active))

    async def call(self, cmd: str, args: dict[str, Any] | None = None, req: str = "bsp") -> Any:
        return await self.probe.call(req, cmd, args or {})

    async def event(self, name: str, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while (await self.events.get())["event"] != name:
                pass

    async def error(self, error_type: str, sub: str = "", active: bool = True, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while self.errors.get((error_type, sub)) is not active:
                await asyncio.sleep(0.01)

    async def until(self, check: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not check():
                await asyncio.sleep(0.005)

    async def car_in_c(self, board: Board, duty: float = 26.7) -> None:
        """Enable, offer ``duty`` and let the car ask for power (state C)."""
        await self.call("enable", {"value": True})
        await self.call("pwm_on", {"value": duty})
        board.car("C")
        await self.event("C")

    async def charging(self, board: Board, duty: float = 26.7) -> None:
        """As car_in_c, then power on until the driver reports it."""
        await self.car_in_c(board, duty)
        await self.power_on()
        await self.event("PowerOn")

    async def power_on(self) -> None:
        await self.call("allow_power_on", {"value": {"allow_power_on": True, "reason": "FullPowerCharging"}})

    async def power_off(self) -> None:
        await self.call("allow_power_on", {"value": {"allow_power_on": False, "reason": "PowerOff"}})


def run(make_stack: Any, run_probe: Any, tree: TarragonTree, scenario: Any, **cfg: Any) -> None:
    stack, prefix = make_stack(driver_config(tree, **cfg))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def main(probe: Probe) -> None:
        await scenario(Rig(probe))

    try:
        run_probe(prefix, main)
    except BaseException:
        print(stack.log())
        raise


def test_pilot_states_pwm_and_the_cp_output(make_stack, run_probe, tree, board) -> None:
    b = board()

    async def scenario(rig: Rig) -> None:
        caps = await asyncio.wait_for(rig.capabilities.get(), 5)
        assert caps["supports_cp_state_E"] is True and caps["max_phase_count_import"] == 3
        assert caps["min_phase_count_import"] == 3, "no phase switching wired"
        assert tree.pwm(CP_PWM_DEVICE)[2] is False, "no pilot until EvseManager enables"
        assert tree.level("CP_INVERT") is False
        await rig.call("enable", {"value": True})
        await rig.until(lambda: tree.level("CP_INVERT") and tree.pwm(CP_PWM_DEVICE)[2])
        await rig.event("A")
        b.pilot(9000, 9000)
        await rig.event("B")
        await rig.call("pwm_on", {"value": 10.0})
        await rig.until(lambda: tree.pwm(CP_PWM_DEVICE)[1] == 100_000)
        b.car("C")
        await rig.event("C")
        b.car("D")
        await rig.event("D")
        await rig.error("evse_board_support/VentilationNotAvailable")
        b.car("B")
        await rig.event("B")
        await rig.call("cp_state_F")
        await rig.until(lambda: tree.pwm(CP_PWM_DEVICE)[1] == 0)
        b.pilot(-12000, -12000)
        await rig.event("F")
        await rig.call("cp_state_E")
        await rig.until(lambda: not tree.level("CP_INVERT") and not tree.pwm(CP_PWM_DEVICE)[2])
        await rig.call("cp_state_X1")
        await rig.until(lambda: tree.level("CP_INVERT") and tree.pwm(CP_PWM_DEVICE)[1:] == (1_000_000, True))
        await rig.call("enable", {"value": False})
        await rig.until(lambda: tree.pwm(CP_PWM_DEVICE)[1] == 0)

    run(make_stack, run_probe, tree, scenario)


def test_power_on_in_c_and_the_core_opens_on_c_to_b(make_stack, run_probe, tree, board) -> None:
    b = board(("no", "none"))

    async def scenario(rig: Rig) -> None:
        await rig.call("enable", {"value": True})
        await rig.call("pwm_on", {"value": 26.7})
        b.car("B")
        await rig.event("B")
        await rig.power_on()  # in B the core refuses
        await asyncio.sleep(0.5)
        assert tree.level("RELAY_1_ENABLE") is False
        b.car("C")
        await rig.event("C")
        await rig.power_on()
        await rig.event("PowerOn")
        assert tree.level("RELAY_1_ENABLE") and tree.level("RELAY_1_SENSE")
        b.car("B")  # the car stops charging: the core opens without being asked
        await rig.event("PowerOff")
        assert tree.level("RELAY_1_ENABLE") is False
        await asyncio.sleep(0.4)  # the feedback follows: no contactor fault
        assert ("evse_board_support/MREC17EVSEContactorFault", "") not in rig.errors

    run(make_stack, run_probe, tree, scenario, contactor_1_feedback_type="no")


def test_cp_short_and_diode_fault(make_stack, run_probe, tree, board) -> None:
    b = board()

    async def scenario(rig: Rig) -> None:
        await rig.charging(b, 50.0)
        b.pilot(300, -300)  # pilot shorted to PE
        await rig.error("evse_board_support/MREC14PilotFault", "CPShortFault")
        await rig.event("PowerOff")
        assert tree.level("RELAY_1_ENABLE") is False
        b.car("C")
        await rig.error("evse_board_support/MREC14PilotFault", "CPShortFault", active=False)
        b.pilot(6000, -6000)  # the car's diode is shorted
        await rig.error("evse_board_support/DiodeFault")
        b.car("C")
        await asyncio.sleep(0.1)
        assert rig.errors[("evse_board_support/DiodeFault", "")] is True, "latched until A"
        b.pilot(12000, -12000)
        await rig.event("A")
        await rig.error("evse_board_support/DiodeFault", active=False)
        b.pilot(15000, -12000)
        await rig.error("evse_board_support/MREC14PilotFault", "CPOutOfRange")

    run(make_stack, run_probe, tree, scenario)


def test_feedback_mismatch_latches_a_contactor_fault(make_stack, run_probe, tree, board) -> None:
    b = board(("nc", "none"))
    b.stuck[0] = True  # the contact never moves: reads open while the coil is on

    async def scenario(rig: Rig) -> None:
        await rig.car_in_c(b)
        await rig.power_on()
        await rig.error("evse_board_support/MREC17EVSEContactorFault")
        assert tree.level("RELAY_1_ENABLE") is False, "opened again after the failed closing"
        b.stuck[0] = False
        await asyncio.sleep(0.4)
        await rig.power_on()
        await asyncio.sleep(0.6)
        assert tree.level("RELAY_1_ENABLE") is False, "latched: power-on refused until restart"
        assert rig.errors[("evse_board_support/MREC17EVSEContactorFault", "")] is True

    run(make_stack, run_probe, tree, scenario, contactor_1_feedback_type="nc")


def test_a_contact_that_opens_on_its_own_is_a_fault(make_stack, run_probe, tree, board) -> None:
    b = board(("no", "none"))

    async def scenario(rig: Rig) -> None:
        await rig.charging(b)
        b.stuck[0] = True
        tree.set_input("RELAY_1_SENSE", False)
        await rig.error("evse_board_support/MREC17EVSEContactorFault")
        await rig.event("PowerOff")

    run(make_stack, run_probe, tree, scenario, contactor_1_feedback_type="no")


@pytest.mark.parametrize(
    ("wiring", "three_phase", "closed"),
    [
        ("serial", True, (True, True)),
        ("serial", False, (True, False)),
        ("simultaneous", True, (True, True)),
        ("simultaneous", False, (True, False)),
        ("mutual", True, (True, False)),
        ("mutual", False, (False, True)),
    ],
)
def test_wiring_modes(make_stack, run_probe, tree, board, wiring, three_phase, closed) -> None:
    b = board(("no", "no"))

    async def scenario(rig: Rig) -> None:
        caps = await asyncio.wait_for(rig.capabilities.get(), 5)
        assert caps["min_phase_count_import"] == 1 and caps["supports_changing_phases_during_charging"]
        await rig.call("enable", {"value": True})
        await rig.call("pwm_on", {"value": 26.7})
        await rig.call("ac_switch_three_phases_while_charging", {"value": three_phase})
        b.car("C")
        await rig.event("C")
        await rig.power_on()
        await rig.event("PowerOn")
        assert (tree.level("RELAY_1_ENABLE"), tree.level("RELAY_2_ENABLE")) == closed
        await rig.power_off()
        await rig.event("PowerOff")
        assert (tree.level("RELAY_1_ENABLE"), tree.level("RELAY_2_ENABLE")) == (False, False)
        await asyncio.sleep(0.4)
        assert not any(active for (t, _), active in rig.errors.items() if "Contactor" in t)

    run(
        make_stack,
        run_probe,
        tree,
        scenario,
        switch_3ph1ph_wiring=wiring,
        contactor_1_feedback_type="no",
        contactor_2_feedback_type="no",
    )


def test_rcm_trip_opens_without_evse_manager(make_stack, run_probe, tree, board) -> None:
    b = board()

    async def scenario(rig: Rig) -> None:
        await rig.charging(b)
        tree.set_input("DIGITAL_IN_2", False)  # active low: a trip
        await rig.until(lambda: not tree.level("RELAY_1_ENABLE"))
        await rig.error("ac_rcd/MREC2GroundFailure")
        await rig.event("PowerOff")
        assert await rig.call("reset", req="rcd") is False
        await rig.power_on()
        await asyncio.sleep(0.5)
        assert tree.level("RELAY_1_ENABLE") is False, "blocked while tripped"
        tree.set_input("DIGITAL_IN_2", True)
        await rig.error("ac_rcd/MREC2GroundFailure", active=False)
        assert await rig.call("reset", req="rcd") is True
        await rig.power_on()
        await rig.event("PowerOn")

    tree.set_input("DIGITAL_IN_2", True)
    run(make_stack, run_probe, tree, scenario, rcm_enable=True, rcm_fault_active_low=True)


def test_proximity_pilot(make_stack, run_probe, tree, board) -> None:
    b = board()
    b.pp(1000)  # 32 A cable

    async def scenario(rig: Rig) -> None:
        await rig.call("enable", {"value": True})
        assert (await asyncio.wait_for(rig.ampacity.get(), 5)) == {"ampacity": "A_32"}
        b.pp(2000)
        assert (await asyncio.wait_for(rig.ampacity.get(), 5)) == {"ampacity": "A_13"}
        b.pp(300)
        await rig.error("evse_board_support/MREC23ProximityFault", "MeasurementError")
        b.pp(2900)
        assert (await asyncio.wait_for(rig.ampacity.get(), 5)) == {"ampacity": "None"}
        await rig.error("evse_board_support/MREC23ProximityFault", "MeasurementError", active=False)

    run(make_stack, run_probe, tree, scenario)


def test_single_phase_grid_input(make_stack, run_probe, tree, board) -> None:
    board()
    tree.set_input("ROTARY_SWITCH_1_8_N", True)  # active low: inactive = single-phase grid

    async def scenario(rig: Rig) -> None:
        caps = await asyncio.wait_for(rig.capabilities.get(), 5)
        assert caps["max_phase_count_import"] == 1 and caps["min_phase_count_import"] == 1
        assert caps["supports_changing_phases_during_charging"] is False

    run(
        make_stack,
        run_probe,
        tree,
        scenario,
        switch_3ph1ph_wiring="serial",
        grid_phase_count_gpio_line_name="ROTARY_SWITCH_1_8_N",
        grid_phase_count_active_low=True,
    )


def test_missing_hardware_is_named(make_stack, tree) -> None:
    stack, _ = make_stack(
        {
            "active_modules": {
                "bsp": {
                    "module": "CbTarragonDriver",
                    "config_module": {"hal_root": str(tree.root), "cp_invert_gpio_line_name": "NOT_ON_THIS_BOARD"},
                }
            }
        }
    )
    stack.start(wait=False)
    assert stack.wait(30) != 0
    assert "NOT_ON_THIS_BOARD" in stack.log()
    assert "Traceback" not in stack.log()


def test_a_relay_line_that_cannot_be_opened_is_a_contactor_fault_until_the_core_opens_it(
    make_stack, run_probe, tree, board
) -> None:
    b = board()
    relay = "RELAY_1_ENABLE"
    fault_type, sub = "evse_board_support/MREC17EVSEContactorFault", "RelayOutput"

    async def scenario(rig: Rig) -> None:
        await rig.charging(b)
        tree.chip(relay).set_fault(relay, errno.EIO)  # the line's I/O expander stops answering
        b.car("B")
        await rig.event("B")
        await rig.error(fault_type, sub)
        assert tree.level(relay) is True, "still closed: the write fails"
        await rig.power_off()  # as EvseManager does after C->B
        with pytest.raises(TimeoutError):  # EvseManager would unlock the connector on it
            await rig.event("PowerOff", timeout_s=0.5)
        b.car("C")
        await rig.event("C")
        await rig.power_on()  # refused by the core: a relay line fails
        await asyncio.sleep(0.3)
        assert rig.errors[(fault_type, sub)] is True and tree.level(relay) is True
        tree.chip(relay).set_fault(relay, 0)
        await rig.event("PowerOff")  # the core's retry opened it
        assert tree.level(relay) is False
        await rig.error(fault_type, sub, active=False)
        assert ("evse_board_support/VendorError", "CPMeasurement") not in rig.errors
        assert ("evse_board_support/MREC17EVSEContactorFault", "") not in rig.errors, "not the latched fault"
        await rig.power_on()
        await rig.event("PowerOn")

    run(make_stack, run_probe, tree, scenario)


def test_a_cp_invert_write_failure_is_a_pilot_output_error(make_stack, run_probe, tree, board) -> None:
    b = board()

    async def scenario(rig: Rig) -> None:
        await rig.charging(b)
        tree.chip("CP_INVERT").set_fault("CP_INVERT", errno.EIO)
        with pytest.raises(CommandError):
            await rig.call("cp_state_E")
        await rig.error("evse_board_support/VendorError", "CPOutput")
        await rig.event("PowerOff")
        assert tree.level("RELAY_1_ENABLE") is False
        assert ("evse_board_support/VendorError", "CPMeasurement") not in rig.errors, "not a measurement fault"
        tree.chip("CP_INVERT").set_fault("CP_INVERT", 0)
        await rig.call("pwm_on", {"value": 26.7})
        await rig.error("evse_board_support/VendorError", "CPOutput", active=False)

    run(make_stack, run_probe, tree, scenario)
