# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A broker buys energy for one EVSE: as much as it can, slice by slice (fast charging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from everest_py.modules.energy_manager.limits import EPS, Num, SlotLimits, is_zero
from everest_py.modules.energy_manager.market import Market, Sold


class SwitchMode(Enum):
    """switch_3ph1ph_while_charging_mode."""

    NEVER = "Never"
    ONEWAY = "Oneway"  # 3 -> 1 phase when the power is too low, never back within a session
    BOTH = "Both"  # 3 -> 1 and back to 3 when there is power again (with hysteresis)


class Stickiness(Enum):
    """switch_3ph1ph_switch_limit_stickyness: the phases once the switch limit is reached."""

    SINGLE_PHASE = "SinglePhase"
    THREE_PHASE = "ThreePhase"
    DONT_CHANGE = "DontChange"


@dataclass(frozen=True)
class BrokerConfig:
    nominal_ac_voltage: float = 230.0
    slice_ampere: float = 0.5
    slice_watt: float = 500.0
    switch_mode: SwitchMode = SwitchMode.NEVER
    max_switches_per_session: int = 0
    stickiness: Stickiness = Stickiness.DONT_CHANGE
    power_hysteresis_W: float = 200.0
    time_hysteresis_s: float = 600.0


@dataclass
class BrokerContext:
    """What a broker remembers of its EVSE between optimizations (reset when the session ends)."""

    switches: int = 0
    last_active_phases: int = 0
    one_phase_optimal_at: datetime = field(default_factory=lambda: datetime.min)

    def reset(self, now: datetime, time_hysteresis_s: float) -> None:
        self.switches = 0
        self.last_active_phases = 0
        # as if one phase had last been best long ago: a new session may start on three phases
        self.one_phase_optimal_at = now - timedelta(seconds=time_hysteresis_s)


IMPORT, EXPORT = "import", "export"
FALLBACK_PHASES = Num(3, "BrokerFastCharging_Fallback")


class Broker:
    """Buys for the EVSE at ``market``: first its minimum current, then one slice per round."""

    def __init__(self, market: Market, context: BrokerContext, cfg: BrokerConfig, slots: int, now: datetime) -> None:
        self.market = market
        self.context = context
        self.cfg = cfg
        self.now = now
        self.first_trade = [True] * slots
        self.direction: list[str | None] = [None] * slots
        self.phases: list[Num | None] = [None] * slots

    def trade(self, imports: list[SlotLimits], exports: list[SlotLimits], active_slot: int) -> bool:
        """Buy what the offers allow in every slot; True if anything was bought."""
        traded = False
        for i, (imp, exp) in enumerate(zip(imports, exports, strict=True)):
            deal = Sold(
                current=Num(0.0) if imp.max_current is not None else None,
                power=Num(0.0) if imp.max_power is not None else None,
            )
            if self._trade_slot(i, imp, exp, deal, i == active_slot):
                traded = True
            self.market.trade(i, deal)
        return traded

    def _trade_slot(self, i: int, imp: SlotLimits, exp: SlotLimits, deal: Sold, active: bool) -> bool:
        if self.direction[i] is None:
            if not (is_zero(imp.max_power) or is_zero(imp.max_current)):
                self.direction[i] = IMPORT
            elif not (is_zero(exp.max_power) or is_zero(exp.max_current)):
                self.direction[i] = EXPORT
        if self.phases[i] is None:
            self.phases[i] = Num(imp.active_phases or 3, "BrokerFastCharging_NumPhasesActive")
        if self.direction[i] == IMPORT:
            return self._import(i, imp, deal, active)
        if self.direction[i] == EXPORT:
            return self._export(i, exp, deal)
        return False

    def _import(self, i: int, offer: SlotLimits, deal: Sold, active: bool) -> bool:
        if offer.max_current is None:
            return offer.max_power is not None and self._buy_watt(offer, self.cfg.slice_watt, True, True, deal)
        active_phases = offer.active_phases or 3
        if self.first_trade[i]:
            phases, limit_reached = self._choose_phases(offer, active)
        else:
            phases, limit_reached = Num(active_phases, "BrokerFastCharging_Default"), False
        if active_phases != self.context.last_active_phases:
            self.context.switches += 1
        self.context.last_active_phases = active_phases
        min_current = offer.min_current
        if self.first_trade[i] and min_current is not None and min_current.value > 0:
            # The minimum current at once or nothing: below it the EV cannot charge (IEC 61851-1: 6 A).
            self.phases[i] = phases
            if self._buy_ampere(i, offer, min_current.value, False, True, phases, deal):
                return True
            if self.cfg.switch_mode is not SwitchMode.NEVER and not limit_reached:
                # maybe only the power is short: one phase needs a third of it
                one = Num(1, "BrokerFastCharging_Buy3phFailed")
                self.phases[i] = one
                return self._buy_ampere(i, offer, min_current.value, False, True, one, deal)
            return False
        current_phases = self.phases[i]
        assert current_phases is not None
        return self._buy_ampere(i, offer, self.cfg.slice_ampere, True, True, current_phases, deal)

    def _choose_phases(self, offer: SlotLimits, active: bool) -> tuple[Num, bool]:
        """Phases to charge with in a first trade: 1 or 3 by the power available (with hysteresis).

        Returns the choice and whether the session's switch limit is reached.
        """
        cfg, ctx = self.cfg, self.context
        max_phases = offer.max_phases or FALLBACK_PHASES
        min_phases = offer.min_phases or FALLBACK_PHASES
        active_phases = offer.active_phases or 3
        power, min_current = offer.max_power, offer.min_current
        min_power_3ph = min_current.value * max_phases.value * cfg.nominal_ac_voltage if min_current else 0.0
        if cfg.switch_mode is SwitchMode.NEVER or power is None or min_power_3ph <= 0:
            return max_phases, False
        if power.value < min_power_3ph:
            phases = Num(min_phases.value, power.source)  # three phases cannot run at all
        elif cfg.switch_mode is SwitchMode.BOTH and power.value > min_power_3ph + cfg.power_hysteresis_W:
            phases = max_phases
        else:
            phases = Num(active_phases, "BrokerFastCharging_KeepNrOfPhases")
        limit_reached = 0 < cfg.max_switches_per_session < ctx.switches
        if limit_reached:
            if cfg.stickiness is Stickiness.SINGLE_PHASE:
                phases = min_phases
            elif cfg.stickiness is Stickiness.THREE_PHASE:
                phases = max_phases
            else:
                phases = Num(active_phases, "BrokerFastCharging_KeepNrOfPhases")
        if active and phases.value == min_phases.value:
            ctx.one_phase_optimal_at = self.now
        if active and cfg.time_hysteresis_s > 0:
            # back to three phases only after the condition held for the whole time hysteresis
            stable_s = (self.now - ctx.one_phase_optimal_at).total_seconds()
            if stable_s < cfg.time_hysteresis_s and phases.value == max_phases.value:
                phases = min_phases
        return phases, limit_reached

    def _export(self, i: int, offer: SlotLimits, deal: Sold) -> bool:
        phases = Num(3, "BrokerFastCharging_FixedValue")
        if offer.max_current is not None:
            min_current = offer.min_current
            if self.first_trade[i] and min_current is not None and min_current.value > 0:
                return self._buy_ampere(i, offer, min_current.value, False, False, phases, deal)
            return self._buy_ampere(i, offer, self.cfg.slice_ampere, True, False, phases, deal)
        return offer.max_power is not None and self._buy_watt(offer, self.cfg.slice_watt, True, False, deal)

    def _buy_ampere(
        self, i: int, offer: SlotLimits, ampere: float, allow_less: bool, importing: bool, phases: Num, deal: Sold
    ) -> bool:
        """Buy ``ampere`` per phase (or what is left if ``allow_less``), within the power limit too."""
        current, power = offer.max_current, offer.max_power
        assert current is not None
        watt_per_amp = phases.value * self.cfg.nominal_ac_voltage
        if current.value + EPS >= ampere and (power is None or power.value + EPS >= ampere * watt_per_amp):
            amount, source = ampere, current.source
        elif allow_less and current.value > EPS:
            if power is None or power.value + EPS >= current.value * watt_per_amp:
                amount, source = current.value, current.source
            elif power.value > EPS and watt_per_amp > 0:
                amount, source = power.value / watt_per_amp, power.source
            else:
                return False
        else:
            return False
        sign = 1.0 if importing else -1.0
        deal.current = Num(sign * amount, source)
        deal.phases = Num(phases.value, phases.source)
        if power is not None:
            deal.power = Num(sign * amount * watt_per_amp, source)
        self.first_trade[i] = False
        return True

    def _buy_watt(self, offer: SlotLimits, watt: float, allow_less: bool, importing: bool, deal: Sold) -> bool:
        power = offer.max_power
        assert power is not None
        if power.value + EPS >= watt:
            amount = watt
        elif allow_less and power.value > EPS:
            amount = power.value
        else:
            return False
        deal.power = Num((1.0 if importing else -1.0) * amount, power.source)
        return True
