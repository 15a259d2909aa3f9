# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated residual current device: trips above 6 mA DC or 30 mA AC and stays tripped until reset."""

from __future__ import annotations

from dataclasses import dataclass

DC_TRIP_MA = 6.0
AC_TRIP_MA = 30.0


@dataclass
class Rcd:
    """Residual currents (DC and AC part) and the latched trip."""

    dc_mA: float = 0.0
    ac_mA: float = 0.0
    tripped_by: str | None = None  # "DC" or "AC" (the ac_rcd error name)

    @property
    def current_mA(self) -> float:
        return self.dc_mA + self.ac_mA

    @property
    def tripped(self) -> bool:
        return self.tripped_by is not None

    def over_limit(self) -> str | None:
        """Which part is over its limit ("DC" first), None if both are fine."""
        if self.dc_mA > DC_TRIP_MA:
            return "DC"
        if self.ac_mA > AC_TRIP_MA:
            return "AC"
        return None

    def check(self) -> str | None:
        """Trip if over a limit; returns the cause when it trips now, None otherwise."""
        if self.tripped:
            return None
        cause = self.over_limit()
        if cause is not None:
            self.tripped_by = cause
        return cause

    def reset(self) -> bool:
        """Re-arm; refused (False) while the residual current is still over a limit."""
        if self.over_limit() is not None:
            return False
        self.tripped_by = None
        return True
