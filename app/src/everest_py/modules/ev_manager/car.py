# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated car: what it sets on its end of the pilot (``ev_board_support``) and what it sees there.

The car drives the board through an :class:`EvBoard` (commands are queued by the module and sent
in order); it learns the PWM duty cycle from ``bsp_measurement`` and the CP state and relay
state from ``bsp_event``. A regulated car follows the PWM: it draws min(its own limit, what the
duty cycle allows), and adjusts whenever the duty cycle changes. A fixed car draws what it was
told regardless of the PWM (the board still caps it).

The state of charge rises with the energy the car believes it draws while the relays are on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from everest_py.modules.yeti_simulator.cp import pwm_limit_A

PWM_READY_RANGE = (7.0, 97.0)  # nominal PWM, exclusive bounds


class SimState(StrEnum):
    UNPLUGGED = "unplugged"
    PLUGGED_IN = "plugged_in"
    CHARGING_REGULATED = "charging_regulated"
    CHARGING_FIXED = "charging_fixed"
    ERROR_E = "error_e"


CHARGING = (SimState.CHARGING_REGULATED, SimState.CHARGING_FIXED)


class EvBoard(Protocol):
    def send(self, cmd: str, args: dict[str, Any]) -> None:
        """Queue one ev_board_support command."""


@dataclass(frozen=True)
class CarParams:
    max_current_A: float
    three_phases: bool
    nominal_voltage_V: float
    capacity_Wh: float
    soc: float


class Car:
    def __init__(self, board: EvBoard, params: CarParams) -> None:
        self._board = board
        self.params = params
        self.state = SimState.UNPLUGGED
        self.limit_A = 0.0  # the car's own limit for this charge (from the script)
        self.demand_A = 0.0  # what it last asked the board for
        self.phases = 3 if params.three_phases else 1
        self.soc = float(params.soc)
        self.duty: float | None = None  # last PWM duty cycle seen, percent
        self.cp_seen: str | None = None  # last CP state the board reported
        self.power_on = False
        self._sent: dict[str, Any] = {}
        self._last_tick: float | None = None

    # -- sending, without repeating what the board already has --------------------------------------------
    def _send(self, cmd: str, **args: Any) -> None:
        if self._sent.get(cmd) == args:
            return
        self._sent[cmd] = args
        self._board.send(cmd, args)

    def _set_demand(self, amps: float) -> None:
        self.demand_A = amps
        self._send("set_ac_max_current", current=amps)

    # -- what the board reports ---------------------------------------------------------------------------
    def on_measurement(self, duty: float) -> None:
        self.duty = duty
        if self.state is SimState.CHARGING_REGULATED:
            self._regulate()

    def on_bsp_event(self, event: str) -> None:
        if event == "PowerOn":
            self.power_on = True
        elif event == "PowerOff":
            self.power_on = False
        else:
            self.cp_seen = event

    @property
    def pwm_ready(self) -> bool:
        """The EVSE signals a nominal PWM (7..97 %): ready for basic charging."""
        low, high = PWM_READY_RANGE
        return self.duty is not None and low < self.duty < high

    @property
    def board_sees_car(self) -> bool:
        """The board reports a car on the pilot (B, C or D), e.g. a real one on a HIL bench."""
        return self.cp_seen in ("B", "C", "D")

    @property
    def plugged(self) -> bool:
        return self.state is not SimState.UNPLUGGED

    # -- actions of the script ----------------------------------------------------------------------------
    def enable(self, value: bool) -> None:
        """Switch the car side of the board on or off; off also unplugs."""
        if not value:
            self.unplug()
        self._board.send("enable", {"value": value})
        self._sent.clear()  # the board resets its car side on enable changes
        if value:
            self._send("set_cp_state", cp_state="A")

    def plug_in(self) -> None:
        self.state = SimState.PLUGGED_IN
        self._set_demand(0.0)
        self._send("set_cp_state", cp_state="B")

    def pause(self) -> None:
        """Back to B: the car no longer asks for power."""
        self.plug_in()

    def unplug(self) -> None:
        self.state = SimState.UNPLUGGED
        self._set_demand(0.0)
        self._send("set_cp_state", cp_state="A")
        self._send("diode_fail", value=False)
        self._send("set_rcd_error", rcd_current_mA=0.0)

    def draw_regulated(self, amps: float, phases: int) -> None:
        self.state = SimState.CHARGING_REGULATED
        self.limit_A = amps
        self._set_phases(phases)
        self._regulate()
        self._send("set_cp_state", cp_state="C")

    def draw_fixed(self, amps: float, phases: int) -> None:
        self.state = SimState.CHARGING_FIXED
        self.limit_A = amps
        self._set_phases(phases)
        self._set_demand(amps)
        self._send("set_cp_state", cp_state="C")

    def error_e(self) -> None:
        self.state = SimState.ERROR_E
        self._set_demand(0.0)
        self._send("set_cp_state", cp_state="E")

    def diode_fail(self) -> None:
        self._send("diode_fail", value=True)

    def rcd_current(self, milliamps: float) -> None:
        self._send("set_rcd_error", rcd_current_mA=milliamps)

    def set_soc(self, soc: float) -> None:
        self.soc = min(100.0, max(0.0, soc))

    def _set_phases(self, phases: int) -> None:
        self.phases = phases
        self._send("set_three_phases", three_phases=phases == 3)

    def _regulate(self) -> None:
        allowed = pwm_limit_A(self.duty) if self.duty is not None else 0.0
        self._set_demand(min(self.limit_A, allowed))

    # -- time -----------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Charge the battery for the time since the last tick while power flows."""
        last, self._last_tick = self._last_tick, now
        if last is None or not self.power_on or self.state not in CHARGING or self.params.capacity_Wh <= 0:
            return
        energy_Wh = self.params.nominal_voltage_V * self.demand_A * self.phases * (now - last) / 3600.0
        self.soc = min(100.0, self.soc + 100.0 * energy_Wh / self.params.capacity_Wh)

    @property
    def present_current_A(self) -> float:
        return self.demand_A if self.power_on and self.state in CHARGING else 0.0

    def ev_info(self) -> dict[str, Any]:
        """/evse_manager#/EVInfo as far as a simple AC car knows it."""
        capacity = self.params.capacity_Wh
        return {
            "soc": round(self.soc, 1),
            "present_current": round(self.present_current_A, 2),
            "target_current": round(self.demand_A, 2),
            "maximum_current_limit": self.params.max_current_A,
            "battery_capacity": capacity,
            "remaining_energy_needed": round(capacity * (100.0 - self.soc) / 100.0, 1),
        }
