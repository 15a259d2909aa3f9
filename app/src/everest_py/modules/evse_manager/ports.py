# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The ports of the state machines (board, lock, charger outputs), routed to the EvseManager module's bus methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from everest_py.modules.evse_manager.states import State

if TYPE_CHECKING:
    from everest_py.modules.evse_manager.module import EvseManager

METER_START_FAILED = "evse_manager/PowermeterTransactionStartFailed"
MREC9 = "evse_manager/MREC9AuthorizationTimeout"


class BoardPort:
    """evse_board_support commands, each sent at once and in call order."""

    def __init__(self, module: EvseManager) -> None:
        self._m = module

    def enable(self, value: bool) -> None:
        self._m.bsp_cmd("enable", value=value)

    def pwm_on(self, percent: float) -> None:
        self._m.bsp_cmd("pwm_on", value=round(percent, 4))

    def cp_state_x1(self) -> None:
        self._m.bsp_cmd("cp_state_X1")

    def cp_state_f(self) -> None:
        self._m.bsp_cmd("cp_state_F")

    def allow_power_on(self, value: bool, reason: str) -> None:
        self._m.bsp_cmd("allow_power_on", value={"allow_power_on": value, "reason": reason})

    def switch_three_phases(self, three_phases: bool) -> None:
        self._m.bsp_cmd("ac_switch_three_phases_while_charging", value=three_phases)

    def set_overcurrent_limit(self, ampere: float) -> None:
        self._m.bsp_cmd("ac_set_overcurrent_limit_A", value=ampere)


class LockPort:
    def __init__(self, module: EvseManager) -> None:
        self._m = module

    def lock(self) -> None:
        self._m.lock_cmd("lock")

    def unlock(self) -> None:
        self._m.lock_cmd("unlock")


class ChargerOutputs:
    """What the charger reports, turned into vars, errors, meter calls, the session log and the store."""

    def __init__(self, module: EvseManager) -> None:
        self._m = module

    def session_event(self, event: dict[str, Any]) -> None:
        m = self._m
        m.session_log.write("session_event", event)
        m.publish("evse", "session_event", event)

    def state_changed(self, state: State) -> None:
        self._m.state_changed(state)

    def session_started(self, session_id: str) -> str | None:
        return self._m.session_log.start(session_id)

    def session_finished(self, session_id: str) -> None:
        m = self._m
        m.session_log.finish()
        m.errors("evse").clear_error(METER_START_FAILED)
        m.clear_over_current()

    def transaction_started(self, session_id: str, id_tag: Mapping[str, Any], validation: Mapping[str, Any]) -> None:
        self._m.transaction_started(session_id, id_tag, validation)

    def transaction_finished(self, session_id: str, reason: str) -> None:
        self._m.transaction_finished(session_id)

    def authorization_timeout(self, active: bool) -> None:
        handle = self._m.errors("evse")
        if active:
            handle.raise_error(MREC9, "", "no authorization within the connection timeout", "Low")
        else:
            handle.clear_error(MREC9)

    def note(self, text: str) -> None:
        self._m.log.debug("%s", text)
        self._m.session_log.write("note", text)
