# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EnergyManager: the trunk's request tree in, enforce_limits for every EVSE out, once per interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from everest_py.errors import CommandError
from everest_py.framework.module import Module
from everest_py.modules.energy_manager.broker import BrokerConfig, Stickiness, SwitchMode
from everest_py.modules.energy_manager.optimizer import Optimizer, OptimizerConfig
from everest_py.modules.energy_manager.tree import fingerprint, is_priority_request

ENFORCE_TIMEOUT_S = 10.0
MIN_WAIT_S = 0.1


@dataclass(frozen=True)
class EnergyManagerConfig:
    nominal_ac_voltage: float
    update_interval: int
    schedule_interval_duration: int
    schedule_total_duration: int
    slice_ampere: float
    slice_watt: float
    debug: bool
    switch_3ph1ph_while_charging_mode: str
    switch_3ph1ph_max_nr_of_switches_per_session: int
    switch_3ph1ph_switch_limit_stickyness: str
    switch_3ph1ph_power_hysteresis_W: int
    switch_3ph1ph_time_hysteresis_s: int


def optimizer_config(cfg: EnergyManagerConfig) -> OptimizerConfig:
    return OptimizerConfig(
        broker=BrokerConfig(
            nominal_ac_voltage=cfg.nominal_ac_voltage,
            slice_ampere=cfg.slice_ampere,
            slice_watt=cfg.slice_watt,
            switch_mode=SwitchMode(cfg.switch_3ph1ph_while_charging_mode),
            max_switches_per_session=cfg.switch_3ph1ph_max_nr_of_switches_per_session,
            stickiness=Stickiness(cfg.switch_3ph1ph_switch_limit_stickyness),
            power_hysteresis_W=cfg.switch_3ph1ph_power_hysteresis_W,
            time_hysteresis_s=cfg.switch_3ph1ph_time_hysteresis_s,
        ),
        update_interval_s=cfg.update_interval,
        schedule_interval=timedelta(minutes=cfg.schedule_interval_duration),
        schedule_total=timedelta(hours=cfg.schedule_total_duration),
    )


class EnergyManager(Module):
    Config = EnergyManagerConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimizer = Optimizer(optimizer_config(self.config))
        self._request: dict[str, Any] | None = None
        self._optimized: str | None = None
        self._wake = asyncio.Event()

    async def init(self) -> None:
        self.r.energy_trunk.subscribe("energy_flow_request", self._on_request)

    async def ready(self) -> None:
        self.spawn(self._optimize_forever(), "optimizer")

    def _on_request(self, request: dict[str, Any]) -> None:
        self._request = request
        # A priority request (e.g. a car just plugged in) or a changed tree is handled at once.
        if is_priority_request(request) or fingerprint(request) != self._optimized:
            self._wake.set()

    async def _optimize_forever(self) -> None:
        cfg: EnergyManagerConfig = self.config
        while True:
            self._wake.clear()
            request = self._request
            if request is not None:
                self._optimized = fingerprint(request)
                try:
                    limits = self.optimizer.run(request, datetime.now(UTC))
                except Exception:  # a malformed tree from another module must not stop the station
                    self.log.exception("energy distribution failed; no limits sent this time")
                    limits = []
                await self._enforce(limits)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(cfg.update_interval, MIN_WAIT_S)):
                    await self._wake.wait()

    async def _enforce(self, limits: list[dict[str, Any]]) -> None:
        for value in limits:
            root = value["limits_root_side"]
            self.log.log(
                logging.INFO if self.config.debug else logging.DEBUG,
                "limits for %s: %s A, %s W, %s phases",
                value["uuid"],
                root.get("ac_max_current_A", {}).get("value", "-"),
                root.get("total_power_W", {}).get("value", "-"),
                root.get("ac_max_phase_count", {}).get("value", "-"),
            )
        await asyncio.gather(*(self._send(value) for value in limits))

    async def _send(self, value: dict[str, Any]) -> None:
        trunk = self.r.energy_trunk[0]
        try:
            await trunk.call_cmd("enforce_limits", {"value": value}, timeout_s=ENFORCE_TIMEOUT_S)
        except CommandError as err:
            self.log.warning("limits for %s not enforced: %s", value["uuid"], err)
