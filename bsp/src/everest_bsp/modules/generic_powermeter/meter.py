# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""One poll of the meter and the state of its communication fault; the reads come in as a function."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from everest_bsp.modules.generic_powermeter.registers import Plan, Read, reading

# A poll fails only after the hub has repeated its requests (its `retries`); two failed polls in a
# row make a communication fault. A single lost frame must not stop a charging session, and the
# EvseManager does stop on a fault of its billing meter.
FAILED_POLLS_BEFORE_FAULT = 2


class ReadFailed(Exception):
    """A read of the poll did not give registers; the message says why."""


Reader = Callable[[Read], Awaitable[list[int]]]


@dataclass(frozen=True)
class PollResult:
    value: dict[str, Any] | None  # a Powermeter value, None if the poll failed
    problem: str = ""


class Change(enum.Enum):
    RAISE = "raise"
    CLEAR = "clear"


class FaultState:
    """Counts failed polls; says when to raise the communication fault and when to clear it, once each."""

    def __init__(self, threshold: int = FAILED_POLLS_BEFORE_FAULT) -> None:
        self.threshold = threshold
        self.failed_in_row = 0
        self.active = False

    def update(self, ok: bool) -> Change | None:
        if ok:
            self.failed_in_row = 0
            if self.active:
                self.active = False
                return Change.CLEAR
            return None
        self.failed_in_row += 1
        if not self.active and self.failed_in_row >= self.threshold:
            self.active = True
            return Change.RAISE
        return None


def describe(read: Read) -> str:
    table = "input" if read.function_code == 4 else "holding"
    return f"{read.count} {table} register(s) at {read.address}"


class Meter:
    """The meter as its model describes it; ``last`` is the newest good reading."""

    def __init__(self, plan: Plan, meter_id: str) -> None:
        self.plan = plan
        self.meter_id = meter_id
        self.last: dict[str, Any] | None = None

    async def poll(self, read: Reader, now: Callable[[], str]) -> PollResult:
        """Read every register of the plan; stop at the first read that fails."""
        words: dict[tuple[int, int], int] = {}
        for r in self.plan.reads:
            try:
                registers = await read(r)
            except ReadFailed as err:
                return PollResult(None, f"reading {describe(r)}: {err}")
            if len(registers) != r.count:
                return PollResult(None, f"reading {describe(r)}: got {len(registers)} register(s)")
            for i, word in enumerate(registers):
                words[(r.function_code, r.address + i)] = word
        value = finite(reading(self.plan, words, self.meter_id, now()))
        if "total" not in value.get("energy_Wh_import", {}):
            return PollResult(None, "energy_Wh_import: the meter sent no finite value")
        self.last = value
        return PollResult(value)


def finite(value: dict[str, Any]) -> dict[str, Any]:
    """Drop values that are not finite (JSON has no NaN); a unit left empty or without its required
    member (Frequency needs L1, the others total) is dropped as a whole."""
    out: dict[str, Any] = {}
    for key, part in value.items():
        if not isinstance(part, dict):
            out[key] = part
            continue
        kept = {k: v for k, v in part.items() if math.isfinite(v)}
        required = "L1" if key == "frequency_Hz" else "total" if key not in ("voltage_V", "current_A") else None
        if kept and (required is None or required in kept):
            out[key] = kept
    return out
