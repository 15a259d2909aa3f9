# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Pure physics of the simulated Charge Control C: pilot peaks, ADC counts, PP bands, relay mechanics, phases.

Nothing here touches the board's files: :mod:`everest_bsp.sim.board` reads the drivers' outputs
from the tree, asks these functions what the world does with them and writes the answer back.
Voltages are in V on the pilot, mV at the ADC pins; counts are the 12-bit raw values of IIO.
"""

from __future__ import annotations

from dataclasses import dataclass

# Nominal positive pilot level per car state (IEC 61851-1 Table A.4): open, 2.74 kΩ, 882 Ω, 246 Ω, short.
CAR_LEVEL_V = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0, "E": 0.0}
CAR_STATES = tuple(CAR_LEVEL_V)
SUPPLY_V = 12.0
ADC_MAX = 4095

# Proximity pilot: the middle of each of the board's bands (chargebyte-hw.md §2.7, U = raw*3300/4096 mV).
# Bands: >= 2459 none, >= 1813 13 A, >= 1170 20 A, >= 891 32 A, >= 751 63 A; below: fault.
PP_MV: dict[int | None, int] = {None: 2880, 13: 2136, 20: 1491, 32: 1030, 63: 821}
PP_FAULT_MV = 400  # below every band: a shorted or out-of-range coding resistor
PP_AMPACITIES = (13, 20, 32, 63)

WIRINGS = ("none", "serial", "simultaneous", "mutual")
FEEDBACK_TYPES = ("none", "no", "nc")


# -- control pilot -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PilotDrive:
    """What the EVSE puts on CP: ``driven`` (CP_INVERT high) and the PWM duty as a fraction 0..1."""

    driven: bool = False
    duty: float = 0.0

    @property
    def percent(self) -> float:
        """Duty cycle as the car measures it; an undriven pilot shows no PWM (0 %)."""
        return self.duty * 100.0 if self.driven else 0.0


@dataclass(frozen=True)
class CarPilot:
    """The car's end of the pilot and the wiring between: its state (resistor), diode, wiring faults."""

    state: str = "A"
    diode_fault: bool = False
    cp_short: bool = False  # CP shorted to PE on the way (both peaks ~0 V)
    cp_open: bool = False  # CP wire broken: the EVSE sees no car (12 V), the car sees no pilot


def cp_peaks(drive: PilotDrive, car: CarPilot) -> tuple[float, float]:
    """(positive, negative) peak in V as the Tarragon's peak detectors hold them.

    - not driven (pilot floating), a CP short or the car in E: both ~0 V;
    - duty 0 (constant -12 V): both -12 V;
    - duty 100 % (constant high, no low phase): both at the car's level;
    - otherwise the positive peak is the car's level and the negative one -12 V, or minus the
      car's level when its diode is shorted (the resistor loads the negative half too).
    """
    state = "A" if car.cp_open else car.state
    if not drive.driven or car.cp_short or state == "E":
        return 0.0, 0.0
    level = CAR_LEVEL_V[state]
    if drive.duty <= 0.0:
        return -SUPPLY_V, -SUPPLY_V
    if drive.duty >= 1.0:
        return level, level
    negative = -level if car.diode_fault and state != "A" else -SUPPLY_V
    return level, negative


def car_view(drive: PilotDrive, car: CarPilot) -> str:
    """The CP state (A..F) on the pilot as the car's side sees it."""
    if car.state == "A":
        return "A"
    if not drive.driven or car.cp_short or car.cp_open or car.state == "E":
        return "E"
    if drive.duty <= 0.0:
        return "F"
    return car.state


def cp_raw(volts: float) -> int:
    """Raw count of a CP peak detector for a pilot voltage: the inverse of chargebyte-hw.md §2.3,
    U_mV = (raw*3300/4095)*4561/476 - 16013."""
    raw = (volts * 1000.0 + 16013.0) * 476.0 / 4561.0 * ADC_MAX / 3300.0
    return max(0, min(ADC_MAX, round(raw)))


def cp_volts(raw: int) -> float:
    """The driver's conversion of a peak-detector count to pilot volts (integer math as chargebyte's)."""
    v_adc = raw * 3300 // ADC_MAX
    return (v_adc * 4561 // 476 - 16013) / 1000.0


# -- proximity pilot ----------------------------------------------------------------------------------
def pp_raw(ampacity: int | None, fault: bool = False) -> int:
    """Raw count of the PP channel for a cable of ``ampacity`` A (None: no cable)."""
    mv = PP_FAULT_MV if fault else PP_MV[ampacity]
    return max(0, min(ADC_MAX, round(mv * 4096 / 3300)))


# -- current the car draws ----------------------------------------------------------------------------
def pwm_current_A(duty_percent: float) -> float:
    """Current a duty cycle allows the car (chargebyte-hw.md §2.5): d < 85 % ⇒ d·0.6 A, else (d-64)·2.5 A.

    0 % and 100 % are constant levels, not a PWM: no current.
    """
    if duty_percent <= 0.0 or duty_percent >= 100.0:
        return 0.0
    if duty_percent < 85.0:
        return duty_percent * 0.6
    return max(0.0, (duty_percent - 64.0) * 2.5)


# -- relays -------------------------------------------------------------------------------------------
class RelayContact:
    """One relay: its coil (driven by the SoC) and its main contact that follows after a delay.

    The contact closes ``pull_in_ns`` after the coil is energised and opens ``drop_out_ns`` after
    it is released; a coil that changes back before then leaves the contact where it was.
    Faults: ``welded`` (never opens once closed), ``stuck_open`` (never closes), ``sense_broken``
    (the auxiliary contact's wire is cut: the sense input reads low whatever happens).
    """

    def __init__(self, feedback: str, pull_in_ns: int, drop_out_ns: int) -> None:
        if feedback not in FEEDBACK_TYPES:
            raise ValueError(f"relay feedback type must be one of {', '.join(FEEDBACK_TYPES)}, not {feedback!r}")
        self.feedback = feedback
        self.pull_in_ns = pull_in_ns
        self.drop_out_ns = drop_out_ns
        self.coil = False
        self.closed = False
        self.welded = False
        self.stuck_open = False
        self.sense_broken = False
        self.due_ns: int | None = None  # when the contact follows the coil

    def _can_move(self) -> bool:
        if self.coil == self.closed:
            return False
        return not self.stuck_open if self.coil else not self.welded

    def coil_change(self, energised: bool, timestamp_ns: int) -> None:
        """The SoC drove the coil at ``timestamp_ns``."""
        if energised == self.coil:
            return
        self.coil = energised
        self.due_ns = None
        if self._can_move():
            self.due_ns = timestamp_ns + (self.pull_in_ns if energised else self.drop_out_ns)

    def advance(self, now_ns: int) -> bool:
        """Move the contact if its time has come; True if it moved."""
        if not self._can_move():
            self.due_ns = None
            return False
        if self.due_ns is None:  # a fault was just cleared: the contact starts moving now
            self.due_ns = now_ns + (self.pull_in_ns if self.coil else self.drop_out_ns)
        if now_ns < self.due_ns:
            return False
        self.closed = self.coil
        self.due_ns = None
        return True

    @property
    def sense(self) -> bool | None:
        """Physical level of the sense input; None when the relay has no feedback contact (not driven)."""
        if self.feedback == "none":
            return None
        if self.sense_broken:
            return False
        return self.closed if self.feedback == "no" else not self.closed


def live_phases(wiring: str, r1: bool, r2: bool, grid_phases: int) -> int:
    """Phases that reach the car (0, 1 or 3) for closed contacts ``r1``/``r2`` (chargebyte-hw.md §2.6).

    none: relay 1 switches every phase; serial: relay 2 in series for L2+L3; simultaneous: relay 1
    N+L1, relay 2 L2+L3; mutual: relay 1 the 3-phase, relay 2 the 1-phase contactor.
    """
    if wiring == "none":
        phases = 3 if r1 else 0
    elif wiring in ("serial", "simultaneous"):
        phases = (3 if r2 else 1) if r1 else 0
    elif wiring == "mutual":
        phases = 3 if r1 else 1 if r2 else 0
    else:
        raise ValueError(f"wiring must be one of {', '.join(WIRINGS)}, not {wiring!r}")
    return min(phases, grid_phases) if phases else 0
