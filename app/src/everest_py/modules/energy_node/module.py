# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EnergyNode: children's requests and external limits in, the merged request up, limits down."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from everest_py.errors import CommandError
from everest_py.framework.module import Module, command
from everest_py.modules.energy_node.node import EnergyNode as NodeState
from everest_py.modules.energy_node.node import NodeConfig

FORWARD_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class EnergyNodeConfig:
    fuse_limit_A: float
    phase_count: int
    enhance_external_schedule: bool
    nominal_voltage_V: float


class EnergyNode(Module):
    Config = EnergyNodeConfig

    node: NodeState

    async def init(self) -> None:
        cfg: EnergyNodeConfig = self.config
        node_cfg = NodeConfig(
            uuid=self.info.id,
            fuse_limit_A=cfg.fuse_limit_A,
            phase_count=cfg.phase_count,
            enhance_external_schedule=cfg.enhance_external_schedule,
            nominal_voltage_V=cfg.nominal_voltage_V,
        )
        self.node = NodeState(node_cfg, len(self.r.energy_consumer))
        for index, consumer in enumerate(self.r.energy_consumer):
            consumer.subscribe("energy_flow_request", functools.partial(self._on_child, index))
        if len(self.r.powermeter):
            self.r.powermeter.subscribe("powermeter", self._on_powermeter)
        if len(self.r.price_information):
            self.r.price_information.subscribe("energy_pricing", self._on_prices)

    async def ready(self) -> None:
        self._publish()

    def _on_child(self, index: int, request: dict[str, Any]) -> None:
        self.node.on_child_request(index, request)
        self._publish()

    def _on_powermeter(self, reading: dict[str, Any]) -> None:
        self.node.energy_usage_root = reading
        self._publish()

    def _on_prices(self, prices: dict[str, Any]) -> None:
        self.node.prices = prices
        self._publish()

    def _publish(self) -> None:
        try:
            self.publish("energy_grid", "energy_flow_request", self.node.request(datetime.now(UTC)))
        except ValueError as err:
            self.log.error("energy_flow_request not published: %s", err)

    @command("external_limits")
    def set_external_limits(self, value: dict[str, Any]) -> None:
        self.node.set_external_limits(value)
        self.log.info(
            "external limits set: %d import, %d export, %d setpoint entries",
            len(value.get("schedule_import") or []),
            len(value.get("schedule_export") or []),
            len(value.get("schedule_setpoints") or []),
        )
        self._publish()

    @command("energy_grid")
    async def enforce_limits(self, value: dict[str, Any]) -> None:
        targets = self.node.route(str(value.get("uuid")))
        await asyncio.gather(*(self._forward(i, value) for i in targets))

    async def _forward(self, index: int, value: dict[str, Any]) -> None:
        consumer = self.r.energy_consumer[index]
        try:
            await consumer.call_cmd("enforce_limits", {"value": value}, timeout_s=FORWARD_TIMEOUT_S)
        except CommandError as err:
            self.log.warning("limits for %s not passed to %s: %s", value.get("uuid"), consumer.module_id, err)
