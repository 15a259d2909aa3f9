# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""What the API tells about a charging session: state from session events, energy and duration, faults.

Plain logic with an injected clock. :class:`SessionEnergy` (energy and duration accounting) and
:func:`state_of_event` are shared with RpcApi, whose EVSE status reports the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]

INOPERATIVE = "evse_manager/Inoperative"

# Session event -> session state. Events not listed (Authorized, Deauthorized, SessionResumed,
# SwitchingPhases …) leave the state as it was.
_STATE_OF_EVENT = {
    "Enabled": "Unplugged",
    "Disabled": "Disabled",
    "AuthRequired": "AuthRequired",
    "SessionStarted": "Preparing",
    "TransactionStarted": "Preparing",
    "PrepareCharging": "Preparing",
    "ChargingStarted": "Charging",
    "ChargingPausedEV": "ChargingPausedEV",
    "ChargingPausedEVSE": "ChargingPausedEVSE",
    "ChargingFinished": "Finished",
    "StoppingCharging": "FinishedEV",
    "PluginTimeout": "AuthTimeout",
    "ReservationStart": "Reserved",
    "ReservationEnd": "Unplugged",
    "SessionFinished": "Unplugged",
}

# States in which meter values extend the session (energy and duration).
METERED_STATES = frozenset({"AuthRequired", "Charging", "ChargingPausedEV", "ChargingPausedEVSE"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(when: datetime) -> str:
    """UTC with milliseconds, as EVerest formats times (``2024-05-01T10:00:00.000Z``)."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def state_of_event(event: Mapping[str, Any]) -> str | None:
    """The session state a /evse_manager#/SessionEvent leads to; None if the event does not change it."""
    kind = event.get("event")
    if kind == "TransactionFinished":
        finished = event.get("transaction_finished") or {}
        return "FinishedEVSE" if finished.get("reason") == "Local" else "Finished"
    return _STATE_OF_EVENT.get(str(kind))


def _export_total(meter: Mapping[str, Any]) -> float | None:
    export = meter.get("energy_Wh_export")
    return float(export["total"]) if isinstance(export, Mapping) and "total" in export else None


class SessionEnergy:
    """Energy and duration of the current (or last) transaction, from session events and meter values.

    The transaction start sets the start readings and time; meter values move the end readings and
    time while the session is in a metered state; the transaction end sets the final readings.
    """

    def __init__(self, now: Clock) -> None:
        self._now = now
        self.start_time = self.end_time = now()
        self.start_import_wh = self.end_import_wh = 0.0
        self.start_export_wh = self.end_export_wh = 0.0
        self.start_export_known = self.end_export_known = False
        self.latest_total_w = 0.0

    def transaction_started(self, meter: Mapping[str, Any]) -> None:
        self.start_import_wh = self.end_import_wh = float(meter["energy_Wh_import"]["total"])
        self.start_time = self.end_time = self._now()
        export = _export_total(meter)
        self.start_export_known = export is not None
        if export is not None:
            self.start_export_wh = self.end_export_wh = export

    def transaction_finished(self, meter: Mapping[str, Any]) -> None:
        self.end_import_wh = float(meter["energy_Wh_import"]["total"])
        self.end_time = self._now()
        export = _export_total(meter)
        self.end_export_known = export is not None
        if export is not None:
            self.end_export_wh = export

    def meter_value(self, meter: Mapping[str, Any], metered: bool) -> None:
        """A power meter value; ``metered``: the session is in a state that counts (METERED_STATES)."""
        if metered:
            self.end_time = self._now()
            self.end_import_wh = float(meter["energy_Wh_import"]["total"])
            export = _export_total(meter)
            if export is not None:
                self.end_export_wh = export
                self.end_export_known = True
        power = meter.get("power_W")
        if isinstance(power, Mapping) and "total" in power:
            self.latest_total_w = float(power["total"])

    @property
    def charged_wh(self) -> float:
        return self.end_import_wh - self.start_import_wh

    @property
    def discharged_wh(self) -> float:
        if self.start_export_known and self.end_export_known:
            return self.end_export_wh - self.start_export_wh
        return 0.0

    @property
    def duration_s(self) -> int:
        return int((self.end_time - self.start_time).total_seconds())


def _error_entry(error: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": str(error.get("type", "")),
        "sub_type": str(error.get("sub_type") or ""),
        "description": str(error.get("description") or ""),
        "message": str(error.get("message") or ""),
        "severity": str(error.get("severity") or "Low"),
    }


class SessionInfo:
    """The content of ``everest_api/<evse>/var/session_info`` for one EVSE."""

    def __init__(self, now: Clock) -> None:
        self._now = now
        self.state = "Unknown"
        self.energy = SessionEnergy(now)
        self.enable_source = {"source": "Unspecified", "state": "Enabled", "priority": 0}
        self.random_delay: dict[str, Any] | None = None
        # errors of the EVSE manager by (type, sub_type); Inoperative ones block charging
        self._errors: dict[tuple[str, str], dict[str, Any]] = {}

    def session_event(self, event: Mapping[str, Any]) -> str | None:
        """Apply a session event; returns the session logging path to publish, if the event has one."""
        state = state_of_event(event)
        if state is not None:
            self.state = state
        source = event.get("source")
        if isinstance(source, Mapping):
            self.enable_source = {
                "source": source.get("enable_source", "Unspecified"),
                "state": source.get("enable_state", "Unassigned"),
                "priority": source.get("enable_priority", 0),
            }
        kind = event.get("event")
        if kind == "TransactionStarted" and isinstance(event.get("transaction_started"), Mapping):
            self.energy.transaction_started(event["transaction_started"]["meter_value"])
        elif kind == "TransactionFinished" and isinstance(event.get("transaction_finished"), Mapping):
            self.energy.transaction_finished(event["transaction_finished"]["meter_value"])
        if kind == "SessionStarted":
            started = event.get("session_started")
            if isinstance(started, Mapping) and isinstance(started.get("logging_path"), str):
                return str(started["logging_path"])
        return None

    def meter_value(self, meter: Mapping[str, Any]) -> None:
        self.energy.meter_value(meter, self.state in METERED_STATES)

    def countdown(self, value: Mapping[str, Any]) -> None:
        """A /uk_random_delay#/CountDown; a countdown of 0 means no delay is running."""
        self.random_delay = dict(value) if int(value.get("countdown_s", 0)) > 0 else None

    def error_raised(self, error: Mapping[str, Any]) -> None:
        entry = _error_entry(error)
        self._errors[entry["type"], entry["sub_type"]] = entry

    def error_cleared(self, error: Mapping[str, Any]) -> None:
        entry = _error_entry(error)
        self._errors.pop((entry["type"], entry["sub_type"]), None)

    @property
    def permanent_fault(self) -> bool:
        return any(t == INOPERATIVE for t, _ in self._errors)

    def snapshot(self) -> dict[str, Any]:
        """The JSON object published on ``var/session_info``."""
        energy = self.energy
        out: dict[str, Any] = {
            "state": self.state,
            "permanent_fault": self.permanent_fault,
            "active_permanent_faults": [e for (t, _), e in self._errors.items() if t == INOPERATIVE],
            "active_errors": [e for (t, _), e in self._errors.items() if t != INOPERATIVE],
            "charged_energy_wh": int(energy.end_import_wh) - int(energy.start_import_wh),
            "discharged_energy_wh": (
                int(energy.end_export_wh) - int(energy.start_export_wh)
                if energy.start_export_known and energy.end_export_known
                else 0
            ),
            "latest_total_w": energy.latest_total_w,
            "charging_duration_s": energy.duration_s,
            "datetime": rfc3339(self._now()),
            "active_enable_disable_source": dict(self.enable_source),
        }
        delay = self.random_delay
        if delay is not None:
            out["uk_random_delay"] = {
                "remaining_s": delay["countdown_s"],
                "current_limit_after_delay_A": delay.get("current_limit_after_delay_A", 0.0),
                "current_limit_during_delay_A": delay.get("current_limit_during_delay_A", 0.0),
                "start_time": delay.get("start_time", ""),
            }
        return out
