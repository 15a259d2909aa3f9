# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Enable/disable by priority-resolved sources (/evse_manager#/EnableDisableSource), as EVerest resolves them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UNASSIGNED = "Unassigned"
ENABLE = "Enable"
DISABLE = "Disable"
LOWEST_PRIORITY = 10000


def source(origin: str = "Unspecified", state: str = UNASSIGNED, priority: int = LOWEST_PRIORITY) -> dict[str, Any]:
    return {"enable_source": origin, "enable_state": state, "enable_priority": priority}


class EnableTable:
    """One entry per source (a newer command of a source replaces its entry).

    Resolution: entries with state Unassigned do not count; the lowest ``enable_priority`` number
    wins; at equal priority Disable wins over Enable; with no assigned entry the EVSE is enabled.
    """

    def __init__(self, initially_enabled: bool = True) -> None:
        first = source("Unspecified", ENABLE if initially_enabled else DISABLE)
        self.entries: dict[str, dict[str, Any]] = {first["enable_source"]: first}
        self.winner: dict[str, Any] = first
        self.enabled = initially_enabled

    def update(self, entry: Mapping[str, Any]) -> bool:
        """Add or replace the entry of ``entry['enable_source']``; returns the resolved state (True: enabled)."""
        self.entries[str(entry["enable_source"])] = dict(entry)
        self.enabled, self.winner = self.resolve()
        return self.enabled

    def resolve(self) -> tuple[bool, dict[str, Any]]:
        winner: dict[str, Any] | None = None
        for entry in self.entries.values():
            if entry["enable_state"] == UNASSIGNED:
                continue
            if winner is None or (entry["enable_priority"], entry["enable_state"] != DISABLE) < (
                winner["enable_priority"],
                winner["enable_state"] != DISABLE,
            ):
                winner = entry
        if winner is None:
            return True, source()
        return winner["enable_state"] != DISABLE, winner
