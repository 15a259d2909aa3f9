# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated power meter: per-phase energy integrated from current and voltage, meter transactions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

NOMINAL_V = 230.0
FREQUENCY_HZ = 50.0
PHASES = ("L1", "L2", "L3")


def _r(value: float, digits: int = 3) -> float:
    return round(value, digits)


def _per_phase(values: list[float] | tuple[float, ...], digits: int = 3) -> dict[str, float]:
    return {p: _r(v, digits) for p, v in zip(PHASES, values, strict=True)}


@dataclass
class Transaction:
    transaction_id: str
    start_Wh: float
    start_time: str


@dataclass
class Meter:
    """Energy counters of the three phases; ``integrate`` adds what the given currents delivered."""

    meter_id: str
    voltage_V: float = NOMINAL_V
    energy_Wh: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    transactions: dict[str, Transaction] = field(default_factory=dict)

    @property
    def total_Wh(self) -> float:
        return sum(self.energy_Wh)

    def integrate(self, currents_A: tuple[float, float, float], dt_s: float) -> None:
        if dt_s <= 0:
            return
        for i, amps in enumerate(currents_A):
            self.energy_Wh[i] += self.voltage_V * amps * dt_s / 3600.0

    def reset(self) -> None:
        """Counters back to zero (a new session on a simulator configured to do so)."""
        self.energy_Wh = [0.0, 0.0, 0.0]

    def reading(self, currents_A: tuple[float, float, float], timestamp: str) -> dict[str, Any]:
        """A /powermeter#/Powermeter value."""
        power = [self.voltage_V * a for a in currents_A]
        return {
            "timestamp": timestamp,
            "meter_id": self.meter_id,
            "energy_Wh_import": {"total": _r(self.total_Wh), **_per_phase(self.energy_Wh)},
            "energy_Wh_export": {"total": 0.0, "L1": 0.0, "L2": 0.0, "L3": 0.0},
            "power_W": {"total": _r(sum(power), 1), **_per_phase(power, 1)},
            "voltage_V": {p: self.voltage_V for p in PHASES},
            "current_A": {**_per_phase(currents_A), "N": 0.0},
            "frequency_Hz": {p: FREQUENCY_HZ for p in PHASES},
        }

    def _record(self, transaction_id: str, energy_Wh: float, timestamp: str) -> dict[str, Any]:
        """The readings of a transaction edge; unsigned, since the simulator has no key."""
        data = {"meter_id": self.meter_id, "transaction_id": transaction_id, "energy_Wh_import": _r(energy_Wh)}
        return {
            "signed_meter_data": json.dumps(data, sort_keys=True),
            "signing_method": "none",
            "encoding_method": "plain-json",
            "timestamp": timestamp,
        }

    def start_transaction(self, request: dict[str, Any], timestamp: str) -> dict[str, Any]:
        """TransactionStartResponse; a second start of a running transaction id is refused."""
        tid = str(request.get("transaction_id", ""))
        if not tid:
            return {"status": "UNEXPECTED_ERROR", "error": "the transaction id is empty"}
        if tid in self.transactions:
            return {"status": "UNEXPECTED_ERROR", "error": f"transaction {tid} is running already"}
        self.transactions[tid] = Transaction(tid, self.total_Wh, timestamp)
        return {"status": "OK"}

    def stop_transaction(self, transaction_id: str, timestamp: str) -> dict[str, Any]:
        """TransactionStopResponse with the start and stop readings; an empty id ends every transaction."""
        if not transaction_id:
            self.transactions.clear()
            return {"status": "OK"}
        tx = self.transactions.pop(transaction_id, None)
        if tx is None:
            return {"status": "UNEXPECTED_ERROR", "error": f"no running transaction {transaction_id}"}
        return {
            "status": "OK",
            "start_signed_meter_value": self._record(tx.transaction_id, tx.start_Wh, tx.start_time),
            "signed_meter_value": self._record(tx.transaction_id, self.total_Wh, timestamp),
        }
