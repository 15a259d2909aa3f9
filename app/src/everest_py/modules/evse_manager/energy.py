# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Energy and limits: what the EVSE asks of the energy tree and what it may draw.

- :meth:`Energy.flow_request` builds the ``energy_flow_request`` (an ``Evse`` leaf) from the board's
  hardware capabilities, the nominal voltage, the phases and the cable's ampacity;
- :meth:`Energy.enforce` takes ``enforce_limits`` (EnforcedLimits): the ampere limit, a power limit
  converted to ampere with the nominal voltage and the active phases, and a phase-count limit; the
  limits expire ``valid_for`` seconds later and fall back to 0 A (no charging);
- :meth:`Energy.current_limit` is what the PWM may signal: the enforced limit capped by the hardware
  maximum and, for sockets, the cable's ampacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from everest_py.modules.evse_manager.clock import Clock, Timer

SOURCE = "EvseManager"
MIN_CHARGING_CURRENT_A = 5.9  # below this no duty cycle exists: no power available
PP_AMPACITY_A = {"None": 0.0, "A_13": 13.0, "A_20": 20.0, "A_32": 32.0}
SOCKET = "IEC62196Type2Socket"


def rfc3339(dt: datetime) -> str:
    """UTC with milliseconds and a Z, as EVerest writes time stamps."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class Energy:
    """The energy state of one EVSE; ``on_change`` runs whenever the usable current may have changed."""

    def __init__(
        self,
        clock: Clock,
        node_uuid: str,
        *,
        nominal_voltage: float = 230.0,
        request_zero_power_in_idle: bool = False,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self.uuid = node_uuid
        self.nominal_voltage = nominal_voltage if nominal_voltage > 0 else 230.0
        self.request_zero_power_in_idle = request_zero_power_in_idle
        self.on_change = on_change or (lambda: None)
        self.hw_caps: dict[str, Any] | None = None
        self.phases_available: int | None = None  # the BSP's ac_nr_of_phases_available
        self.pp_ampacity: float | None = None
        self.enforced: dict[str, Any] | None = None
        # the valid enforced limit as given (A and/or W); none when absent or expired
        self._limit_ampere: float | None = 0.0
        self._limit_watt: float | None = None
        self.phase_limit: int | None = None
        self._expiry = Timer(clock, self._expired)

    # -- inputs -----------------------------------------------------------------------------------
    def set_hw_caps(self, caps: Mapping[str, Any]) -> None:
        self.hw_caps = dict(caps)
        self.on_change()

    def set_phases_available(self, phases: int) -> None:
        self.phases_available = phases
        self.on_change()

    def set_pp_ampacity(self, ampacity: str) -> None:
        if ampacity == "A_63_3ph_70_1ph":
            self.pp_ampacity = 70.0 if self.max_phases == 1 else 63.0
        else:
            self.pp_ampacity = PP_AMPACITY_A.get(ampacity, 0.0)
        self.on_change()

    def enforce(self, limits: Mapping[str, Any]) -> bool:
        """Apply EnforcedLimits; False (nothing applied) if they belong to another node."""
        if limits.get("uuid") != self.uuid:
            return False
        self.enforced = dict(limits)
        valid_for = limits.get("valid_for")
        if not isinstance(valid_for, int) or valid_for <= 0:
            # already expired when they arrive: EVerest keeps the previous limit in that case
            return True
        root = limits.get("limits_root_side") or {}
        phase_limit = _number(root.get("ac_max_phase_count"))
        self.phase_limit = int(phase_limit) if phase_limit is not None and phase_limit >= 1 else None
        self._limit_ampere = _number(root.get("ac_max_current_A"))
        self._limit_watt = _number(root.get("total_power_W"))
        self._expiry.start(float(valid_for))
        self.on_change()
        return True

    def _expired(self) -> None:
        self._limit_ampere, self._limit_watt = 0.0, None
        self.on_change()

    @property
    def limit_A(self) -> float:
        """The enforced limit in ampere per phase, for the phases active now.

        A power limit is converted with the current phase count every time, so a 1→3 phase
        switch cannot triple the power.
        """
        candidates = [self._limit_ampere] if self._limit_ampere is not None else []
        if self._limit_watt is not None:
            candidates.append(self._limit_watt / (self.nominal_voltage * self.active_phases))
        limit = min(candidates) if candidates else 0.0
        return max(0.0, limit)  # negative values mean export, which basic AC cannot do

    # -- derived values ---------------------------------------------------------------------------
    @property
    def caps_known(self) -> bool:
        return self.hw_caps is not None

    def _cap(self, key: str, default: float) -> float:
        value = _number((self.hw_caps or {}).get(key))
        return default if value is None else value

    @property
    def hw_max_current(self) -> float:
        return self._cap("max_current_A_import", 0.0)

    @property
    def hw_min_current(self) -> float:
        return self._cap("min_current_A_import", 6.0)

    @property
    def max_phases(self) -> int:
        return int(self._cap("max_phase_count_import", 3))

    @property
    def min_phases(self) -> int:
        return int(self._cap("min_phase_count_import", 1))

    @property
    def supports_phase_switching(self) -> bool:
        return bool((self.hw_caps or {}).get("supports_changing_phases_during_charging", False))

    @property
    def is_socket(self) -> bool:
        return (self.hw_caps or {}).get("connector_type") == SOCKET

    @property
    def active_phases(self) -> int:
        phases = self.phases_available if self.phases_available is not None else self.max_phases
        return max(1, min(3, phases))

    def cable_limit(self) -> float | None:
        """The socket cable's ampacity (0 until the BSP reported it); None for a fixed cable."""
        if not self.is_socket:
            return None
        return self.pp_ampacity or 0.0

    def current_limit(self) -> float:
        """Ampere the PWM may signal now."""
        limit = min(self.limit_A, self.hw_max_current)
        cable = self.cable_limit()
        if cable is not None:
            limit = min(limit, cable)
        return max(0.0, limit)

    def power_available(self) -> bool:
        return self.current_limit() > MIN_CHARGING_CURRENT_A

    def phase_switch_target(self) -> int | None:
        """1 or 3 when the enforced phase limit asks for another phase count than is active now."""
        if self.phase_limit is None or self.min_phases == self.max_phases:
            return None
        target = 3 if self.phase_limit >= 3 and self.max_phases >= 3 else 1
        if target < self.min_phases:
            return None
        return target if target != self.active_phases else None

    # -- outputs ----------------------------------------------------------------------------------
    def limits(self) -> dict[str, Any]:
        """The evse ``limits`` var (/evse_manager#/Limits)."""
        return {"uuid": self.uuid, "max_current": self.current_limit(), "nr_of_phases_available": self.active_phases}

    def _import_limits(self, idle: bool) -> dict[str, Any]:
        maximum = self.hw_max_current
        cable = self.cable_limit()
        if cable is not None and cable > 0:
            maximum = min(maximum, cable)
        if idle and self.request_zero_power_in_idle:
            maximum = 0.0
        limits: dict[str, Any] = {
            "ac_max_current_A": {"value": maximum, "source": SOURCE},
            "ac_min_current_A": {"value": self.hw_min_current, "source": SOURCE},
            "ac_max_phase_count": {"value": self.max_phases, "source": SOURCE},
            "ac_min_phase_count": {"value": self.min_phases, "source": SOURCE},
            "ac_supports_changing_phases_during_charging": self.supports_phase_switching,
            "ac_number_of_active_phases": self.active_phases,
        }
        return limits

    def flow_request(
        self,
        evse_state: str,
        *,
        idle: bool,
        meter: Mapping[str, Any] | None = None,
        priority: bool = False,
    ) -> dict[str, Any]:
        """The ``energy_flow_request`` var (/energy#/EnergyFlowRequest) of this EVSE leaf."""
        now = self._clock.utc_now()
        stamp = rfc3339(now.replace(minute=0, second=0, microsecond=0))
        request: dict[str, Any] = {
            "uuid": self.uuid,
            "node_type": "Evse",
            "children": [],
            "priority_request": priority,
            "evse_state": evse_state,
            "schedule_import": [
                {"timestamp": stamp, "limits_to_root": self._import_limits(idle), "limits_to_leaves": {}}
            ],
            # basic AC charging cannot export
            "schedule_export": [
                {
                    "timestamp": stamp,
                    "limits_to_root": {"ac_max_current_A": {"value": 0.0, "source": SOURCE}},
                    "limits_to_leaves": {},
                }
            ],
            "schedule_setpoints": [],
        }
        if meter:
            request["energy_usage_root"] = dict(meter)
        return request


class OverCurrentWatch:
    """Soft over current check (AC): a phase current above the signalled current (plus tolerance and
    measurement noise) for longer than the timeout calls ``on_trip``."""

    def __init__(
        self,
        clock: Clock,
        on_trip: Callable[[str], None],
        *,
        tolerance_percent: float = 10.0,
        noise_A: float = 0.5,
        timeout_ms: int = 7000,
    ) -> None:
        self._on_trip = on_trip
        self.tolerance_percent = tolerance_percent
        self.noise_A = noise_A
        self.timeout_s = timeout_ms / 1000.0
        self._timer = Timer(clock, self._expired)
        self._detail = ""

    @property
    def over(self) -> bool:
        return self._timer.running

    def check(self, signalled_A: float | None, currents: Mapping[str, Any] | None) -> None:
        """A new measurement; ``signalled_A`` None means no check (not charging)."""
        if signalled_A is None or not currents:
            self._timer.stop()
            return
        limit = (signalled_A + self.noise_A) * (1.0 + self.tolerance_percent / 100.0)
        drawn = {p: abs(v) for p in ("L1", "L2", "L3") if (v := _number(currents.get(p))) is not None}
        if any(value > limit for value in drawn.values()):
            self._detail = f"drawn {drawn} A, limit {limit:.2f} A"
            self._timer.start_if_idle(self.timeout_s)
        else:
            self._timer.stop()

    def _expired(self) -> None:
        self._on_trip(f"soft over current: {self._detail} for {self.timeout_s:g} s")
