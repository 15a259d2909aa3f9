# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The RpcApi data model: EVerest variables and errors in, json_rpc_api objects and change notifications out.

One :class:`EvseModel` per EVSE manager keeps the EVSE's info, status, hardware capabilities and
meter data; :class:`ChargerModel` holds the EVSEs, the charger information and the active errors.
Every change of an object that clients can be notified of calls ``notify(method, params)`` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from everest_py.modules.api.session import Clock, SessionEnergy, state_of_event

Notify = Callable[[str, dict[str, Any]], None]

STATUS_CHANGED = "EVSE.StatusChanged"
HW_CAPS_CHANGED = "EVSE.HardwareCapabilitiesChanged"
METER_DATA_CHANGED = "EVSE.MeterDataChanged"
ERRORS_CHANGED = "ChargePoint.ActiveErrorsChanged"

ENERGY_TRANSFER_MODES = frozenset(
    {
        "AC_single_phase_core",
        "AC_two_phase",
        "AC_three_phase_core",
        "DC_core",
        "DC_extended",
        "DC_combo_core",
        "DC_unique",
        "DC",
        "AC_BPT",
        "AC_BPT_DER",
        "AC_DER",
        "DC_BPT",
        "DC_ACDP",
        "DC_ACDP_BPT",
        "WPT",
        "MCS",
        "MCS_BPT",
    }
)
AC_MODES = frozenset(
    {"AC_single_phase_core", "AC_two_phase", "AC_three_phase_core", "AC_BPT", "AC_BPT_DER", "AC_DER", "WPT"}
)
CONNECTOR_TYPES = frozenset(
    {
        "cCCS1",
        "cCCS2",
        "cG105",
        "cTesla",
        "cType1",
        "cType2",
        "s309_1P_16A",
        "s309_1P_32A",
        "s309_3P_16A",
        "s309_3P_32A",
        "sBS1361",
        "sCEE_7_7",
        "sType2",
        "sType3",
        "Other1PhMax16A",
        "Other1PhOver16A",
        "Other3Ph",
        "Pan",
        "wInductive",
        "wResonant",
        "Undetermined",
        "Unknown",
    }
)
# Extra session events RpcApi maps to an EVSE state (beyond those of the MQTT API).
_EXTRA_STATES = {"SessionResumed": "Preparing", "SwitchingPhases": "SwitchingPhases"}


def charge_protocol(selected: str) -> str:
    """EvseManager's ``selected_protocol`` text as /json_rpc_api#/ChargeProtocolEnum."""
    if selected == "IEC61851-1":
        return "IEC61851"
    if selected == "DIN70121":
        return "DIN70121"
    if selected.startswith("ISO15118-20"):
        return "ISO15118_20"
    if selected.startswith("ISO15118-2"):
        return "ISO15118"
    return "Unknown"


def _phases(value: Mapping[str, Any], keys: Sequence[str]) -> dict[str, float]:
    return {k: float(value[k]) for k in keys if k in value}


def _almost_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


class EvseModel:
    """Everything RpcApi reports about one EVSE."""

    def __init__(self, index: int, connector_index: int, now: Clock, notify: Notify) -> None:
        self.index = index
        self._now = now
        self._notify = notify
        self.connector: dict[str, Any] = {"index": connector_index, "type": "Unknown"}
        self.evse_id: str | None = None
        self.transfer_modes: list[str] = []
        self.is_ac = True
        self.session_state = "Unknown"  # the MQTT API's view, which decides what meter values count
        self.energy = SessionEnergy(now)
        self.state = "Unknown"
        self.charge_protocol = "Unknown"
        self.charging_allowed = True
        self.available = True
        self.error_present = False
        self.max_current: float | None = None  # last non-zero current limit the energy manager enforced
        self.max_power: float | None = None
        self.active_phase_count: int | None = None
        self.hw_caps: dict[str, Any] | None = None
        self.meter: dict[str, Any] | None = None
        self.display: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._current_waiters: list[tuple[float, asyncio.Future[None]]] = []

    # -- objects -------------------------------------------------------------------------------
    def info(self) -> dict[str, Any] | None:
        """/json_rpc_api#/EVSEInfoObj; None until the EVSE manager has published its EVSE id."""
        if self.evse_id is None:
            return None
        return {
            "index": self.index,
            "id": self.evse_id,
            "available_connectors": [dict(self.connector)],
            "supported_energy_transfer_modes": list(self.transfer_modes),
        }

    def status(self) -> dict[str, Any]:
        """/json_rpc_api#/EVSEStatusObj."""
        out: dict[str, Any] = {
            "charged_energy_wh": self.energy.charged_wh,
            "discharged_energy_wh": self.energy.discharged_wh,
            "charging_duration_s": self.energy.duration_s,
            "charging_allowed": self.charging_allowed,
            "available": self.available,
            "active_connector_index": self.connector["index"],
            "error_present": self.error_present,
            "charge_protocol": self.charge_protocol,
            "state": self.state,
        }
        if self.is_ac:
            phases = self.hw_caps["max_phase_count_import"] if self.hw_caps is not None else None
            if self.max_current is not None or phases is not None:
                out["ac_charge_param"] = {
                    "evse_max_current": self.max_current or 0.0,
                    "evse_max_phase_count": phases or 0,
                    "evse_maximum_charge_power": self.max_power or 0.0,
                    "evse_minimum_charge_power": 0.0,
                    "evse_nominal_frequency": 0.0,
                }
            if self.active_phase_count is not None:
                out["ac_charge_status"] = {"evse_active_phase_count": self.active_phase_count}
        if self.display:
            out["display_parameters"] = dict(self.display)
        return out

    def _changed(self) -> None:
        """Notify what changed since the last notification."""
        current = {STATUS_CHANGED: self.status(), HW_CAPS_CHANGED: self.hw_caps, METER_DATA_CHANGED: self.meter}
        keys = {
            STATUS_CHANGED: "evse_status",
            HW_CAPS_CHANGED: "hardware_capabilities",
            METER_DATA_CHANGED: "meter_data",
        }
        for method, value in current.items():
            if value is not None and value != self._sent.get(method):
                self._sent[method] = value
                self._notify(method, {"evse_index": self.index, keys[method]: value})

    # -- inputs from the EVSE manager --------------------------------------------------------------
    def session_event(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("event"))
        state = state_of_event(event)
        if state is not None:
            self.session_state = state
        state = state or _EXTRA_STATES.get(kind)
        if state is not None:
            self.state = state
            if state == "Charging":
                self.charging_allowed = True
        source = event.get("source")
        if isinstance(source, Mapping):
            if source.get("enable_state") == "Disable":
                self.available = False
            elif source.get("enable_state") == "Enable":
                self.available = True
        if kind == "TransactionStarted" and isinstance(event.get("transaction_started"), Mapping):
            self.energy.transaction_started(event["transaction_started"]["meter_value"])
        elif kind == "TransactionFinished" and isinstance(event.get("transaction_finished"), Mapping):
            self.energy.transaction_finished(event["transaction_finished"]["meter_value"])
        self._changed()

    def powermeter(self, pm: Mapping[str, Any]) -> None:
        """/powermeter#/Powermeter -> meter data (values missing in this reading keep their last value)."""
        meter: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in (self.meter or {}).items()}
        meter["timestamp"] = pm["timestamp"]
        sections = (
            ("energy_Wh_import", ("L1", "L2", "L3", "total")),
            ("energy_Wh_export", ("L1", "L2", "L3", "total")),
            ("power_W", ("L1", "L2", "L3", "total")),
            ("current_A", ("L1", "L2", "L3", "N")),
            ("voltage_V", ("L1", "L2", "L3")),
            ("frequency_Hz", ("L1", "L2", "L3")),
        )
        for key, phases in sections:
            if isinstance(pm.get(key), Mapping):
                values = _phases(pm[key], phases)
                if values:
                    meter[key] = {**meter.get(key, {}), **values}
        for key in ("meter_id", "phase_seq_error"):
            if key in pm:
                meter[key] = pm[key]
        self.meter = meter
        self.energy.meter_value(
            pm, self.session_state in {"AuthRequired", "Charging", "ChargingPausedEV", "ChargingPausedEVSE"}
        )
        self._changed()

    def hw_capabilities(self, caps: Mapping[str, Any]) -> None:
        self.hw_caps = {
            "max_current_A_export": float(caps["max_current_A_export"]),
            "max_current_A_import": float(caps["max_current_A_import"]),
            "max_phase_count_export": int(caps["max_phase_count_export"]),
            "max_phase_count_import": int(caps["max_phase_count_import"]),
            "min_current_A_export": float(caps["min_current_A_export"]),
            "min_current_A_import": float(caps["min_current_A_import"]),
            "min_phase_count_export": int(caps["min_phase_count_export"]),
            "min_phase_count_import": int(caps["min_phase_count_import"]),
            "phase_switch_during_charging": bool(caps["supports_changing_phases_during_charging"]),
        }
        self._changed()

    def set_evse_id(self, evse_id: str) -> None:
        self.evse_id = evse_id

    def set_connector_type(self, connector_type: Any) -> None:
        """The first connector's type from ``get_evse`` (types outside ConnectorTypeEnum count as Unknown)."""
        self.connector["type"] = connector_type if connector_type in CONNECTOR_TYPES else "Unknown"

    def selected_protocol(self, selected: str) -> None:
        self.charge_protocol = charge_protocol(selected)
        self._changed()

    def supported_energy_transfer_modes(self, modes: Sequence[str]) -> None:
        self.transfer_modes = [m for m in modes if m in ENERGY_TRANSFER_MODES]
        self.is_ac = not self.transfer_modes or any(m in AC_MODES for m in self.transfer_modes)
        self._changed()

    def enforced_limits(self, limits: Mapping[str, Any]) -> None:
        root = limits.get("limits_root_side") or {}
        current = (root.get("ac_max_current_A") or {}).get("value")
        if current is not None and float(current) != 0.0:
            self.max_current = float(current)
            for target, fut in self._current_waiters:
                if _almost_equal(target, self.max_current) and not fut.done():
                    fut.set_result(None)
        power = (root.get("total_power_W") or {}).get("value")
        if power is not None:
            self.max_power = float(power)
        phases = (root.get("ac_max_phase_count") or {}).get("value")
        self.active_phase_count = int(phases) if phases is not None else 3
        self._changed()

    def ev_info(self, info: Mapping[str, Any]) -> None:
        display: dict[str, Any] = {}
        if "soc" in info:
            display["present_soc"] = round(float(info["soc"]))
        if "battery_capacity" in info:
            display["battery_energy_capacity"] = float(info["battery_capacity"])
        if "estimated_time_full" in info:
            with contextlib.suppress(ValueError, TypeError):
                full = datetime.fromisoformat(str(info["estimated_time_full"]))
                seconds = int((full - self._now()).total_seconds())
                if seconds > 0:
                    display["remaining_time_to_maximum_soc"] = seconds
        self.display = display
        self._changed()

    def set_error_present(self, present: bool) -> None:
        self.error_present = present
        self._changed()

    def set_charging_allowed(self, allowed: bool) -> None:
        self.charging_allowed = allowed
        self._changed()

    async def wait_current_applied(self, target: float, timeout_s: float) -> bool:
        """True once the enforced current limit equals ``target`` (or already does), False after ``timeout_s``."""
        if self.max_current is not None and _almost_equal(self.max_current, target):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, fut)
        self._current_waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return False
        finally:
            self._current_waiters.remove(entry)
        return True


def _at_least_two(text: Any, placeholder: str) -> str:
    value = str(text or "")
    if not value:
        return placeholder
    return value if len(value) >= 2 else f'"{value}"'


def error_object(error: Mapping[str, Any]) -> dict[str, Any]:
    """A wire error (RaiseError data) as /json_rpc_api#/ErrorObj.

    The origin's mapping gives evse_index and connector_index (0: the charger as a whole).
    """
    origin = error.get("origin") or {}
    mapping = origin.get("mapping") or {}
    severity = str(error.get("severity") or "Low").capitalize()
    return {
        "type": str(error.get("type", "")),
        "sub_type": str(error.get("sub_type") or ""),
        "description": _at_least_two(error.get("description"), "(no description)"),
        "message": _at_least_two(error.get("message"), "(no message)"),
        "severity": severity if severity in ("High", "Medium", "Low") else "Low",
        "origin": {
            "module_id": str(origin.get("module_id", "")),
            "implementation_id": str(origin.get("implementation_id", "")),
            "evse_index": int(mapping.get("evse", 0)),
            "connector_index": int(mapping.get("connector", 0)),
        },
        "timestamp": str(error.get("timestamp", "")),
        "uuid": str(error.get("uuid", "")),
    }


class ChargerModel:
    """The charger: its EVSEs (in configuration order), information and active errors."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self.evses: list[EvseModel] = []
        self.charger_info: dict[str, Any] = {
            "vendor": "unknown",
            "model": "unknown",
            "serial": "unknown",
            "firmware_version": "unknown",
        }
        self.errors: list[dict[str, Any]] = []

    def evse(self, index: int) -> EvseModel | None:
        return next((e for e in self.evses if e.index == index), None)

    def set_charger_information(self, info: Mapping[str, Any]) -> None:
        """/charger_information#/ChargerInformation -> ChargerInfoObj."""
        out = {
            "vendor": str(info.get("vendor", "unknown")),
            "model": str(info.get("model", "unknown")),
            "serial": str(info.get("chargepoint_serial", "unknown")),
            "firmware_version": str(info.get("firmware_version", "unknown")),
        }
        for ours, theirs in (
            ("friendly_name", "friendly_name"),
            ("manufacturer", "manufacturer"),
            ("manufacturer_url", "manufacturer_url"),
            ("model_url", "model_url"),
            ("model_no", "model_number"),
            ("revision", "model_revision"),
            ("board_revision", "board_revision"),
        ):
            if theirs in info:
                out[ours] = str(info[theirs])
        self.charger_info = out

    def error_raised(self, error: Mapping[str, Any]) -> None:
        obj = error_object(error)
        if any(e["uuid"] == obj["uuid"] for e in self.errors):
            return
        self.errors.append(obj)
        self._errors_changed(obj)

    def error_cleared(self, error: Mapping[str, Any]) -> None:
        obj = error_object(error)
        kept = [e for e in self.errors if e["uuid"] != obj["uuid"]]
        if len(kept) == len(self.errors):  # unknown uuid: the same error by origin, type and sub type
            key = (obj["origin"]["module_id"], obj["origin"]["implementation_id"], obj["type"], obj["sub_type"])
            kept = [
                e
                for e in self.errors
                if (e["origin"]["module_id"], e["origin"]["implementation_id"], e["type"], e["sub_type"]) != key
            ]
        if len(kept) != len(self.errors):
            self.errors = kept
            self._errors_changed(obj)

    def _errors_changed(self, changed: Mapping[str, Any]) -> None:
        index = changed["origin"]["evse_index"]
        evse = self.evse(index) if index else None
        if evse is not None:
            evse.set_error_present(any(e["origin"]["evse_index"] == index for e in self.errors))
        self._notify(ERRORS_CHANGED, {"active_errors": [dict(e) for e in self.errors]})
