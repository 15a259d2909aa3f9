# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The reference PWM of the digital inputs: period and duty for a threshold voltage (chargebyte-hw.md §3)."""

from __future__ import annotations

from typing import Protocol

PERIOD_NS = 40_000  # 25 kHz: filtered on the board into the comparators' reference voltage
FULL_SCALE_MV = 12_000  # 100 % duty is a 12 V threshold


class Pwm(Protocol):
    def configure(self, period_ns: int, duty_ns: int) -> None: ...

    def enable(self, on: bool) -> None: ...


def duty_ns(threshold_mV: int) -> int:
    """Duty (ns) of the 40 µs period that makes ``threshold_mV`` (0..12000); integer math as on the board."""
    if not 0 <= threshold_mV <= FULL_SCALE_MV:
        raise ValueError(f"threshold {threshold_mV} mV is outside 0..{FULL_SCALE_MV} mV")
    return threshold_mV * PERIOD_NS // FULL_SCALE_MV


def apply(pwm: Pwm, threshold_mV: int) -> int:
    """Set period and duty, then enable; returns the duty in ns."""
    duty = duty_ns(threshold_mV)
    pwm.configure(PERIOD_NS, duty)
    pwm.enable(True)
    return duty
