# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The energy tree as a set of local markets: what each node allows per slot and what it has sold."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from everest_py.modules.energy_manager.limits import Num, SlotLimits, apply_setpoint, entry_limits, narrow, nothing
from everest_py.modules.energy_node.schedule import active_entry, entry_time, floor_to

SCHEDULES = ("schedule_import", "schedule_export", "schedule_setpoints")


def time_grid(request: Mapping[str, Any], start: datetime, interval: timedelta, total: timedelta) -> list[datetime]:
    """The slots of one optimization: a regular grid from ``start`` (rounded down to the interval)
    over the forecast length, plus every time stamp found in the request tree, sorted."""
    first = floor_to(start, interval)
    count = max(1, int(total / interval)) if interval > timedelta(0) else 1
    stamps = {first + k * interval for k in range(count)}
    for node in walk(request):
        for key in SCHEDULES:
            for entry in node.get(key) or []:
                stamps.add(entry_time(entry, first))
    return sorted(stamps)


def walk(request: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """A request and every request below it, depth first, parents before children."""
    yield request
    for child in request.get("children") or []:
        if isinstance(child, Mapping):
            yield from walk(child)


def frequency(request: Mapping[str, Any]) -> float | None:
    """Grid frequency measured at the node (root side first), if reported."""
    for key in ("energy_usage_root", "energy_usage_leaves"):
        usage = request.get(key)
        if isinstance(usage, Mapping):
            hz = usage.get("frequency_Hz")
            if isinstance(hz, Mapping) and isinstance(hz.get("L1"), int | float):
                return float(hz["L1"])
    return None


@dataclass
class Sold:
    """What a node has sold in one slot so far: signed (import positive, export negative)."""

    current: Num | None = None
    power: Num | None = None
    phases: Num | None = None

    def add(self, trade: Sold) -> None:
        self.current = _add(self.current, trade.current)
        self.power = _add(self.power, trade.power)
        if trade.phases is not None and (self.phases is None or trade.phases.value > self.phases.value):
            self.phases = trade.phases

    def limits(self) -> dict[str, Any]:
        """As /energy#/LimitsRes."""
        out: dict[str, Any] = {}
        if self.current is not None:
            out["ac_max_current_A"] = self.current.json()
        if self.power is not None:
            out["total_power_W"] = self.power.json()
        if self.phases is not None:
            out["ac_max_phase_count"] = self.phases.json(integer=True)
        return out


def _add(total: Num | None, part: Num | None) -> Num | None:
    if part is None:
        return total
    source = part.source if part.value != 0 or total is None else total.source
    return Num(part.value + (total.value if total is not None else 0.0), source)


class Market:
    """One node of the tree: its limits per slot (import and export) and what was sold below it."""

    def __init__(self, request: Mapping[str, Any], grid: Sequence[datetime], parent: Market | None = None) -> None:
        self.request = request
        self.uuid = str(request.get("uuid", ""))
        self.parent = parent
        self.import_max = self._resample(request.get("schedule_import") or [], grid)
        self.export_max = self._resample(request.get("schedule_export") or [], grid)
        setpoints = request.get("schedule_setpoints") or []
        if setpoints:
            hz = frequency(request)
            for i, at in enumerate(grid):
                entry = active_entry(setpoints, at)
                setpoint = entry.get("setpoint") if entry is not None else None
                if isinstance(setpoint, Mapping):
                    apply_setpoint(self.import_max[i], self.export_max[i], setpoint, hz)
        self.sold = [Sold() for _ in grid]
        self.children = [Market(c, grid, self) for c in request.get("children") or [] if isinstance(c, Mapping)]

    @staticmethod
    def _resample(schedule: Sequence[Mapping[str, Any]], grid: Sequence[datetime]) -> list[SlotLimits]:
        if not schedule:
            return [nothing() for _ in grid]
        out = []
        for at in grid:
            entry = active_entry(schedule, at)
            out.append(entry_limits(entry) if entry is not None else nothing())
        return out

    @property
    def is_evse(self) -> bool:
        return self.request.get("node_type") == "Evse"

    def evses(self) -> list[Market]:
        """The EVSE nodes at and below this one, depth first."""
        found = [self] if self.is_evse else []
        for child in self.children:
            found += child.evses()
        return found

    def path(self) -> list[Market]:
        """The nodes from the root down to this one."""
        chain = [self]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        return chain[::-1]

    def available(self, slot: int, importing: bool) -> SlotLimits:
        """What is left of this node's limits in ``slot`` after what was sold below it.

        Import reduces what may still be imported; export what may still be exported. A sale in the
        other direction frees nothing.
        """
        limits = (self.import_max if importing else self.export_max)[slot].copy()
        sold = self.sold[slot]
        sign = -1.0 if importing else 1.0
        if limits.max_current is not None and sold.current is not None:
            used = min(0.0, sign * sold.current.value)
            limits.max_current = Num(limits.max_current.value + used, limits.max_current.source)
        if limits.max_power is not None and sold.power is not None:
            used = min(0.0, sign * sold.power.value)
            limits.max_power = Num(limits.max_power.value + used, limits.max_power.source)
        return limits

    def offer(self, slot: int, importing: bool) -> SlotLimits:
        """What this node could still buy in ``slot``: every node's leftover on the path from the root."""
        offer = SlotLimits()
        for node in self.path():
            narrow(offer, node.available(slot, importing))
        return offer

    def trade(self, slot: int, trade: Sold) -> None:
        """Book a sale at this node and at every node above it."""
        node: Market | None = self
        while node is not None:
            node.sold[slot].add(trade)
            node = node.parent
