# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YetiSimulator: the bus adapter of :class:`YetiBoard` (commands in, vars, events and errors out)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from everest_py.framework import wire
from everest_py.framework.module import Module, command
from everest_py.modules.yeti_simulator import injection
from everest_py.modules.yeti_simulator.board import CAPABILITIES, YetiBoard
from everest_py.modules.yeti_simulator.cp import Output

TICK_S = 0.05  # pilot sampling and relay rules; two equal samples make a CP state
REPORT_S = 1.0  # powermeter, telemetry, RCD current and a refresh of the car-side measurement


@dataclass(frozen=True)
class YetiConfig:
    connector_id: int
    reset_powermeter_on_session_start: bool


class _Port:
    """BoardPort on the bus: events to both sides, errors to the named implementation."""

    def __init__(self, module: YetiSimulator) -> None:
        self._m = module

    def event(self, event: str) -> None:
        self._m.log.info("event %s", event)
        self._m.publish("board_support", "event", {"event": event})
        self._m.publish("ev_board_support", "bsp_event", {"event": event})

    def raise_error(self, impl: str, error_type: str, message: str, severity: str) -> bool:
        raised = self._m.errors(impl).raise_error(error_type, "", message, severity)
        if raised:
            self._m.log.warning("raised %s on %s: %s", error_type, impl, message)
        return raised or self._m.errors(impl).is_active(error_type)

    def clear_error(self, impl: str, error_type: str) -> None:
        if self._m.errors(impl).clear_error(error_type):
            self._m.log.info("cleared %s on %s", error_type, impl)


class YetiSimulator(Module):
    Config = YetiConfig
    config: YetiConfig

    _board: YetiBoard | None = None
    _last_measurement: dict[str, Any] | None = None

    @property
    def board(self) -> YetiBoard:
        if self._board is None:
            raise RuntimeError("the board simulation is not set up yet")
        return self._board

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def init(self) -> None:
        cid = self.config.connector_id
        self._board = YetiBoard(
            _Port(self),
            f"YETI_SIMULATOR_{cid}",
            reset_meter_on_session_start=self.config.reset_powermeter_on_session_start,
            now=self._now(),
            log=self.log,
        )
        self.mqtt.subscribe(f"everest_external/nodered/{cid}/carsim/error", self._on_injection)

    async def ready(self) -> None:
        self._publish_capabilities()
        self.spawn(self._run(), "simulation")

    def safe_state(self) -> None:
        if self._board is not None:
            self._board.safe_state()

    # -- the simulation loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        next_report = self._now()
        while True:
            now = self._now()
            self.board.step(now)
            measurement = self.board.measurement()
            periodic = now >= next_report
            if periodic or measurement != self._last_measurement:
                self._last_measurement = measurement
                self.publish("ev_board_support", "bsp_measurement", measurement)
            if periodic:
                next_report += REPORT_S
                if next_report <= now:  # fell behind (a stalled loop): start the rhythm again
                    next_report = now + REPORT_S
                self._report()
            await asyncio.sleep(TICK_S)

    def _report(self) -> None:
        board = self.board
        reading = board.powermeter(wire.timestamp())
        self.publish("powermeter", "powermeter", reading)
        self.publish("board_support", "telemetry", board.telemetry())
        self.publish("rcd", "rcd_current_mA", round(board.rcd.current_mA, 3))
        self.telemetry(
            "livedata",
            "power_meter",
            "power_meter",
            {
                "energy_import_total_Wh": reading["energy_Wh_import"]["total"],
                "power_total_W": reading["power_W"]["total"],
                "relais_on": board.relays_closed,
            },
        )

    def _publish_capabilities(self) -> None:
        self.publish("board_support", "capabilities", CAPABILITIES)
        self.publish("board_support", "ac_nr_of_phases_available", self.board.phases_available)

    def _on_injection(self, topic: str, payload: str) -> None:
        try:
            inj = injection.parse(payload)
        except ValueError as err:
            self.log.warning("%s: ignored: %s", topic, err)
            return
        if not self.board.inject(inj.impl, inj.error_type, inj.active):
            self.log.warning("%s: %s cannot be raised on %s", topic, inj.error_type, inj.impl)

    # -- board_support (evse_board_support) ---------------------------------------------------------------
    @command("board_support", "enable")
    def bsp_enable(self, value: bool) -> None:
        self.board.enable(value)
        if value:
            self._publish_capabilities()

    @command("board_support")
    def pwm_on(self, value: float) -> None:
        self.board.set_pilot(Output.PWM, float(value))

    @command("board_support")
    def cp_state_X1(self) -> None:
        self.board.set_pilot(Output.X1)

    @command("board_support")
    def cp_state_F(self) -> None:
        self.board.set_pilot(Output.F)

    @command("board_support")
    def cp_state_E(self) -> None:
        self.board.set_pilot(Output.E)

    @command("board_support", "allow_power_on")
    def bsp_allow_power_on(self, value: dict[str, Any]) -> None:
        self.board.allow_power_on(bool(value["allow_power_on"]))

    @command("board_support")
    def ac_switch_three_phases_while_charging(self, value: bool) -> None:
        phases = self.board.switch_phases(value)
        self.publish("board_support", "ac_nr_of_phases_available", phases)

    @command("board_support")
    def ac_set_overcurrent_limit_A(self, value: float) -> None:
        self.board.overcurrent_limit_A = float(value)
        self.log.debug("overcurrent limit %.1f A noted (the simulated board has no overcurrent trip)", value)

    # -- ev_board_support -------------------------------------------------------------------------------
    @command("ev_board_support", "enable")
    def ev_enable(self, value: bool) -> None:
        self.board.ev_enable(value)

    @command("ev_board_support")
    def set_cp_state(self, cp_state: str) -> None:
        self.board.set_car_state(cp_state)

    @command("ev_board_support", "allow_power_on")
    def ev_allow_power_on(self, value: bool) -> None:
        self.board.ev_allow_power_on(value)

    @command("ev_board_support")
    def diode_fail(self, value: bool) -> None:
        self.board.set_car_diode(value)

    @command("ev_board_support")
    def set_ac_max_current(self, current: float) -> None:
        self.board.set_car_current(float(current))

    @command("ev_board_support")
    def set_three_phases(self, three_phases: bool) -> None:
        self.board.set_car_phases(three_phases)

    @command("ev_board_support")
    def set_rcd_error(self, rcd_current_mA: float) -> None:
        self.board.set_residual_current(dc_mA=float(rcd_current_mA))

    # -- rcd (ac_rcd) -------------------------------------------------------------------------------------
    @command("rcd")
    def self_test(self) -> None:
        if self.board.rcd_self_test():
            self.log.info("RCD self test passed")
        else:
            self.log.warning("RCD self test failed (injected Selftest error)")

    @command("rcd")
    def reset(self) -> bool:
        return self.board.rcd_reset()

    # -- connector_lock -----------------------------------------------------------------------------------
    @command("connector_lock")
    def lock(self) -> None:
        self.board.lock_connector(self._now())

    @command("connector_lock")
    def unlock(self) -> None:
        self.board.unlock_connector(self._now())

    # -- powermeter -----------------------------------------------------------------------------------
    @command("powermeter")
    def start_transaction(self, value: dict[str, Any]) -> dict[str, Any]:
        return self.board.meter.start_transaction(value, wire.timestamp())

    @command("powermeter")
    def stop_transaction(self, transaction_id: str) -> dict[str, Any]:
        return self.board.meter.stop_transaction(transaction_id, wire.timestamp())
