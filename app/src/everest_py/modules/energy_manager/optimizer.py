# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""One optimization: the request tree in, the limits every EVSE must respect out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from everest_py.modules.energy_manager.broker import Broker, BrokerConfig, BrokerContext
from everest_py.modules.energy_manager.market import Market, time_grid
from everest_py.modules.energy_node.schedule import active_index, format_time

log = logging.getLogger(__name__)

# Each round every broker buys at most one slice per slot; this only guards against a runaway.
MAX_ROUNDS = 10_000
SESSION_OVER = ("Unplugged", "Finished")


@dataclass(frozen=True)
class OptimizerConfig:
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    update_interval_s: int = 1
    schedule_interval: timedelta = timedelta(minutes=60)
    schedule_total: timedelta = timedelta(hours=1)

    @property
    def valid_for_s(self) -> int:
        """How long enforced limits hold: ten update intervals, so a few missed runs do not stop charging."""
        return max(1, self.update_interval_s * 10)


class Optimizer:
    """Shares the tree's power among its EVSEs; remembers per EVSE what phase switching needs."""

    def __init__(self, cfg: OptimizerConfig) -> None:
        self.cfg = cfg
        self.contexts: dict[str, BrokerContext] = {}
        self.rounds = 0

    def run(self, request: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
        """EnforcedLimits for every EVSE node of ``request`` at time ``now``.

        Every EVSE gets a broker. In rounds, each broker in tree order looks at what is left on the
        path from the root to its EVSE and buys: first its minimum current in one piece (or nothing,
        if that much is not left), then one slice per round, until nobody buys any more. So the
        current is shared evenly, and an EVSE that cannot get its minimum gets 0 A.
        """
        grid = time_grid(request, now, self.cfg.schedule_interval, self.cfg.schedule_total)
        root = Market(request, grid)
        active = active_index(grid, now)
        brokers = []
        for market in root.evses():
            state = market.request.get("evse_state")
            context = self.contexts.setdefault(market.uuid, BrokerContext(one_phase_optimal_at=now))
            if state in SESSION_OVER:
                context.reset(now, self.cfg.broker.time_hysteresis_s)
            brokers.append(Broker(market, context, self.cfg.broker, len(grid), now))
        slots = range(len(grid))
        self.rounds = 0
        while self.rounds < MAX_ROUNDS:
            self.rounds += 1
            traded = False
            for broker in brokers:
                imports = [broker.market.offer(i, True) for i in slots]
                exports = [broker.market.offer(i, False) for i in slots]
                traded = broker.trade(imports, exports, active) or traded
            if not traded:
                break
        else:
            log.error("energy optimization stopped after %d rounds", MAX_ROUNDS)
        return [self._enforced(broker.market, grid, now) for broker in brokers]

    def _enforced(self, market: Market, grid: list[datetime], now: datetime) -> dict[str, Any]:
        schedule = [
            {"timestamp": format_time(at), "limits_to_root": sold.limits()}
            for at, sold in zip(grid, market.sold, strict=True)
        ]
        current = schedule[0]["limits_to_root"]
        for at, entry in zip(grid, schedule, strict=True):
            if at > now:
                break
            current = entry["limits_to_root"]
        return {
            "uuid": market.uuid,
            "valid_for": self.cfg.valid_for_s,
            "limits_root_side": current,
            "schedule": schedule,
        }
