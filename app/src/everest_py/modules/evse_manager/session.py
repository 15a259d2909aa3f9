# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Session bookkeeping and SessionEvent payloads (/evse_manager#/SessionEvent), exactly as the types define them."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from everest_py.modules.evse_manager.clock import Clock
from everest_py.modules.evse_manager.energy import rfc3339


class Ev(StrEnum):
    """/evse_manager#/SessionEventEnum."""

    AUTHORIZED = "Authorized"
    DEAUTHORIZED = "Deauthorized"
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    SESSION_STARTED = "SessionStarted"
    AUTH_REQUIRED = "AuthRequired"
    TRANSACTION_STARTED = "TransactionStarted"
    PREPARE_CHARGING = "PrepareCharging"
    CHARGING_STARTED = "ChargingStarted"
    CHARGING_PAUSED_EV = "ChargingPausedEV"
    CHARGING_PAUSED_EVSE = "ChargingPausedEVSE"
    STOPPING_CHARGING = "StoppingCharging"
    CHARGING_FINISHED = "ChargingFinished"
    TRANSACTION_FINISHED = "TransactionFinished"
    SESSION_FINISHED = "SessionFinished"
    RESERVATION_START = "ReservationStart"
    RESERVATION_END = "ReservationEnd"
    PLUGIN_TIMEOUT = "PluginTimeout"
    SWITCHING_PHASES = "SwitchingPhases"
    SESSION_RESUMED = "SessionResumed"


# events that carry charging_state_changed_event {meter_value}
CHARGING_STATE_EVENTS = frozenset(
    {Ev.CHARGING_STARTED, Ev.CHARGING_PAUSED_EV, Ev.CHARGING_PAUSED_EVSE, Ev.CHARGING_FINISHED}
)
AUTHORIZATION_EVENTS = frozenset({Ev.AUTHORIZED, Ev.DEAUTHORIZED})
PAUSE_REASON_ORDER = ("UserPause", "Error", "NoEnergy")
CONNECTOR_TYPES = frozenset(
    (
        *("cCCS1", "cCCS2", "cG105", "cMCS", "cTesla", "cType1", "cType2"),
        *("s309_1P_16A", "s309_1P_32A", "s309_3P_16A", "s309_3P_32A", "sBS1361", "sCEE_7_7", "sType2", "sType3"),
        *("Other1PhMax16A", "Other1PhOver16A", "Other3Ph", "Pan", "wInductive", "wResonant", "Undetermined"),
        "Unknown",
    )
)
# /authorization#/IdTokenType -> /powermeter#/OCMFIdentificationType
OCMF_ID_TYPES = {
    "ISO14443": "ISO14443",
    "ISO15693": "ISO15693",
    "eMAID": "EMAID",
    "Central": "CENTRAL",
    "Local": "LOCAL",
    "KeyCode": "KEY_CODE",
    "NoAuthorization": "NONE",
}


def new_session_id(kind: str = "UUID") -> str:
    """A session id of the configured ``session_id_type``.

    UUID: 36 characters; UUID_BASE64: a random UUID's 16 bytes, URL-safe base64 without padding
    (22 characters); SHORT_BASE64: 12 random bytes, URL-safe base64 (16 characters).
    """
    if kind == "UUID_BASE64":
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if kind == "SHORT_BASE64":
        return base64.urlsafe_b64encode(os.urandom(12)).decode()
    return str(uuid.uuid4())


def get_evse(connector_id: int, connector_type: str) -> dict[str, Any]:
    """/evse_manager#/Evse of this EvseManager: one connector; its type only if it is a known one."""
    connector: dict[str, Any] = {"id": 1}
    if connector_type in CONNECTOR_TYPES:
        connector["type"] = connector_type
    return {"id": connector_id, "connectors": [connector]}


def meter_transaction_request(
    evse_id: str, session_id: str, id_tag: Mapping[str, Any], validation: Mapping[str, Any]
) -> dict[str, Any]:
    """/powermeter#/TransactionReq for the start of a transaction (the user counts as assigned)."""
    token = id_tag.get("id_token") or {}
    request: dict[str, Any] = {
        "evse_id": evse_id,
        "transaction_id": session_id,
        "identification_status": "ASSIGNED",
        "identification_flags": [],
        "identification_type": OCMF_ID_TYPES.get(str(token.get("type")), "UNDEFINED"),
        "identification_data": str(token.get("value", "")),
    }
    messages = validation.get("tariff_messages") or []
    if messages and isinstance(messages[0], Mapping) and isinstance(messages[0].get("content"), str):
        request["tariff_text"] = messages[0]["content"][:250]
    return request


class SessionEvents:
    """Builds SessionEvent payloads for one connector; ``meter`` gives the latest billing meter value."""

    def __init__(
        self,
        clock: Clock,
        connector_id: int,
        meter: Callable[[], Mapping[str, Any] | None],
        id_type: str = "UUID",
    ) -> None:
        self._clock = clock
        self.connector_id = connector_id
        self._meter = meter
        self.id_type = id_type
        self.session_id: str | None = None

    def start(self) -> str:
        self.session_id = new_session_id(self.id_type)
        return self.session_id

    def end(self) -> None:
        self.session_id = None

    def timestamp(self) -> str:
        return rfc3339(self._clock.utc_now())

    def meter_value(self) -> dict[str, Any]:
        """The latest billing meter value; without a meter a zero reading stamped now."""
        value = self._meter()
        if value:
            return dict(value)
        return {"timestamp": self.timestamp(), "energy_Wh_import": {"total": 0.0}}

    def event(self, kind: Ev, session_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """A SessionEvent of ``kind``; events outside a session carry an empty uuid (as EVerest does)."""
        event: dict[str, Any] = {
            "uuid": session_id if session_id is not None else (self.session_id or ""),
            "timestamp": self.timestamp(),
            "connector_id": self.connector_id,
            "event": str(kind),
        }
        if kind in CHARGING_STATE_EVENTS:
            event["charging_state_changed_event"] = {"meter_value": self.meter_value()}
        if kind in AUTHORIZATION_EVENTS:
            event["authorization_event"] = {"meter_value": self.meter_value()}
        event.update({k: v for k, v in extra.items() if v is not None})
        return event

    def session_started(
        self,
        reason: str,
        id_tag: Mapping[str, Any] | None = None,
        reservation_id: int | None = None,
        logging_path: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"reason": reason, "meter_value": self.meter_value()}
        if id_tag is not None:
            payload["id_tag"] = dict(id_tag)
        if reservation_id is not None:
            payload["reservation_id"] = reservation_id
        if logging_path:
            payload["logging_path"] = logging_path
        return self.event(Ev.SESSION_STARTED, session_started=payload)

    def transaction_started(self, id_tag: Mapping[str, Any], reservation_id: int | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"id_tag": dict(id_tag), "meter_value": self.meter_value()}
        if reservation_id is not None:
            payload["reservation_id"] = reservation_id
        return self.event(Ev.TRANSACTION_STARTED, transaction_started=payload)

    def transaction_finished(
        self,
        reason: str | None,
        id_tag: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        signed: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"meter_value": self.meter_value()}
        if reason is not None:
            payload["reason"] = reason
        if id_tag is not None:
            payload["id_tag"] = dict(id_tag)
        for key in ("start_signed_meter_value", "signed_meter_value"):
            if signed and isinstance(signed.get(key), Mapping):
                payload[key] = dict(signed[key])
        return self.event(Ev.TRANSACTION_FINISHED, session_id=session_id, transaction_finished=payload)

    def session_finished(self, session_id: str | None = None) -> dict[str, Any]:
        return self.event(
            Ev.SESSION_FINISHED, session_id=session_id, session_finished={"meter_value": self.meter_value()}
        )

    def paused_evse(self, reasons: set[str]) -> dict[str, Any]:
        ordered = [r for r in PAUSE_REASON_ORDER if r in reasons]
        return self.event(Ev.CHARGING_PAUSED_EVSE, charging_paused_evse={"reasons": ordered})

    def enable_event(self, enabled: bool, source: Mapping[str, Any]) -> dict[str, Any]:
        return self.event(Ev.ENABLED if enabled else Ev.DISABLED, source=dict(source))
