# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Meter transactions of a meter that signs nothing.

The powermeter interface's start_transaction/stop_transaction exist for meters that sign their
readings (German calibration law, OCMF). A generic Modbus meter signs nothing, so both commands
answer ``NOT_SUPPORTED``, as EVerest's GenericPowermeter does: an unsigned reading presented as
``signed_meter_value`` would end up at the CSMS as if it were signed.

The readings at start and stop are still noted, and the answer's ``error`` text (the only free
member the types allow next to NOT_SUPPORTED) gives them, for logs and bring-up:
``... transaction T: 1200.0 Wh at start, 1265.5 Wh at stop, 65.5 Wh imported``.
Transactions are kept in memory only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NOT_SUPPORTED = "NOT_SUPPORTED"
PREFIX = "this meter signs no readings"


@dataclass(frozen=True)
class Noted:
    transaction_id: str
    start_Wh: float | None
    start_time: str


def energy(reading: Mapping[str, Any] | None) -> float | None:
    if reading is None:
        return None
    total = reading.get("energy_Wh_import", {}).get("total")
    return float(total) if isinstance(total, int | float) else None


def _wh(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} Wh"


class TransactionBook:
    """Start and stop readings per transaction id."""

    def __init__(self) -> None:
        self.open: dict[str, Noted] = {}

    def start(self, request: Mapping[str, Any], reading: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
        """A TransactionStartResponse; the transaction is noted with the newest reading."""
        tid = str(request.get("transaction_id", ""))
        again = tid in self.open
        noted = Noted(tid, energy(reading), now)
        self.open[tid] = noted
        text = f"{PREFIX}; transaction {tid} {'restarted' if again else 'noted'} at {_wh(noted.start_Wh)}"
        return {"status": NOT_SUPPORTED, "error": text}

    def stop(self, transaction_id: str, reading: Mapping[str, Any] | None) -> dict[str, Any]:
        """A TransactionStopResponse naming the energy of the transaction; an empty id ends every one."""
        if not transaction_id:
            count = len(self.open)
            self.open.clear()
            return {"status": NOT_SUPPORTED, "error": f"{PREFIX}; {count} open transaction(s) dropped"}
        noted = self.open.pop(transaction_id, None)
        if noted is None:
            return {"status": NOT_SUPPORTED, "error": f"{PREFIX}; no transaction {transaction_id} was started"}
        stop_Wh = energy(reading)
        used = None if noted.start_Wh is None or stop_Wh is None else stop_Wh - noted.start_Wh
        imported = "imported energy unknown" if used is None else f"{used:.1f} Wh imported"
        text = (
            f"{PREFIX}; transaction {transaction_id}: "
            f"{_wh(noted.start_Wh)} at start, {_wh(stop_Wh)} at stop, {imported}"
        )
        return {"status": NOT_SUPPORTED, "error": text}
