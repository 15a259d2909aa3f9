# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""One fuse of the energy tree: merges the requests of its children and adds its own limits."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from everest_py.modules.energy_node.schedule import active_entry, entry_time, floor_to, format_time

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class NodeConfig:
    """What a node knows of itself: its uuid (the module id) and its config."""

    uuid: str
    fuse_limit_A: float
    phase_count: int
    enhance_external_schedule: bool = False
    nominal_voltage_V: float = 230.0

    @property
    def source(self) -> str:
        """The source named in limits that come from this node's config."""
        return f"{self.uuid}/module_config"


def local_limits(cfg: NodeConfig) -> dict[str, Any]:
    """LimitsReq of the fuse itself: its current per phase and, if limited, its phase count."""
    limits: dict[str, Any] = {"ac_max_current_A": {"value": float(cfg.fuse_limit_A), "source": cfg.source}}
    if cfg.phase_count > 0:
        limits["ac_max_phase_count"] = {"value": cfg.phase_count, "source": cfg.source}
    return limits


def local_schedule(cfg: NodeConfig, now: datetime) -> list[dict[str, Any]]:
    """The one-entry schedule used when nothing external is set; stamped with the current hour."""
    return [
        {
            "timestamp": format_time(floor_to(now, HOUR)),
            "limits_to_root": local_limits(cfg),
            "limits_to_leaves": local_limits(cfg),
        }
    ]


def limit_schedule(schedule: list[dict[str, Any]], cfg: NodeConfig) -> list[dict[str, Any]]:
    """A copy of an external schedule with the fuse applied on the root side of every entry.

    With ``enhance_external_schedule`` an entry that limits only the power on the root side also gets
    the matching current per phase (power / (voltage x phases)), the phases taken from the entry or
    else from the config. The fuse then caps the current and the phase count, as a safety limit
    that no external party can lift.
    """
    out = copy.deepcopy(schedule)
    for entry in out:
        root = entry.setdefault("limits_to_root", {})
        leaves = entry.setdefault("limits_to_leaves", {})
        if cfg.enhance_external_schedule:
            phases = cfg.phase_count
            for side in (root, leaves):
                count = side.get("ac_max_phase_count", {}).get("value", 0)
                if count > 0:
                    phases = count
                    break
            phases = max(phases, 1)
            power = root.get("total_power_W")
            if power is not None and power["value"] > 0 and "ac_max_current_A" not in root:
                amps = power["value"] / (cfg.nominal_voltage_V * phases)
                root["ac_max_current_A"] = {"value": amps, "source": cfg.source}
        current = root.get("ac_max_current_A")
        if current is None or current["value"] > cfg.fuse_limit_A:
            root["ac_max_current_A"] = {"value": float(cfg.fuse_limit_A), "source": cfg.source}
        count = root.get("ac_max_phase_count")
        if cfg.phase_count > 0 and (count is None or count["value"] > cfg.phase_count):
            root["ac_max_phase_count"] = {"value": cfg.phase_count, "source": cfg.source}
    return out


def merge_prices(schedule: list[dict[str, Any]], prices: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """``schedule`` with the price of each moment attached; a price change starts an entry of its own."""
    if not schedule or not prices:
        return schedule
    stamps = {entry_time(e, now) for e in schedule} | {entry_time(p, now) for p in prices}
    merged = []
    for at in sorted(stamps):
        entry = copy.deepcopy(active_entry(schedule, at))
        price = active_entry(prices, at)
        assert entry is not None and price is not None
        entry["timestamp"] = format_time(at)
        entry["price_per_kwh"] = dict(price)
        merged.append(entry)
    return merged


def subtree_uuids(request: dict[str, Any]) -> set[str]:
    """The uuids of a request and of every node below it."""
    found = {str(request.get("uuid"))}
    for child in request.get("children") or []:
        if isinstance(child, dict):
            found |= subtree_uuids(child)
    return found


class EnergyNode:
    """The state of one node: its children's latest requests, external limits, meter and prices."""

    def __init__(self, cfg: NodeConfig, consumers: int) -> None:
        self.cfg = cfg
        self.consumers = consumers
        self.children: dict[int, dict[str, Any]] = {}
        self.external: dict[str, Any] | None = None
        self.energy_usage_root: dict[str, Any] | None = None
        self.prices: dict[str, Any] | None = None

    def on_child_request(self, index: int, request: dict[str, Any]) -> None:
        """The consumer at connection ``index`` sent a new request (it replaces the previous one)."""
        self.children[index] = request

    def set_external_limits(self, limits: dict[str, Any]) -> None:
        """ExternalLimits from outside (e.g. OCPP); they replace the previous ones."""
        self.external = copy.deepcopy(limits)

    def request(self, now: datetime) -> dict[str, Any]:
        """This node's EnergyFlowRequest, with its children's requests in connection order."""
        ext = self.external or {}
        imports = ext.get("schedule_import") or []
        exports = ext.get("schedule_export") or []
        schedule_import = limit_schedule(imports, self.cfg) if imports else local_schedule(self.cfg, now)
        schedule_export = limit_schedule(exports, self.cfg) if exports else local_schedule(self.cfg, now)
        if self.prices is not None:
            schedule_import = merge_prices(schedule_import, self.prices.get("schedule_import") or [], now)
            schedule_export = merge_prices(schedule_export, self.prices.get("schedule_export") or [], now)
        request: dict[str, Any] = {
            "uuid": self.cfg.uuid,
            "node_type": "Generic",
            "children": [self.children[i] for i in sorted(self.children)],
            "schedule_import": schedule_import,
            "schedule_export": schedule_export,
            "schedule_setpoints": copy.deepcopy(ext.get("schedule_setpoints") or []),
        }
        if self.energy_usage_root is not None:
            request["energy_usage_root"] = self.energy_usage_root
        return request

    def route(self, uuid: str) -> list[int]:
        """The consumer connections that limits for node ``uuid`` must go to.

        Limits for this node itself go nowhere. Limits for a node below go to the one child whose
        subtree holds it; when no known subtree holds it (a child that has not sent a request yet)
        they go to every consumer, as EVerest always does.
        """
        if uuid == self.cfg.uuid:
            return []
        holders = [i for i, child in sorted(self.children.items()) if uuid in subtree_uuids(child)]
        return holders or list(range(self.consumers))
