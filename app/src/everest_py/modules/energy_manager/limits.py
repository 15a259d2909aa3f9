# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Limits of one node in one time slot, merged to the root side, and how limits combine."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Amounts below this count as nothing (floating point rest of slice arithmetic).
EPS = 1e-6


@dataclass(frozen=True)
class Num:
    """A value with the name of whoever set it (/energy#/NumberWithSource, IntegerWithSource)."""

    value: float
    source: str = ""

    def json(self, integer: bool = False) -> dict[str, Any]:
        return {"value": round(self.value) if integer else round(self.value, 4), "source": self.source}


def num(raw: Any) -> Num | None:
    """A NumberWithSource/IntegerWithSource from the wire; None if absent or unusable."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("value"), int | float):
        return None
    return Num(float(raw["value"]), str(raw.get("source", "")))


@dataclass
class SlotLimits:
    """What a node allows in one slot, all on its root side (LimitsReq without the flags)."""

    max_current: Num | None = None
    min_current: Num | None = None
    max_power: Num | None = None
    max_phases: Num | None = None
    min_phases: Num | None = None
    active_phases: int | None = None
    price: dict[str, Any] | None = field(default=None)

    def copy(self) -> SlotLimits:
        return copy.copy(self)


def smaller(a: Num | None, b: Num | None) -> Num | None:
    """The smaller of two optional limits (b on a tie)."""
    if a is None or b is None:
        return a if b is None else b
    return a if a.value < b.value else b


def larger(a: Num | None, b: Num | None) -> Num | None:
    """The larger of two optional limits (b on a tie)."""
    if a is None or b is None:
        return a if b is None else b
    return a if a.value > b.value else b


def tighter(a: Num | None, b: Num | None) -> Num | None:
    """The lower of two maxima; on a tie both sources are named."""
    if b is None:
        return a
    if a is None or a.value > b.value:
        return b
    if a.value == b.value:
        return Num(a.value, f"{a.source},{b.source}")
    return a


def stricter(a: Num | None, b: Num | None) -> Num | None:
    """The higher of two minima; on a tie both sources are named."""
    if b is None:
        return a
    if a is None or a.value < b.value:
        return b
    if a.value == b.value:
        return Num(a.value, f"{a.source},{b.source}")
    return a


def is_zero(n: Num | None) -> bool:
    return n is not None and abs(n.value) <= EPS


def entry_limits(entry: Mapping[str, Any]) -> SlotLimits:
    """The limits of one ScheduleReqEntry, both sides merged onto the root side.

    Power on the leaves side is divided by the conversion efficiency (what the root must deliver
    for it); then the lower maximum and the higher minimum of both sides hold.
    """
    root = entry.get("limits_to_root") or {}
    leaves = entry.get("limits_to_leaves") or {}
    leaves_power = num(leaves.get("total_power_W"))
    efficiency = entry.get("conversion_efficiency")
    if leaves_power is not None and isinstance(efficiency, int | float) and efficiency > 0:
        leaves_power = Num(leaves_power.value / efficiency, leaves_power.source)
    active = root.get("ac_number_of_active_phases")
    price = entry.get("price_per_kwh")
    return SlotLimits(
        max_power=smaller(leaves_power, num(root.get("total_power_W"))),
        max_current=smaller(num(leaves.get("ac_max_current_A")), num(root.get("ac_max_current_A"))),
        min_phases=larger(num(root.get("ac_min_phase_count")), num(leaves.get("ac_min_phase_count"))),
        max_phases=smaller(num(root.get("ac_max_phase_count")), num(leaves.get("ac_max_phase_count"))),
        min_current=larger(num(root.get("ac_min_current_A")), num(leaves.get("ac_min_current_A"))),
        active_phases=active if isinstance(active, int) else None,
        price=dict(price) if isinstance(price, Mapping) else None,
    )


def nothing() -> SlotLimits:
    """The limits of a node that requested nothing: no current and no power."""
    return SlotLimits(max_current=Num(0.0), max_power=Num(0.0))


def narrow(offer: SlotLimits, limits: SlotLimits) -> None:
    """Narrow ``offer`` by the limits of one more node on the path; price and phases come from it."""
    offer.max_current = tighter(offer.max_current, limits.max_current)
    offer.max_phases = tighter(offer.max_phases, limits.max_phases)
    offer.max_power = tighter(offer.max_power, limits.max_power)
    offer.min_phases = stricter(offer.min_phases, limits.min_phases)
    offer.min_current = stricter(offer.min_current, limits.min_current)
    offer.price = limits.price
    offer.active_phases = limits.active_phases


def watt_from_frequency(table: Sequence[Mapping[str, Any]], frequency_hz: float) -> float:
    """The power a frequency-power curve gives at ``frequency_hz`` (linear between its points).

    The points are taken sorted by frequency; outside the table the nearest end point holds.
    """
    points = sorted(
        (float(p["frequency_Hz"]), float(p["total_power_W"]))
        for p in table
        if isinstance(p.get("frequency_Hz"), int | float) and isinstance(p.get("total_power_W"), int | float)
    )
    if not points:
        return 0.0
    if frequency_hz <= points[0][0]:
        return points[0][1]
    for (f1, w1), (f2, w2) in itertools.pairwise(points):
        if frequency_hz <= f2:
            return w1 if f2 == f1 else w1 + (frequency_hz - f1) / (f2 - f1) * (w2 - w1)
    return points[-1][1]


def _cap(base: Num | None, limit: float, source: str) -> Num:
    return base if base is not None and base.value <= limit else Num(limit, source)


def apply_setpoint(imp: SlotLimits, exp: SlotLimits, setpoint: Mapping[str, Any], frequency_hz: float | None) -> None:
    """Turn a SetpointType into limits: charging caps import and closes export, discharging the reverse.

    Only one value counts, in this order: ac_current_A, total_power_W, frequency_table (needs a
    measured frequency).
    """
    source = str(setpoint.get("source", ""))
    current = setpoint.get("ac_current_A")
    power = setpoint.get("total_power_W")
    table = setpoint.get("frequency_table")
    if isinstance(current, int | float):
        if current >= 0:
            imp.max_current = _cap(imp.max_current, float(current), source)
            exp.max_current = Num(0.0, source)
        else:
            exp.max_current = _cap(exp.max_current, -float(current), source)
            imp.max_current = Num(0.0, source)
        return
    if isinstance(power, int | float):
        watt = float(power)
    elif isinstance(table, list) and table and frequency_hz is not None:
        watt = watt_from_frequency(table, frequency_hz)
    else:
        return
    if watt >= 0:
        imp.max_power = _cap(imp.max_power, watt, source)
        exp.max_power = Num(0.0, source)
    else:
        exp.max_power = _cap(exp.max_power, -watt, source)
        imp.max_power = Num(0.0, source)
