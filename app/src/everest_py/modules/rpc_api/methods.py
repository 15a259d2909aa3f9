# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The methods of the JSON-RPC API: queries answered from the model, settings turned into EVSE and sink calls.

Results carry a /json_rpc_api#/ResponseErrorEnum in ``error``. The calls go through a
:class:`Control` (the bus adapter implements it) so everything here can run without a bus.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from everest_py.modules.api.session import Clock, rfc3339
from everest_py.modules.rpc_api.jsonrpc import HELLO, Auth, Client, Method, Param
from everest_py.modules.rpc_api.model import ChargerModel, EvseModel

API_VERSION = "1.0.0"
SOURCE = "RpcApi_module"  # the source named in external limits set through RpcApi
UNLIMITED_A = 999.9  # current limit applied when charging is allowed again and no limit was set
APPLY_TIMEOUT_S = 5.0  # how long a new current limit may take to show up in the enforced limits

NO_ERROR = "NoError"
INVALID_PARAMETER = "ErrorInvalidParameter"
OUT_OF_RANGE = "ErrorOutOfRange"
NOT_APPLIED = "ErrorValuesNotApplied"
INVALID_EVSE = "ErrorInvalidEVSEIndex"
INVALID_CONNECTOR = "ErrorInvalidConnectorIndex"
NO_DATA = "ErrorNoDataAvailable"
NOT_SUPPORTED = "ErrorOperationNotSupported"
UNKNOWN_ERROR = "ErrorUnknownError"

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class ControlError(Exception):
    """A call to the EVSE manager or the energy sink failed."""


class Control(Protocol):
    """The calls RpcApi makes; implemented by the bus adapter."""

    async def enable_disable(self, evse: EvseModel, connector_id: int, source: dict[str, Any]) -> bool: ...

    async def pause_charging(self, evse: EvseModel) -> bool: ...

    async def resume_charging(self, evse: EvseModel) -> bool: ...

    async def set_external_limits(self, evse: EvseModel, limits: dict[str, Any]) -> bool:
        """False if the EVSE has no energy sink."""
        ...


# -- external limits -----------------------------------------------------------------------------------


def _entry(stamp: str, leaves: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp": stamp, "limits_to_root": {}, "limits_to_leaves": leaves}


def _with_source(value: float | int) -> dict[str, Any]:
    return {"value": value, "source": SOURCE}


def limits_for(
    now: datetime, value: float | None = None, *, power: bool = False, phases: int | None = None
) -> dict[str, Any]:
    """/energy#/ExternalLimits for a current (A) or power (W) limit and/or a fixed phase count.

    A positive value limits import (export to 0), a negative one export by its magnitude (import to 0).
    """
    stamp = rfc3339(now)
    leaves: dict[str, Any] = {}
    if phases is not None:
        leaves["ac_max_phase_count"] = _with_source(phases)
        leaves["ac_min_phase_count"] = _with_source(phases)
    key = "total_power_W" if power else "ac_max_current_A"
    if value is None:
        zero_key = "total_power_W"
    else:
        leaves[key] = _with_source(abs(value))
        zero_key = key if phases is not None else "total_power_W"
    target = _entry(stamp, leaves)
    zero = _entry(stamp, {zero_key: _with_source(0.0)})
    if value is None or value > 0:
        return {"schedule_import": [target], "schedule_export": [zero], "schedule_setpoints": []}
    return {"schedule_import": [zero], "schedule_export": [target], "schedule_setpoints": []}


@dataclass
class ConfiguredLimit:
    """The last current or power limit a client set for one EVSE."""

    value: float | None = None
    is_current: bool = True


def _evse_param() -> Param:
    return Param("evse_index", "integer")


class Methods:
    """Handlers of every method; :meth:`table` lists them for the dispatcher."""

    def __init__(
        self,
        model: ChargerModel,
        control: Control,
        now: Clock,
        *,
        auth: Auth | None = None,
        everest_version: str = "",
        apply_timeout_s: float = APPLY_TIMEOUT_S,
        log: Logger | None = None,
    ) -> None:
        self.log: Logger = log or logging.getLogger("everest_py.module.rpc_api")
        self.model = model
        self.control = control
        self.now = now
        self.auth = auth or Auth()
        self.everest_version = everest_version
        self.apply_timeout_s = apply_timeout_s
        self.limits: dict[int, ConfiguredLimit] = {}

    def table(self) -> list[Method]:
        e = _evse_param()
        return [
            Method(HELLO, (Param("token", "string", required=False),), self.hello, needs_auth=False),
            Method("ChargePoint.GetEVSEInfos", (), self.get_evse_infos),
            Method("ChargePoint.GetActiveErrors", (), self.get_active_errors),
            Method("EVSE.GetInfo", (e,), self.get_info),
            Method("EVSE.GetStatus", (e,), self.get_status),
            Method("EVSE.GetHardwareCapabilities", (e,), self.get_hardware_capabilities),
            Method("EVSE.GetMeterData", (e,), self.get_meter_data),
            Method("EVSE.SetChargingAllowed", (e, Param("charging_allowed", "boolean")), self.set_charging_allowed),
            Method(
                "EVSE.SetACCharging",
                (
                    e,
                    Param("charging_allowed", "boolean"),
                    Param("max_current", "number"),
                    Param("phase_count", "integer", required=False),
                ),
                self.set_ac_charging,
            ),
            Method("EVSE.SetACChargingCurrent", (e, Param("max_current", "number")), self.set_ac_charging_current),
            Method(
                "EVSE.SetACChargingPhaseCount", (e, Param("phase_count", "integer")), self.set_ac_charging_phase_count
            ),
            Method(
                "EVSE.SetDCCharging",
                (e, Param("charging_allowed", "boolean"), Param("max_power", "number")),
                self.set_dc_charging,
            ),
            Method("EVSE.SetDCChargingPower", (e, Param("max_power", "number")), self.set_dc_charging_power),
            Method(
                "EVSE.EnableConnector",
                (e, Param("connector_index", "integer"), Param("enable", "boolean"), Param("priority", "integer")),
                self.enable_connector,
            ),
        ]

    # -- API and ChargePoint ----------------------------------------------------------------------------
    async def hello(self, client: Client, token: str | None = None) -> dict[str, Any]:
        client.hello_done = True
        if token is not None:
            client.authenticated = self.auth.check(token)
        return {
            "authentication_required": self.auth.required,
            "authenticated": client.authenticated,
            "api_version": API_VERSION,
            "everest_version": self.everest_version,
            "charger_info": dict(self.model.charger_info),
        }

    async def get_evse_infos(self, client: Client) -> dict[str, Any]:
        infos = [info for e in self.model.evses if (info := e.info()) is not None]
        return {"infos": infos, "error": NO_ERROR if infos else NO_DATA}

    async def get_active_errors(self, client: Client) -> dict[str, Any]:
        return {"active_errors": [dict(e) for e in self.model.errors], "error": NO_ERROR}

    # -- EVSE queries ---------------------------------------------------------------------------------------
    async def get_info(self, client: Client, evse_index: int) -> dict[str, Any]:
        evse = self.model.evse(evse_index)
        info = evse.info() if evse is not None else None
        if info is None:
            empty = {"index": evse_index, "id": "", "available_connectors": [], "supported_energy_transfer_modes": []}
            return {"info": empty, "error": INVALID_EVSE if evse is None else NO_DATA}
        return {"info": info, "error": NO_ERROR}

    async def get_status(self, client: Client, evse_index: int) -> dict[str, Any]:
        evse = self.model.evse(evse_index)
        if evse is None:
            empty = {
                "charged_energy_wh": 0.0,
                "discharged_energy_wh": 0.0,
                "charging_duration_s": 0,
                "charging_allowed": False,
                "available": False,
                "active_connector_index": 0,
                "error_present": False,
                "charge_protocol": "Unknown",
                "state": "Unknown",
            }
            return {"status": empty, "error": INVALID_EVSE}
        return {"status": evse.status(), "error": NO_ERROR}

    async def get_hardware_capabilities(self, client: Client, evse_index: int) -> dict[str, Any]:
        evse = self.model.evse(evse_index)
        if evse is None or evse.hw_caps is None:
            empty = {
                "max_current_A_export": 0.0,
                "max_current_A_import": 0.0,
                "max_phase_count_export": 0,
                "max_phase_count_import": 0,
                "min_current_A_export": 0.0,
                "min_current_A_import": 0.0,
                "min_phase_count_export": 0,
                "min_phase_count_import": 0,
                "phase_switch_during_charging": False,
            }
            return {"hardware_capabilities": empty, "error": INVALID_EVSE if evse is None else NO_DATA}
        return {"hardware_capabilities": dict(evse.hw_caps), "error": NO_ERROR}

    async def get_meter_data(self, client: Client, evse_index: int) -> dict[str, Any]:
        evse = self.model.evse(evse_index)
        if evse is None or evse.meter is None:
            empty = {"energy_Wh_import": {"total": 0.0}, "timestamp": ""}
            return {"meter_data": empty, "error": INVALID_EVSE if evse is None else NO_DATA}
        return {"meter_data": dict(evse.meter), "error": NO_ERROR}

    # -- EVSE settings ----------------------------------------------------------------------------------------
    async def _guard(self, evse_index: int, action: Callable[[EvseModel], Awaitable[str]]) -> dict[str, Any]:
        evse = self.model.evse(evse_index)
        if evse is None:
            return {"error": INVALID_EVSE}
        try:
            return {"error": await action(evse)}
        except ControlError as err:
            self.log.warning("EVSE %d: %s", evse_index, err)
            return {"error": UNKNOWN_ERROR}

    def _limit(self, evse: EvseModel) -> ConfiguredLimit:
        return self.limits.setdefault(evse.index, ConfiguredLimit())

    async def _apply(self, evse: EvseModel, limits: dict[str, Any]) -> str:
        return NO_ERROR if await self.control.set_external_limits(evse, limits) else INVALID_EVSE

    async def _apply_with_active_phases(self, evse: EvseModel, value: float, power: bool) -> str:
        phases = evse.active_phase_count if evse.is_ac else None
        return await self._apply(evse, limits_for(self.now(), value, power=power, phases=phases))

    async def set_charging_allowed(self, client: Client, evse_index: int, charging_allowed: bool) -> dict[str, Any]:
        return await self._guard(evse_index, lambda evse: self._charging_allowed(evse, charging_allowed))

    async def _charging_allowed(self, evse: EvseModel, allowed: bool) -> str:
        if evse.charging_allowed == allowed:
            return NO_ERROR
        limit = self._limit(evse)
        done = True
        if allowed:
            value, power = (limit.value, not limit.is_current) if limit.value is not None else (UNLIMITED_A, False)
            result = await self._apply_with_active_phases(evse, value, power)
            if result != NO_ERROR:
                return result
            if evse.state in ("ChargingPausedEV", "ChargingPausedEVSE"):
                done = await self.control.resume_charging(evse)
        elif evse.state == "Charging":
            done = await self.control.pause_charging(evse)
        else:
            result = await self._apply(evse, limits_for(self.now(), 0.0, power=not limit.is_current))
            if result != NO_ERROR:
                return result
        evse.set_charging_allowed(allowed)
        return NO_ERROR if done else NOT_APPLIED

    async def set_ac_charging_current(self, client: Client, evse_index: int, max_current: float) -> dict[str, Any]:
        return await self._guard(evse_index, lambda evse: self._ac_current(evse, max_current))

    async def _ac_current(self, evse: EvseModel, max_current: float) -> str:
        self.limits[evse.index] = ConfiguredLimit(max_current, is_current=True)
        if not evse.charging_allowed:
            return NO_ERROR  # kept for when charging is allowed again; the zero limit stays
        result = await self._apply_with_active_phases(evse, max_current, power=False)
        if result != NO_ERROR:
            return result
        applied = await evse.wait_current_applied(max_current, self.apply_timeout_s)
        return NO_ERROR if applied else NOT_APPLIED

    async def set_ac_charging_phase_count(self, client: Client, evse_index: int, phase_count: int) -> dict[str, Any]:
        return await self._guard(evse_index, lambda evse: self._phase_count(evse, phase_count))

    async def _phase_count(self, evse: EvseModel, phase_count: int) -> str:
        if evse.active_phase_count == phase_count:
            return NO_ERROR
        caps = evse.hw_caps
        if caps is not None:
            if not caps["phase_switch_during_charging"]:
                return NOT_SUPPORTED
            if not caps["min_phase_count_import"] <= phase_count <= caps["max_phase_count_import"]:
                return OUT_OF_RANGE
        if phase_count not in (1, 3):
            return INVALID_PARAMETER
        limit = self._limit(evse)
        if limit.value is None:
            return await self._apply(evse, limits_for(self.now(), phases=phase_count))
        return await self._apply(
            evse, limits_for(self.now(), limit.value, power=not limit.is_current, phases=phase_count)
        )

    async def set_dc_charging_power(self, client: Client, evse_index: int, max_power: float) -> dict[str, Any]:
        return await self._guard(evse_index, lambda evse: self._dc_power(evse, max_power))

    async def _dc_power(self, evse: EvseModel, max_power: float) -> str:
        self.limits[evse.index] = ConfiguredLimit(max_power, is_current=False)
        return await self._apply(evse, limits_for(self.now(), max_power, power=True))

    async def set_ac_charging(
        self,
        client: Client,
        evse_index: int,
        charging_allowed: bool,
        max_current: float,
        phase_count: int | None = None,
    ) -> dict[str, Any]:
        """everest-py: current, phase count and charging allowed in one call (the first failure is reported)."""

        async def run(evse: EvseModel) -> str:
            result = await self._ac_current(evse, max_current)
            if result == NO_ERROR and phase_count is not None:
                result = await self._phase_count(evse, phase_count)
            if result == NO_ERROR:
                result = await self._charging_allowed(evse, charging_allowed)
            return result

        return await self._guard(evse_index, run)

    async def set_dc_charging(
        self, client: Client, evse_index: int, charging_allowed: bool, max_power: float
    ) -> dict[str, Any]:
        """everest-py: power limit and charging allowed in one call."""

        async def run(evse: EvseModel) -> str:
            result = await self._dc_power(evse, max_power)
            return await self._charging_allowed(evse, charging_allowed) if result == NO_ERROR else result

        return await self._guard(evse_index, run)

    async def enable_connector(
        self, client: Client, evse_index: int, connector_index: int, enable: bool, priority: int
    ) -> dict[str, Any]:
        async def run(evse: EvseModel) -> str:
            if connector_index not in (0, evse.connector["index"]):
                return INVALID_CONNECTOR
            if not 0 <= priority <= 10000:
                return OUT_OF_RANGE
            state = "Enable" if enable else "Disable"
            source = {"enable_source": "LocalAPI", "enable_state": state, "enable_priority": priority}
            enabled = await self.control.enable_disable(evse, connector_index, source)
            return NO_ERROR if enabled == enable else NOT_APPLIED

        return await self._guard(evse_index, run)
