# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Control-pilot classification of the Tarragon in pure Python: the twin of the C core's pure functions.

Same numbers and semantics as ``native/cp.c`` (chargebyte-hw.md §2.3-§2.4); a property test holds
the two equal.  The C thread does the sampling on the charger; this module documents the rules in
readable form and serves the simulator and the tests.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class CpState(enum.IntEnum):
    """Pilot states as the C core numbers them (IEC 61851-1 Table A.3 plus the board's fault/unknown)."""

    A = 0
    B = 1
    C = 2
    D = 3
    E = 4
    F = 5
    PILOT_FAULT = 6
    UNKNOWN = 7  # nothing detected yet


class CpError(enum.IntFlag):
    """Error bits of an evaluation (the EVerest error each one maps to in the comment)."""

    SHORT = 0x01  # evse_board_support/MREC14PilotFault, sub CPShortFault
    DIODE = 0x02  # evse_board_support/DiodeFault (latched until A is seen)
    VENTILATION = 0x04  # evse_board_support/VentilationNotAvailable
    PILOT = 0x08  # evse_board_support/MREC14PilotFault, sub CPOutOfRange


class DebounceResult(enum.IntEnum):
    NONE = 0
    CHANGED = 1  # the detected state changed to the new measurement
    GLITCH = 2  # X -> Y -> X: the single Y is suppressed


ERROR_VOLTAGE_MAX_DIFF_MV = 1200  # |U+ + U-| at most this: the negative half of the pilot is missing
SHORT_U_POS_MAX_MV = 2000  # U+ below this: the pilot may be shorted
NEG_12V_MIN_MV = -10000  # U- at most this: the -12 V half is present
FULL_DUTY_X100 = 10000  # 100 % in hundredths of a percent
RAW_MAX = 4095  # 12-bit ADC

_A_TO_B = frozenset((CpState.A, CpState.B))
_A_TO_C = frozenset((CpState.A, CpState.B, CpState.C))
_A_TO_E = frozenset((CpState.A, CpState.B, CpState.C, CpState.D, CpState.E))


def _tdiv(a: int, b: int) -> int:
    """Integer division truncating towards zero, as C does."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def voltage_mV(raw: int) -> int:
    """The pilot voltage of one peak detector for a raw 12-bit count (chargebyte's divider model)."""
    return _tdiv(_tdiv(raw * 3300, 4095) * 4561, 476) - 16013


def classify(u_mV: int, prev: int) -> CpState:
    """The state of one side for ``u_mV``; ``prev`` (the side's last measurement) picks a hysteresis band."""
    if u_mV > 13000:
        return CpState.PILOT_FAULT
    if u_mV >= 11000:
        return CpState.A
    if u_mV >= 10000:
        return CpState.A if prev == CpState.A else CpState.B
    if u_mV >= 8000:
        return CpState.B
    if u_mV >= 7000:
        return CpState.B if prev in _A_TO_B else CpState.C
    if u_mV >= 5000:
        return CpState.C
    if u_mV >= 4000:
        return CpState.C if prev in _A_TO_C else CpState.D
    if u_mV >= 2000:
        return CpState.D
    if u_mV >= -1000:
        return CpState.E
    if u_mV >= -2000:
        return CpState.E if prev in _A_TO_E else CpState.PILOT_FAULT
    if u_mV >= -10000:
        return CpState.PILOT_FAULT
    if u_mV >= -11000:
        return CpState.F if prev == CpState.F else CpState.PILOT_FAULT
    if u_mV >= -13000:
        return CpState.F
    return CpState.PILOT_FAULT


@dataclass
class Debounce:
    """Two equal measurements in a row change the detected state of one side."""

    t0: int = CpState.UNKNOWN  # measurement before last
    t1: int = CpState.UNKNOWN  # last measurement
    detected: int = CpState.UNKNOWN

    def step(self, measured: int) -> DebounceResult:
        result = DebounceResult.NONE
        if measured == self.t1:
            if measured != self.detected:
                self.detected = measured
                result = DebounceResult.CHANGED
        elif measured == self.t0:
            result = DebounceResult.GLITCH
        self.t0, self.t1 = self.t1, measured
        return result


def evaluate(
    pos: int, neg: int, u_pos_mV: int, u_neg_mV: int, driven: bool, duty_x100: int, prev_errors: int
) -> tuple[CpState, CpError]:
    """The combined state and the errors now active, from both sides' detected states (§2.4).

    ``prev_errors`` are the errors before: the diode fault stays latched until A is seen, and
    while the pilot is not driven nothing is checked (the errors stay as they were).
    """
    state = pos
    if pos == CpState.E and neg == CpState.F:
        state = CpState.F
    if CpState.PILOT_FAULT in (pos, neg):
        state = CpState.PILOT_FAULT
    if not driven:
        return CpState.E, CpError(prev_errors)
    errors = CpError(0)
    pwm = 0 < duty_x100 < FULL_DUTY_X100
    neg_missing = abs(u_pos_mV + u_neg_mV) <= ERROR_VOLTAGE_MAX_DIFF_MV
    low = u_pos_mV < SHORT_U_POS_MAX_MV
    if (not pwm and low and u_neg_mV > NEG_12V_MIN_MV) or (pwm and low and neg_missing):
        errors |= CpError.SHORT
        state = CpState.E
    if state == CpState.D and u_neg_mV <= NEG_12V_MIN_MV:
        errors |= CpError.VENTILATION
    diode = CpError(prev_errors) & CpError.DIODE
    if state == CpState.A:
        diode = CpError(0)
    if pwm and u_pos_mV > SHORT_U_POS_MAX_MV and state != CpState.A and neg_missing:
        diode = CpError.DIODE
    errors |= diode
    if state == CpState.PILOT_FAULT and not diode:
        errors |= CpError.PILOT
    return CpState(state), errors


def process_batch(
    raw_pos: Sequence[int], raw_neg: Sequence[int], pos: Debounce, neg: Debounce
) -> tuple[list[int], list[int]]:
    """Classify and debounce pairs of raw counts; the detected state of each side after each pair."""
    out_pos: list[int] = []
    out_neg: list[int] = []
    for rp, rn in zip(raw_pos, raw_neg, strict=True):
        pos.step(classify(voltage_mV(rp), pos.t1))
        neg.step(classify(voltage_mV(rn), neg.t1))
        out_pos.append(pos.detected)
        out_neg.append(neg.detected)
    return out_pos, out_neg


__all__ = [
    "ERROR_VOLTAGE_MAX_DIFF_MV",
    "CpError",
    "CpState",
    "Debounce",
    "DebounceResult",
    "classify",
    "evaluate",
    "process_batch",
    "voltage_mV",
]
