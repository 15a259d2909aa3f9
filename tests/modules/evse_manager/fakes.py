# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Test doubles for the EvseManager logic: a recording board and lock, a charger harness on a manual clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from everest_py.framework.contracts import Contracts
from everest_py.modules.evse_manager.charger import Charger
from everest_py.modules.evse_manager.clock import ManualClock
from everest_py.modules.evse_manager.energy import Energy
from everest_py.modules.evse_manager.iec import CPEvent, IECConfig, IECStateMachine
from everest_py.modules.evse_manager.session import SessionEvents
from everest_py.modules.evse_manager.states import ChargerConfig, State

CAPS: dict[str, Any] = {
    "max_current_A_import": 32.0,
    "min_current_A_import": 6.0,
    "max_phase_count_import": 3,
    "min_phase_count_import": 1,
    "max_current_A_export": 0.0,
    "min_current_A_export": 0.0,
    "max_phase_count_export": 3,
    "min_phase_count_export": 1,
    "supports_changing_phases_during_charging": True,
    "supports_cp_state_E": False,
    "connector_type": "IEC62196Type2Cable",
}
TOKEN: dict[str, Any] = {"id_token": {"value": "DEADBEEF", "type": "ISO14443"}, "authorization_type": "RFID"}
ACCEPTED: dict[str, Any] = {"authorization_status": "Accepted", "tariff_messages": []}


class FakeBoard:
    """Records every evse_board_support command as (name, value)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def enable(self, value: bool) -> None:
        self.calls.append(("enable", value))

    def pwm_on(self, percent: float) -> None:
        self.calls.append(("pwm_on", round(percent, 2)))

    def cp_state_x1(self) -> None:
        self.calls.append(("X1", None))

    def cp_state_f(self) -> None:
        self.calls.append(("F", None))

    def allow_power_on(self, value: bool, reason: str) -> None:
        self.calls.append(("allow_power_on", value))

    def switch_three_phases(self, three_phases: bool) -> None:
        self.calls.append(("three_phases", three_phases))

    def set_overcurrent_limit(self, ampere: float) -> None:
        self.calls.append(("overcurrent", ampere))

    def take(self) -> list[tuple[str, Any]]:
        calls, self.calls = self.calls, []
        return calls

    def power(self) -> list[bool]:
        """Only the allow_power_on values, taken."""
        return [v for n, v in self.take() if n == "allow_power_on"]


class FakeLock:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def lock(self) -> None:
        self.calls.append("lock")

    def unlock(self) -> None:
        self.calls.append("unlock")


class Recorder:
    """The charger's Outputs, recorded."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.states: list[State] = []
        self.transactions: list[tuple[str, str]] = []
        self.mrec9: list[bool] = []
        self.notes: list[str] = []

    def session_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def state_changed(self, state: State) -> None:
        self.states.append(state)

    def session_started(self, session_id: str) -> str | None:
        return f"/logs/{session_id}"

    def session_finished(self, session_id: str) -> None:
        self.transactions.append(("session_finished", session_id))

    def transaction_started(self, session_id: str, id_tag: Mapping[str, Any], validation: Mapping[str, Any]) -> None:
        self.transactions.append(("start", session_id))

    def transaction_finished(self, session_id: str, reason: str) -> None:
        self.transactions.append(("stop", reason))

    def authorization_timeout(self, active: bool) -> None:
        self.mrec9.append(active)

    def note(self, text: str) -> None:
        self.notes.append(text)


class Harness:
    """IEC machine + charger + energy on a manual clock, with recording fakes around them."""

    def __init__(
        self,
        contracts: Contracts | None = None,
        iec: IECConfig | None = None,
        charger: ChargerConfig | None = None,
        caps: dict[str, Any] | None = CAPS,
    ) -> None:
        self.contracts = contracts
        self.clock = ManualClock()
        self.board = FakeBoard()
        self.lock = FakeLock()
        self.out = Recorder()
        self.cp_events: list[CPEvent] = []
        self.meter: dict[str, Any] | None = None
        self.iec = IECStateMachine(self.board, self.lock, self.clock, self._cp, iec or IECConfig())
        self.energy = Energy(self.clock, "evse_1", on_change=self._energy)
        self.sessions = SessionEvents(self.clock, 1, lambda: self.meter)
        self.charger = Charger(self.iec, self.energy, self.sessions, self.out, self.clock, charger or ChargerConfig())
        if caps is not None:
            self.energy.set_hw_caps(caps)
        self._seen = 0

    def _cp(self, event: CPEvent) -> None:
        self.cp_events.append(event)
        self.charger.on_cp_event(event)

    def _energy(self) -> None:
        self.charger.energy_changed()

    # -- driving ------------------------------------------------------------------------------------------
    def start(self) -> Harness:
        self.charger.start()
        return self

    def cp(self, *states: str) -> None:
        for state in states:
            self.iec.on_bsp_event(state)

    def limits(self, ampere: float | None = 16.0, valid_for: int = 10, **root: Any) -> None:
        if ampere is not None:
            root["ac_max_current_A"] = {"value": ampere, "source": "test"}
        assert self.energy.enforce({"uuid": "evse_1", "valid_for": valid_for, "limits_root_side": root, "schedule": []})

    def authorize(self, token: dict[str, Any] | None = None, **result: Any) -> bool:
        return self.charger.authorize_response(token or TOKEN, {**ACCEPTED, **result})

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def charging(self) -> None:
        """From idle to Charging: limits, plug in (B), authorize, car goes to C."""
        self.limits(16.0, valid_for=3600)
        self.cp("B")
        self.authorize()
        self.cp("C")
        assert self.charger.state is State.CHARGING, self.charger.state

    # -- looking ------------------------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        return [e["event"] for e in self.out.events]

    def new_kinds(self) -> list[str]:
        """Event kinds since the last call."""
        kinds = self.kinds()[self._seen :]
        self._seen = len(self.out.events)
        return kinds

    def check_events(self) -> None:
        """Every recorded event is a valid /evse_manager#/SessionEvent."""
        assert self.contracts is not None
        schema = self.contracts.interface("evse_manager").vars["session_event"]
        check = self.contracts.validator(("test", "session_event"), schema)
        for event in self.out.events:
            check(event)
