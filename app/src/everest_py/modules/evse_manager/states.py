# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The charger's states, their names for other modules, its timing constants, config and output hooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

T_STEP_EF_S = 4.0
STAY_IN_X1_AFTER_T_STEP_EF_S = 0.75
T_STEP_X1_S = 3.0
LEGACY_WAKEUP_TIMEOUT_S = 30.0
PREPARING_TIMEOUT_PAUSED_BY_EV_S = 10.0
MAX_RUNS = 20

FREE_SERVICE_TOKEN: dict[str, Any] = {
    "id_token": {"value": "FREESERVICE", "type": "Local"},
    "authorization_type": "RFID",
}
FREE_SERVICE_RESULT: dict[str, Any] = {"authorization_status": "Accepted", "tariff_messages": []}


class State(StrEnum):
    DISABLED = "Disabled"
    IDLE = "Idle"
    WAITING_FOR_AUTHENTICATION = "WaitingForAuthentication"
    PREPARE_CHARGING = "PrepareCharging"
    CHARGING = "Charging"
    CHARGING_PAUSED_EV = "ChargingPausedEV"
    CHARGING_PAUSED_EVSE = "ChargingPausedEVSE"
    STOPPING_CHARGING = "StoppingCharging"
    FINISHED = "Finished"
    T_STEP_EF = "T_step_EF"
    T_STEP_X1 = "T_step_X1"
    SWITCH_PHASES = "SwitchPhases"


# EVerest's display strings (external MQTT state/state_string)
STATE_STRINGS = {
    State.DISABLED: "Disabled",
    State.IDLE: "Idle",
    State.WAITING_FOR_AUTHENTICATION: "Wait for Auth",
    State.PREPARE_CHARGING: "PrepareCharging",
    State.CHARGING: "Charging",
    State.CHARGING_PAUSED_EV: "Car Paused",
    State.CHARGING_PAUSED_EVSE: "EVSE Paused",
    State.STOPPING_CHARGING: "StoppingCharging",
    State.FINISHED: "Finished",
    State.T_STEP_EF: "T_step_EF",
    State.T_STEP_X1: "T_step_X1",
    State.SWITCH_PHASES: "SwitchPhases",
}
# /energy#/EvseState of each state, for the energy flow request
ENERGY_STATES = {
    State.DISABLED: "Disabled",
    State.IDLE: "Unplugged",
    State.WAITING_FOR_AUTHENTICATION: "WaitForAuth",
    State.PREPARE_CHARGING: "PrepareCharging",
    State.CHARGING: "Charging",
    State.CHARGING_PAUSED_EV: "PausedEV",
    State.CHARGING_PAUSED_EVSE: "PausedEVSE",
    State.STOPPING_CHARGING: "Finished",
    State.FINISHED: "Finished",
    State.T_STEP_EF: "PrepareCharging",
    State.T_STEP_X1: "PrepareCharging",
    State.SWITCH_PHASES: "Charging",
}
SESSION_STATES = frozenset(
    {
        State.PREPARE_CHARGING,
        State.CHARGING,
        State.CHARGING_PAUSED_EV,
        State.CHARGING_PAUSED_EVSE,
        State.T_STEP_EF,
        State.T_STEP_X1,
        State.SWITCH_PHASES,
    }
)


class Outputs(Protocol):
    """What the charger tells the rest of the module besides the board."""

    def session_event(self, event: dict[str, Any]) -> None: ...

    def state_changed(self, state: State) -> None: ...

    def session_started(self, session_id: str) -> str | None:
        """A session begins; returns its logging path (or None)."""
        ...

    def session_finished(self, session_id: str) -> None: ...

    def transaction_started(
        self, session_id: str, id_tag: Mapping[str, Any], validation: Mapping[str, Any]
    ) -> None: ...

    def transaction_finished(self, session_id: str, reason: str) -> None: ...

    def authorization_timeout(self, active: bool) -> None:
        """Raise (True) or clear MREC9AuthorizationTimeout."""
        ...

    def note(self, text: str) -> None:
        """One line for the session log."""
        ...


@dataclass(frozen=True)
class ChargerConfig:
    disable_authentication: bool = False
    state_F_after_fault_ms: int = 300
    switch_3ph1ph_delay_s: int = 10
    switch_3ph1ph_cp_state: str = "X1"
    raise_mrec9: bool = False
