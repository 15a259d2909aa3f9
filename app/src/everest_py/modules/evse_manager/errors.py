# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Which errors of the requirements make the EVSE inoperative, and tracking them until they clear."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Errors that never block charging (EVerest's list of exceptions).
NOT_INOPERATIVE = frozenset(
    {
        "evse_manager/Inoperative",
        "evse_manager/MREC11CableCheckFault",
        "evse_board_support/MREC3HighTemperature",
        "evse_board_support/MREC18CableOverTempDerate",
        "evse_board_support/VendorWarning",
        "connector_lock/VendorWarning",
        "ac_rcd/VendorWarning",
        "isolation_monitor/VendorWarning",
        "power_supply_DC/VendorWarning",
        "generic/VendorWarning",
    }
)
OWN = "evse"  # the requirement name used for errors EvseManager raises itself
POWERMETER_REQUIREMENTS = frozenset({"powermeter_grid_side", "powermeter_car_side"})
# requirements whose errors are watched (slac/hlc/store errors never block basic charging)
WATCHED_REQUIREMENTS = frozenset(
    {"bsp", "ac_rcd", "connector_lock", "imd", "powersupply_DC", "over_voltage_monitor"} | POWERMETER_REQUIREMENTS
)


@dataclass(frozen=True)
class ActiveError:
    requirement: str
    type: str
    sub_type: str
    severity: str
    message: str
    vendor_id: str


class ErrorTracker:
    """The blocking errors raised by requirements and not yet cleared."""

    def __init__(self, fail_on_powermeter_errors: bool = True) -> None:
        self.fail_on_powermeter_errors = fail_on_powermeter_errors
        self.active: dict[tuple[str, str, str], ActiveError] = {}

    def blocks(self, requirement: str, error_type: str) -> bool:
        """True if an error of ``error_type`` raised by ``requirement`` makes the EVSE inoperative."""
        if requirement not in WATCHED_REQUIREMENTS or error_type in NOT_INOPERATIVE:
            return False
        return not (requirement in POWERMETER_REQUIREMENTS and not self.fail_on_powermeter_errors)

    def raised(self, requirement: str, error: Mapping[str, Any]) -> bool:
        """Record a raised error; True if it blocks charging."""
        etype = str(error.get("type", ""))
        if not self.blocks(requirement, etype):
            return False
        key = (requirement, etype, str(error.get("sub_type") or ""))
        self.active[key] = ActiveError(
            requirement,
            etype,
            key[2],
            str(error.get("severity") or "Low"),
            str(error.get("message") or ""),
            str(error.get("vendor_id") or "everest"),
        )
        return True

    def raise_own(self, error_type: str, message: str, severity: str = "High") -> bool:
        """An error EvseManager raises itself that blocks charging (e.g. MREC4 soft over current)."""
        key = (OWN, error_type, "")
        if key in self.active:
            return False
        self.active[key] = ActiveError(OWN, error_type, "", severity, message, "everest")
        return True

    def clear_own(self, error_type: str) -> bool:
        return self.active.pop((OWN, error_type, ""), None) is not None

    def cleared(self, requirement: str, error: Mapping[str, Any]) -> bool:
        """Forget a cleared error; True if it was blocking."""
        key = (requirement, str(error.get("type", "")), str(error.get("sub_type") or ""))
        return self.active.pop(key, None) is not None

    @property
    def inoperative(self) -> bool:
        return bool(self.active)

    @property
    def emergency(self) -> bool:
        """A High severity error is active (EVerest: emergency shutdown)."""
        return any(e.severity == "High" for e in self.active.values())

    def first(self) -> ActiveError | None:
        return next(iter(self.active.values()), None)

    def describe(self) -> str:
        return ", ".join(
            f"{e.requirement}: {e.type}" + (f"/{e.sub_type}" if e.sub_type else "") for e in self.active.values()
        )
