# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Proximity pilot of a Type 2 socket: PP voltage to cable ampacity (chargebyte-hw.md §2.7).

IEC 61851-1 Annex B.5 codes the cable's current rating with a resistor between PP and PE; the
Tarragon measures it through a divider on an ADC channel.  The bands below are the board's.
"""

from __future__ import annotations

PP_POLL_S = 0.5

# (lowest mV of the band, ampacity as the ProximityPilot type spells it), highest band first
BANDS: tuple[tuple[int, str], ...] = (
    (2459, "None"),  # no cable (or an open resistor)
    (1813, "A_13"),
    (1170, "A_20"),
    (891, "A_32"),
    (751, "A_63_3ph_70_1ph"),
)


def pp_mV(raw: int) -> int:
    return raw * 3300 // 4096


def ampacity(raw: int) -> str | None:
    """The cable's ampacity for a raw ADC count; None when the voltage is below every band."""
    mv = pp_mV(raw)
    for lowest, value in BANDS:
        if mv >= lowest:
            return value
    return None
