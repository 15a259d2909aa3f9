# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Control pilot physics of the simulated board: plateau voltages, state decoding, the PWM current rule.

The EVSE drives the pilot (+12 V through 1 kΩ, as X1, as PWM, as -12 V in F or at 0 V in E);
the car loads it with its resistor (state A..D) and a diode, or shorts it (state E). The board
samples the high and the low plateau of the signal and decodes the CP state from them, as a
real board does (IEC 61851-1 Table A.4 bands, mid-points between the nominal levels).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Nominal positive plateau per car state: open, 2.74 kΩ, 882 Ω, 246 Ω, short.
CAR_LEVEL_V = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0, "E": 0.0}
SUPPLY_V = 12.0

# Decoding bands of the positive plateau (lower bounds, checked from the top).
_BANDS = ((10.5, "A"), (7.5, "B"), (4.5, "C"), (1.5, "D"), (-1.5, "E"))
# With a working diode the low plateau stays near -12 V whatever the car's resistor is.
DIODE_OK_BELOW_V = -10.5


class Output(StrEnum):
    """What the EVSE drives on the pilot."""

    X1 = "X1"  # constant +12 V, no PWM
    PWM = "PWM"  # +12/-12 V square wave at the duty cycle
    F = "F"  # constant -12 V
    E = "E"  # pilot at 0 V


@dataclass(frozen=True)
class Pilot:
    """The effective pilot drive: output kind and duty cycle in percent (PWM only)."""

    output: Output = Output.X1
    duty: float = 100.0

    @property
    def pwm_running(self) -> bool:
        """A real square wave (0 % and 100 % are constant levels)."""
        return self.output is Output.PWM and 0.0 < self.duty < 100.0


def plateaus(pilot: Pilot, car_state: str, diode_shorted: bool) -> tuple[float, float]:
    """(high, low) plateau voltages seen on CP for this drive and this car."""
    if pilot.output is Output.E or car_state == "E":
        return 0.0, 0.0
    positive = CAR_LEVEL_V[car_state]
    # The diode blocks the car's resistor on the negative half; a shorted diode loads it like the positive one.
    negative = -positive if diode_shorted and car_state != "A" else -SUPPLY_V
    if pilot.output is Output.F or (pilot.output is Output.PWM and pilot.duty <= 0.0):
        return negative, negative
    if pilot.output is Output.X1 or pilot.duty >= 100.0:
        return positive, positive
    return positive, negative


def decode(high: float) -> str:
    """CP state (A..F) from the high plateau."""
    for bound, state in _BANDS:
        if high >= bound:
            return state
    return "F"


def diode_fault(pilot: Pilot, high: float, low: float) -> bool:
    """True if a car is attached (B..D) and the low plateau shows a shorted diode.

    Only visible while the PWM runs: at X1 both plateaus are the same anyway.
    """
    return pilot.pwm_running and 1.5 <= high < 10.5 and low > DIODE_OK_BELOW_V


def is_hlc(duty: float) -> bool:
    """5 % PWM (3..7 %): high-level communication, the current comes from ISO 15118, not from the duty cycle."""
    return 3.0 <= duty <= 7.0


def pwm_limit_A(duty: float) -> float:
    """Current in A a duty cycle (percent) allows by IEC 61851-1 Annex A; 0 where it allows none.

    8..10 % is 6 A, 10..85 % is duty x 0.6, 85..96 % is (duty - 64) x 2.5, 96..97 % is 80 A;
    below 8 % (including the 5 % of high-level communication) and above 97 % no current.
    """
    if duty < 8.0 or duty > 97.0:
        return 0.0
    if duty < 10.0:
        return 6.0
    if duty <= 85.0:
        return duty * 0.6
    if duty <= 96.0:
        return (duty - 64.0) * 2.5
    return 80.0
