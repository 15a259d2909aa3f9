# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated Yeti board: pilot, relays, current flow, meter, RCD and lock, stepped by a clock.

Commands of both sides (EVSE: ``evse_board_support``; car: ``ev_board_support``) change the
state at once; :meth:`YetiBoard.step` samples the pilot, debounces the CP state, enforces the
board's own safety rules and integrates energy. Nothing here does I/O: events and errors go to
a :class:`BoardPort`, time comes in as ``now`` (monotonic seconds).

Safety rules of the board itself (not left to the EvseManager):

- the relays close only while power is allowed, the CP state is C or D, the PWM runs and no
  blocking fault is active (shorted diode, tripped RCD, injected board or RCD errors);
- they open as soon as one of these no longer holds, or the EVSE drives F or E, or is disabled;
- a car leaving (state A) clears its residual current and re-arms a tripped RCD.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from everest_py.modules.yeti_simulator import cp
from everest_py.modules.yeti_simulator.cp import Output, Pilot
from everest_py.modules.yeti_simulator.injection import BOARD, RCD
from everest_py.modules.yeti_simulator.lock import ConnectorLock
from everest_py.modules.yeti_simulator.meter import Meter
from everest_py.modules.yeti_simulator.rcd import Rcd

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

DEBOUNCE_SAMPLES = 2  # equal samples in a row before a CP state counts
DIODE_FAULT = "evse_board_support/DiodeFault"
RCD_GROUND_FAILURE = "ac_rcd/MREC2GroundFailure"
# Injected errors that only warn or derate; every other injected board or RCD error opens the relays.
NOT_BLOCKING = frozenset(
    {
        "evse_board_support/VendorWarning",
        "evse_board_support/MREC3HighTemperature",
        "evse_board_support/MREC18CableOverTempDerate",
        "ac_rcd/VendorWarning",
    }
)
CAPABILITIES: dict[str, Any] = {
    "max_current_A_import": 32.0,
    "min_current_A_import": 6.0,
    "max_phase_count_import": 3,
    "min_phase_count_import": 1,
    "max_current_A_export": 32.0,
    "min_current_A_export": 6.0,
    "max_phase_count_export": 3,
    "min_phase_count_export": 1,
    "supports_changing_phases_during_charging": True,
    "supports_cp_state_E": True,
    "connector_type": "IEC62196Type2Cable",
}


class BoardPort(Protocol):
    """Where the board's events and errors go (the module's bus adapter, or a recorder in tests)."""

    def event(self, event: str) -> None:
        """A BspEvent (A..F, PowerOn, PowerOff), for both the EVSE and the car side."""

    def raise_error(self, impl: str, error_type: str, message: str, severity: str) -> bool:
        """Raise an error on one implementation; False if it may not be raised there."""

    def clear_error(self, impl: str, error_type: str) -> None: ...


@dataclass
class EvSide:
    """What the car sets through ``ev_board_support``; a disabled car side counts as no car (A)."""

    enabled: bool = False
    cp_state: str = "A"
    diode_shorted: bool = False
    power_allowed: bool = True
    max_current_A: float = 0.0
    three_phases: bool = True

    @property
    def state(self) -> str:
        return self.cp_state if self.enabled else "A"


class YetiBoard:
    def __init__(
        self,
        port: BoardPort,
        meter_id: str,
        *,
        reset_meter_on_session_start: bool,
        now: float,
        log: Log | None = None,
    ) -> None:
        self.port = port
        self.log: Log = log or logging.getLogger(__name__)
        self.reset_meter_on_session_start = reset_meter_on_session_start
        self.enabled = False
        self.requested = Pilot()  # the drive set by the EVSE side; cached while disabled
        self.ev = EvSide()
        self.power_allowed = False
        self.relays_closed = False
        self.phases_available = 3
        self.overcurrent_limit_A: float | None = None
        self.reported: str | None = None  # debounced CP state last published (None: none since enable)
        self.diode_fault = False
        self.rcd = Rcd()
        self.lock = ConnectorLock()
        self.meter = Meter(meter_id)
        self.injected: set[str] = set()  # blocking error types injected from outside
        self.currents: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._candidate: tuple[str, bool] | None = None
        self._seen = 0
        self._last = now

    # -- what is on the pilot -----------------------------------------------------------------------------
    @property
    def pilot(self) -> Pilot:
        """The effective drive: a disabled port holds F."""
        return self.requested if self.enabled else Pilot(Output.F, 0.0)

    @property
    def duty_cycle(self) -> float:
        """Duty cycle in percent as the car measures it (X1: 100, F and E: 0)."""
        pilot = self.pilot
        if pilot.output is Output.PWM:
            return pilot.duty
        return 100.0 if pilot.output is Output.X1 else 0.0

    @property
    def blocking_fault(self) -> bool:
        return self.diode_fault or self.rcd.tripped or bool(self.injected)

    # -- EVSE side (evse_board_support) ----------------------------------------------------------------------
    def enable(self, value: bool) -> None:
        if value == self.enabled:
            return
        self.enabled = value
        self.reported = None
        self._candidate = None
        self._seen = 0
        self._settle()

    def set_pilot(self, output: Output, duty: float = 100.0) -> None:
        self.requested = Pilot(output, duty if output is Output.PWM else 100.0)
        self._settle()

    def allow_power_on(self, value: bool) -> None:
        self.power_allowed = value
        self._settle()

    def switch_phases(self, three: bool) -> int:
        """Phases now available to the car (1 or 3)."""
        self.phases_available = 3 if three else 1
        self._settle()
        return self.phases_available

    # -- car side (ev_board_support) -------------------------------------------------------------------------
    def ev_enable(self, value: bool) -> None:
        if value == self.ev.enabled:
            return
        if not value:
            self.ev = EvSide()
            self.rcd.dc_mA = 0.0
        self.ev.enabled = value
        self._settle()

    def set_car_state(self, state: str) -> None:
        if state not in cp.CAR_LEVEL_V:
            raise ValueError(f"unknown CP state {state!r} (A, B, C, D or E)")
        self.ev.cp_state = state
        self._settle()

    def set_car_diode(self, shorted: bool) -> None:
        self.ev.diode_shorted = shorted

    def ev_allow_power_on(self, value: bool) -> None:
        self.ev.power_allowed = value
        self._settle()

    def set_car_current(self, amps: float) -> None:
        self.ev.max_current_A = max(0.0, amps)
        self._settle()

    def set_car_phases(self, three: bool) -> None:
        self.ev.three_phases = three
        self._settle()

    def set_residual_current(self, dc_mA: float | None = None, ac_mA: float | None = None) -> None:
        if dc_mA is not None:
            self.rcd.dc_mA = max(0.0, dc_mA)
        if ac_mA is not None:
            self.rcd.ac_mA = max(0.0, ac_mA)
        self._check_rcd()
        self._settle()

    # -- RCD and lock ---------------------------------------------------------------------------------
    def rcd_reset(self) -> bool:
        if not self._rearm_rcd():
            return False
        self._settle()
        return True

    def rcd_self_test(self) -> bool:
        """The simulated test passes unless an RCD Selftest failure was injected."""
        return "ac_rcd/Selftest" not in self.injected

    def lock_connector(self, now: float) -> None:
        self.lock.lock(now)

    def unlock_connector(self, now: float) -> None:
        self.lock.unlock(now)

    # -- injected errors ------------------------------------------------------------------------------
    def inject(self, impl: str, error_type: str, active: bool) -> bool:
        """Raise or clear an error from outside; board and RCD errors that are not warnings block the relays."""
        blocking = impl in (BOARD, RCD) and error_type not in NOT_BLOCKING
        if active:
            severity = "High" if blocking else "Low"
            if not self.port.raise_error(impl, error_type, "injected by the simulation", severity):
                return False
            if blocking:
                self.injected.add(error_type)
        else:
            self.injected.discard(error_type)
            self.port.clear_error(impl, error_type)
        self._settle()
        return True

    # -- the clock ------------------------------------------------------------------------------------
    def step(self, now: float) -> None:
        """Advance to ``now``: integrate energy, move the lock, sample the pilot, apply the safety rules."""
        self.meter.integrate(self.currents, now - self._last)
        self._last = now
        moved = self.lock.step(now)
        if moved is not None:
            self.log.info("connector %s", "locked" if moved else "unlocked")
        self._check_rcd()
        self._sample()
        self._settle()

    def safe_state(self) -> None:
        """Relays open, port disabled; no events (the bus may be gone)."""
        self.enabled = False
        self.power_allowed = False
        self.relays_closed = False
        self.currents = (0.0, 0.0, 0.0)

    # -- measurements ---------------------------------------------------------------------------------
    def measurement(self) -> dict[str, Any]:
        """/board_support_common#/BspMeasurement as the car side sees it."""
        return {
            "cp_pwm_duty_cycle": round(self.duty_cycle, 2),
            "proximity_pilot": {"ampacity": "A_32"},
            "rcd_current_mA": round(self.rcd.current_mA, 3),
        }

    def telemetry(self) -> dict[str, Any]:
        """/evse_board_support#/Telemetry."""
        return {
            "evse_temperature_C": 25.0,
            "fan_rpm": 0.0,
            "supply_voltage_12V": 12.0,
            "supply_voltage_minus_12V": -12.0,
            "relais_on": self.relays_closed,
        }

    def powermeter(self, timestamp: str) -> dict[str, Any]:
        return self.meter.reading(self.currents, timestamp)

    # -- internals ------------------------------------------------------------------------------------
    def _check_rcd(self) -> None:
        cause = self.rcd.check()
        if cause is None:
            return
        message = f"residual current {self.rcd.current_mA:.1f} mA"
        self.port.raise_error(RCD, f"ac_rcd/{cause}", message, "High")
        self.port.raise_error(RCD, RCD_GROUND_FAILURE, message, "High")

    def _rearm_rcd(self) -> bool:
        was = self.rcd.tripped_by
        if not self.rcd.reset():
            return False
        if was is not None:
            self.log.info("RCD re-armed")
            self.port.clear_error(RCD, f"ac_rcd/{was}")
            self.port.clear_error(RCD, RCD_GROUND_FAILURE)
        return True

    def _sample(self) -> None:
        if not self.enabled:
            return
        pilot = self.pilot
        high, low = cp.plateaus(pilot, self.ev.state, self.ev.diode_shorted)
        fault = cp.diode_fault(pilot, high, low)
        state = "F" if fault else cp.decode(high)
        if (state, fault) == self._candidate:
            self._seen += 1
        else:
            self._candidate, self._seen = (state, fault), 1
        if self._seen < DEBOUNCE_SAMPLES:
            return
        if fault and not self.diode_fault:
            self.diode_fault = True
            self.port.raise_error(BOARD, DIODE_FAULT, f"CP low plateau at {low:.1f} V: diode shorted", "High")
        elif self.diode_fault and not fault and (state == "A" or pilot.pwm_running):
            self.diode_fault = False
            self.port.clear_error(BOARD, DIODE_FAULT)
        if state != self.reported:
            previous, self.reported = self.reported, state
            self._entered(state, previous)

    def _entered(self, state: str, previous: str | None) -> None:
        self.port.event(state)
        if state == "A" and previous not in (None, "A"):
            self.rcd.dc_mA = self.rcd.ac_mA = 0.0
            self._rearm_rcd()
        if previous == "A" and state in ("B", "C", "D") and self.reset_meter_on_session_start:
            self.meter.reset()

    def _settle(self) -> None:
        """Open or close the relays as the rules say, then work out the currents."""
        pilot = self.pilot
        in_c = self.reported in ("C", "D")
        must_open = (
            not self.enabled
            or not self.power_allowed
            or not in_c
            or self.blocking_fault
            or pilot.output in (Output.F, Output.E)
        )
        if self.relays_closed and must_open:
            self.relays_closed = False
            self.port.event("PowerOff")
        elif not self.relays_closed and not must_open and pilot.pwm_running:
            self.relays_closed = True
            self.port.event("PowerOn")
        self.currents = self._flow()

    def _flow(self) -> tuple[float, float, float]:
        ev = self.ev
        if not self.relays_closed or ev.state not in ("C", "D") or not ev.power_allowed:
            return 0.0, 0.0, 0.0
        duty = self.duty_cycle
        limit = ev.max_current_A if cp.is_hlc(duty) else min(ev.max_current_A, cp.pwm_limit_A(duty))
        amps = max(0.0, limit)
        three = ev.three_phases and self.phases_available == 3
        return amps, amps if three else 0.0, amps if three else 0.0
