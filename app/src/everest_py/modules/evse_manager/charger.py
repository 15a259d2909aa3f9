# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The high-level charger state machine (basic AC charging per IEC 61851-1), one handler per state.

Inputs: CP events from :class:`IECStateMachine`, authorization, enable/disable, EVSE pause/resume,
stop requests, the inoperative flag and energy changes. Outputs: session events (through
:class:`SessionEvents`), PWM/X1/F and the power permission (through the IEC machine), and the
hooks in :class:`Outputs` (transactions on the meter, persistence, the session log).

Every input ends with :meth:`Charger._run`, which runs the current state's handler (with
``entering`` on the first run after a change) until the state is stable. CP events that arrive
while a handler runs are queued and handled after it, so each handler sees a consistent state.
HLC (5 % PWM, SLAC, ISO 15118) is not implemented; T_step_EF / T_step_X1 exist as states so it
can be added (basic charging uses T_step_EF for the legacy wake-up).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from everest_py.modules.evse_manager.clock import Clock, Timer
from everest_py.modules.evse_manager.enable import EnableTable
from everest_py.modules.evse_manager.energy import Energy
from everest_py.modules.evse_manager.iec import REASON_FULL_POWER, CPEvent, IECStateMachine
from everest_py.modules.evse_manager.pwm import PwmControl
from everest_py.modules.evse_manager.session import Ev, SessionEvents
from everest_py.modules.evse_manager.states import (
    ENERGY_STATES,
    FREE_SERVICE_RESULT,
    FREE_SERVICE_TOKEN,
    LEGACY_WAKEUP_TIMEOUT_S,
    MAX_RUNS,
    PREPARING_TIMEOUT_PAUSED_BY_EV_S,
    SESSION_STATES,
    STAY_IN_X1_AFTER_T_STEP_EF_S,
    T_STEP_EF_S,
    T_STEP_X1_S,
    ChargerConfig,
    Outputs,
    State,
)


class Charger:
    """One EVSE's charging logic; see the module docstring."""

    def __init__(
        self,
        iec: IECStateMachine,
        energy: Energy,
        events: SessionEvents,
        outputs: Outputs,
        clock: Clock,
        config: ChargerConfig | None = None,
    ) -> None:
        self.iec = iec
        self.energy = energy
        self.events = events
        self.out = outputs
        self.clock = clock
        self.config = config or ChargerConfig()
        self.state = State.IDLE
        self._entered: State | None = None
        self.enable_table = EnableTable()
        # session
        self.car_present = False
        self.ev_in_c = False  # the car asks for power (C/D), as far as the CP events tell
        self.authorized = False
        self.id_token: dict[str, Any] | None = None
        self.validation: dict[str, Any] = {}
        self.transaction_active = False
        self.stop_reason: str | None = None
        self.stop_id_tag: dict[str, Any] | None = None
        self.user_paused = False
        self.inoperative = False
        self.reservation_id: int | None = None
        self._session_reservation: int | None = None
        self._emitted_reasons: set[str] = set()
        self.legacy_wakeup_done = False
        self.pwm = PwmControl(iec, energy, clock, self._run)
        # helper states
        self._state_timer = Timer(clock, self._state_timeout)
        self._t_step_phase = 0
        self._return_state = State.PREPARE_CHARGING
        self._return_ampere: float | None = None
        self._switch_target: bool | None = None
        # event queue and run guard
        self._queue: deque[Callable[[], None]] = deque()
        self._running = False
        self._started = False
        self._handlers: dict[State, Callable[[bool], None]] = {
            State.DISABLED: self._disabled,
            State.IDLE: self._idle,
            State.WAITING_FOR_AUTHENTICATION: self._waiting_for_authentication,
            State.PREPARE_CHARGING: self._prepare_charging,
            State.CHARGING: self._charging,
            State.CHARGING_PAUSED_EV: self._charging_paused_ev,
            State.CHARGING_PAUSED_EVSE: self._charging_paused_evse,
            State.STOPPING_CHARGING: self._stopping_charging,
            State.FINISHED: self._finished,
            State.T_STEP_EF: self._t_step_ef,
            State.T_STEP_X1: self._t_step_x1,
            State.SWITCH_PHASES: self._switch_phases,
        }

    # -- properties ------------------------------------------------------------------------------------
    @property
    def session_active(self) -> bool:
        return self.events.session_id is not None

    def signalled_current(self) -> float | None:
        """Ampere the car may draw now for the soft over current check; None outside charging states."""
        if self.state not in (State.CHARGING, State.CHARGING_PAUSED_EV, State.CHARGING_PAUSED_EVSE):
            return None
        return self.pwm.signalled()

    @property
    def energy_state(self) -> str:
        if self.state is State.CHARGING_PAUSED_EVSE and self._pause_reasons() == {"NoEnergy"}:
            return "WaitForEnergy"
        return ENERGY_STATES[self.state]

    # -- the loop ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Go live (after the global ready): announce the enable state, enable the CP, enter Idle/Disabled."""
        enabled = self.enable_table.enabled
        self._emit_raw(self.events.enable_event(enabled, self.enable_table.winner))
        self.state = State.IDLE if enabled else State.DISABLED
        self._started = True
        self._run()
        if enabled:
            self.iec.enable(True)

    def _run(self) -> None:
        if self._running or not self._started:
            return
        self._running = True
        try:
            for _ in range(MAX_RUNS):
                entering = self._entered is not self.state
                if entering:
                    self._leave(self._entered)
                    self._entered = self.state
                    self.out.note(f"state {self.state}")
                    self.out.state_changed(self.state)
                self._handlers[self.state](entering)
                if self._queue:
                    while self._queue:
                        self._queue.popleft()()
                    continue
                if self._entered is self.state:
                    break
            else:
                self.out.note(f"state machine did not settle (state {self.state})")
        finally:
            self._running = False

    def _later(self, action: Callable[[], None]) -> None:
        self._queue.append(action)
        self._run()

    def _leave(self, old: State | None) -> None:
        self._state_timer.stop()
        if old is State.SWITCH_PHASES and self._switch_target is not None:
            self._send_phase_switch()

    def _emit(self, kind: Ev, **extra: Any) -> None:
        self._emit_raw(self.events.event(kind, **extra))

    def _emit_raw(self, event: dict[str, Any]) -> None:
        self.out.session_event(event)

    # -- inputs --------------------------------------------------------------------------------------------
    def on_cp_event(self, event: CPEvent) -> None:
        self.out.note(f"cp {event}")
        self._later(lambda: self._cp_event(event))

    def _cp_event(self, event: CPEvent) -> None:
        s = self.state
        if event is CPEvent.CAR_PLUGGED_IN:
            self.car_present = True
            if s is State.IDLE and not self.inoperative:
                self.state = State.WAITING_FOR_AUTHENTICATION
        elif event is CPEvent.CAR_REQUESTED_POWER:
            self.ev_in_c = True
            if s is State.CHARGING_PAUSED_EV:
                self.state = State.CHARGING
        elif event is CPEvent.CAR_REQUESTED_STOP_POWER:
            self.ev_in_c = False
            if s is State.CHARGING:
                self.state = State.CHARGING_PAUSED_EV
        elif event is CPEvent.CAR_UNPLUGGED:
            self.car_present = False
            self.ev_in_c = False
            if not self.session_active:
                return
            if self.transaction_active and s not in (State.STOPPING_CHARGING, State.FINISHED):
                self.stop_reason = self.stop_reason or "EVDisconnected"
                self.state = State.STOPPING_CHARGING
            elif s not in (State.STOPPING_CHARGING, State.FINISHED, State.IDLE, State.DISABLED):
                self.state = State.FINISHED
        elif event is CPEvent.EF_TO_BCD and s is State.CHARGING:
            # back from F without an error: the board dropped PWM and power when it saw F, so both
            # are asked for again (power still closes only in C with PWM, see iec.py)
            self.pwm.percent = None
            self.iec.allow_power_on(True, REASON_FULL_POWER)
        elif event is CPEvent.BCD_TO_E and s is State.CHARGING:
            self.ev_in_c = False
            self.state = State.STOPPING_CHARGING

    def authorize_response(self, token: Mapping[str, Any], result: Mapping[str, Any]) -> bool:
        """Auth's verdict; only Accepted counts. False if ignored."""
        status = result.get("authorization_status")
        if status != "Accepted":
            self.out.note(f"authorization {status}: ignored")
            return False
        if self.state not in (State.IDLE, State.WAITING_FOR_AUTHENTICATION) or self.authorized:
            self.out.note(f"authorization in state {self.state}: ignored")
            return False
        reserved = self.reservation_id
        if reserved is not None and reserved >= 0 and result.get("reservation_id") != reserved:
            self.out.note(f"reserved for {reserved}: authorization for {result.get('reservation_id')} ignored")
            return False
        self._later(lambda: self._accept(token, result))
        return True

    def _accept(self, token: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        self.id_token = dict(token)
        self.validation = dict(result)
        if self.reservation_id is not None:
            self._session_reservation = self.reservation_id
        if not self.session_active:
            self._start_session("Authorized", token)
        self._emit(Ev.AUTHORIZED)
        self.authorized = True
        self.iec.set_authorized(True)
        if self.reservation_id is not None:
            self.reservation_id = None
            self._emit(Ev.RESERVATION_END)

    def withdraw_authorization(self) -> None:
        """Auth withdraws (connection timeout): PluginTimeout if never authorized, else deauthorized."""
        self._later(self._withdraw)

    def _withdraw(self) -> None:
        if not self.session_active:
            return
        if self.state not in (State.IDLE, State.WAITING_FOR_AUTHENTICATION, State.DISABLED):
            self.out.note(f"withdraw_authorization in state {self.state}: ignored, charging has begun")
            return
        self._emit(Ev.DEAUTHORIZED)
        if not self.authorized:
            self._emit(Ev.PLUGIN_TIMEOUT)
            if self.config.raise_mrec9:
                self.out.authorization_timeout(True)
            return
        self.authorized = False
        self.iec.set_authorized(False)
        if not self.car_present:
            self._end_session()

    def enable_disable(self, connector_id: int, cmd_source: Mapping[str, Any]) -> bool:
        """One source's enable/disable wish; returns the resolved state (True: enabled)."""
        before = self.enable_table.enabled
        enabled = self.enable_table.update(cmd_source)
        self.out.note(f"enable_disable connector {connector_id} {dict(cmd_source)} -> enabled {enabled}")
        if enabled != before and self._started:  # before start() the table alone decides
            self._later(lambda: self._apply_enable(enabled))
        return enabled

    def _apply_enable(self, enabled: bool) -> None:
        winner = self.enable_table.winner
        if not enabled:
            self.iec.allow_power_on(False)
            if self.transaction_active:
                self.stop_reason = self.stop_reason or "Other"
                self._stop_transaction()
            if self.session_active:
                self._end_session()
            self._emit_raw(self.events.enable_event(False, winner))
            self.car_present = False
            self.ev_in_c = False
            self.state = State.DISABLED
        else:
            self._emit_raw(self.events.enable_event(True, winner))
            if self.state is State.DISABLED:
                self.state = State.IDLE
                self.iec.enable(True)

    def pause_charging(self) -> bool:
        """EVSE-side pause (UserPause); True if the session can be paused."""
        if not self.transaction_active or self.state not in SESSION_STATES:
            return False
        self.user_paused = True
        self.legacy_wakeup_done = False
        self._run()
        return True

    def resume_charging(self) -> bool:
        """Lift an EVSE-side pause; a pause of the car cannot be resumed here."""
        if not self.user_paused:
            return False
        self.user_paused = False
        self._run()
        return True

    def stop_transaction(self, request: Mapping[str, Any]) -> bool:
        """End the transaction from outside; True if one was active."""
        if not self.transaction_active:
            return False
        self.stop_reason = str(request.get("reason") or "Other")
        id_tag = request.get("id_tag")
        self.stop_id_tag = dict(id_tag) if isinstance(id_tag, Mapping) else None
        self.authorized = False
        if self.state not in (State.STOPPING_CHARGING, State.FINISHED):
            self.state = State.STOPPING_CHARGING
        self._run()
        return True

    def reserve(self, reservation_id: int) -> bool:
        if self.state is not State.IDLE or self.inoperative or self.session_active:
            return False
        was_reserved = self.reservation_id is not None
        self.reservation_id = reservation_id
        if not was_reserved:
            self._emit(Ev.RESERVATION_START)
        return True

    def cancel_reservation(self) -> None:
        if self.reservation_id is not None:
            self.reservation_id = None
            self._emit(Ev.RESERVATION_END)

    def set_inoperative(self, inoperative: bool) -> None:
        """Blocking errors of the requirements became active (True) or all cleared (False)."""
        if inoperative == self.inoperative:
            return
        self.inoperative = inoperative
        if inoperative:
            self._fault_shutdown()
        self._run()

    def energy_changed(self) -> None:
        self._run()

    def switch_phases(self, three_phases: bool) -> bool:
        """Switch between 1 and 3 phases; while charging through SwitchPhases (X1/F for the configured delay)."""
        if self.state is State.SWITCH_PHASES:
            self._switch_target = three_phases
            return True
        if self.state is State.CHARGING:
            if not self.energy.supports_phase_switching:
                self.out.note("phase switch while charging refused: the board does not support it")
                return False
            self._switch_target = three_phases
            self.state = State.SWITCH_PHASES
            self._run()
            return True
        self._switch_target = three_phases
        self._send_phase_switch()
        return True

    def _send_phase_switch(self) -> None:
        target, self._switch_target = self._switch_target, None
        if target is None:
            return
        self.iec.switch_three_phases(target)
        self.energy.phases_available = 3 if target else 1

    # -- session and transaction -------------------------------------------------------------------------
    def _start_session(self, reason: str, id_tag: Mapping[str, Any] | None = None) -> None:
        session_id = self.events.start()
        logging_path = self.out.session_started(session_id)
        self._emit_raw(self.events.session_started(reason, id_tag, self._session_reservation, logging_path))

    def _end_session(self) -> None:
        session_id = self.events.session_id
        if session_id is None:
            return
        self._emit_raw(self.events.session_finished())
        self.out.session_finished(session_id)
        self.events.end()
        self.authorized = False
        self.id_token = None
        self._session_reservation = None
        self.iec.set_authorized(False)

    def _start_transaction(self) -> None:
        assert self.events.session_id is not None
        self.transaction_active = True
        self.stop_reason = None
        self.stop_id_tag = None
        token = self.id_token or FREE_SERVICE_TOKEN
        self.out.transaction_started(self.events.session_id, token, self.validation)
        self._emit_raw(self.events.transaction_started(token, self._session_reservation))

    def _stop_transaction(self) -> None:
        if not self.transaction_active:
            return
        self.transaction_active = False
        reason = self.stop_reason or "EVDisconnected"
        if self.events.session_id is not None:
            self.out.transaction_finished(self.events.session_id, reason)
        self._emit(Ev.CHARGING_FINISHED)
        self._emit_raw(self.events.transaction_finished(reason, self.stop_id_tag))

    def _fault_shutdown(self) -> None:
        """A blocking error: power off now; F for state_F_after_fault_ms if it hit while charging, then X1."""
        charging = self.state is State.CHARGING or self.iec.power_requested
        self.iec.allow_power_on(False)
        if self.state not in SESSION_STATES:
            return
        if charging and self.config.state_F_after_fault_ms > 0:
            self.pwm.hold_f(self.config.state_F_after_fault_ms / 1000.0)
        else:
            self.pwm.off()

    def _pause_reasons(self) -> set[str]:
        reasons: set[str] = set()
        if self.user_paused:
            reasons.add("UserPause")
        if self.inoperative:
            reasons.add("Error")
        if not self.energy.power_available():
            reasons.add("NoEnergy")
        return reasons

    # -- states --------------------------------------------------------------------------------------------
    def _disabled(self, entering: bool) -> None:
        if entering:
            self.pwm.f()
            self.iec.enable(False)

    def _idle(self, entering: bool) -> None:
        if entering:
            self.pwm.off()
            self.iec.allow_power_on(False)
            self.transaction_active = False
            self.user_paused = False
            self.ev_in_c = False
            self.legacy_wakeup_done = False
            self._emitted_reasons = set()
            self.out.authorization_timeout(False)
        if self.car_present and not self.inoperative:
            self.state = State.WAITING_FOR_AUTHENTICATION

    def _waiting_for_authentication(self, entering: bool) -> None:
        if entering:
            self.iec.allow_power_on(False)
            if not self.session_active:
                self._start_session("EVConnected")
            self._emit(Ev.AUTH_REQUIRED)
            if self.config.disable_authentication and not self.authorized:
                self._accept(FREE_SERVICE_TOKEN, FREE_SERVICE_RESULT)
        if self.inoperative or not self.authorized:
            return
        if not self.transaction_active:
            self._start_transaction()
        self.state = State.PREPARE_CHARGING

    def _prepare_charging(self, entering: bool) -> None:
        if entering:
            self._emit(Ev.PREPARE_CHARGING)
            self._state_timer.start(
                PREPARING_TIMEOUT_PAUSED_BY_EV_S if self.legacy_wakeup_done else LEGACY_WAKEUP_TIMEOUT_S
            )
        if self._pause_reasons():
            self.state = State.CHARGING_PAUSED_EVSE
            return
        self.pwm.now_if_changed()
        if self.ev_in_c and self.iec.pwm_running:
            self.state = State.CHARGING

    def _charging(self, entering: bool) -> None:
        if self._pause_reasons():
            self.state = State.CHARGING_PAUSED_EVSE
            return
        if entering:
            self._emit(Ev.CHARGING_STARTED)
            self.legacy_wakeup_done = False
            self.iec.allow_power_on(True, REASON_FULL_POWER)
            self.pwm.now_if_changed()
            return
        self.pwm.rate_limited()

    def _charging_paused_ev(self, entering: bool) -> None:
        if entering:
            self.iec.withhold_power()
            self._emit(Ev.CHARGING_PAUSED_EV)
        if self._pause_reasons():
            self.state = State.CHARGING_PAUSED_EVSE
            return
        # nominal PWM stays on, so the car can resume whenever it wants to
        if self.pwm.percent is None:
            self.pwm.now_if_changed()
        else:
            self.pwm.rate_limited()

    def _charging_paused_evse(self, entering: bool) -> None:
        reasons = self._pause_reasons()
        if entering:
            self.iec.withhold_power()
            self._emitted_reasons = set()
        if not reasons:
            self.state = State.PREPARE_CHARGING
            return
        if reasons != self._emitted_reasons:
            self._emitted_reasons = reasons
            self._emit_raw(self.events.paused_evse(reasons))
        if entering:
            self.pwm.off()

    def _stopping_charging(self, entering: bool) -> None:
        if entering:
            self.iec.withhold_power()
            if self.transaction_active:
                self._emit(Ev.STOPPING_CHARGING)
            # basic charging stops by PWM off: the car opens S2 (C->B switches off at once),
            # or the IEC machine forces power off 6 s later
            self.pwm.off()
        if not self.transaction_active or not self.car_present or not self.iec.relais_on:
            self.state = State.FINISHED

    def _finished(self, entering: bool) -> None:
        if entering:
            self.iec.withhold_power()
            self.pwm.off()
            self._stop_transaction()
            self.authorized = False
            self.user_paused = False
            self.iec.set_authorized(False)
        if not self.car_present:
            self._end_session()
            self.state = State.IDLE

    def _t_step_ef(self, entering: bool) -> None:
        if entering:
            self._t_step_phase = 0
            self.pwm.f()
            self._state_timer.start(T_STEP_EF_S)

    def _t_step_x1(self, entering: bool) -> None:
        if entering:
            self.pwm.off()
            self._state_timer.start(T_STEP_X1_S)

    def _switch_phases(self, entering: bool) -> None:
        if entering:
            self._emit(Ev.SWITCHING_PHASES)
            self.iec.withhold_power()
            if self.config.switch_3ph1ph_cp_state == "F":
                self.pwm.f()
            else:
                self.pwm.off()
            self._state_timer.start(float(self.config.switch_3ph1ph_delay_s))

    def _return_from_t_step(self) -> None:
        if self._pause_reasons():
            # paused (error, no energy, user) during the wake-up: no PWM offered; the pause decides
            self.pwm.off()
            self.state = State.CHARGING_PAUSED_EVSE
            return
        if self._return_ampere is None:
            self.pwm.off()
        else:
            # the limit may have changed during the wake-up: never offer more than it allows now
            self.pwm.set(min(self._return_ampere, self.energy.current_limit()))
        self.state = self._return_state

    def _state_timeout(self) -> None:
        s = self.state
        if s is State.PREPARE_CHARGING:
            if not self.legacy_wakeup_done:
                # IEC 61851-1 A.5.3: the car stays in B; try one wake-up through E/F
                self.out.note("the car did not go to C: one legacy wake-up (T_step_EF)")
                self.legacy_wakeup_done = True
                self._return_state = State.PREPARE_CHARGING
                self._return_ampere = self.energy.current_limit()
                self.state = State.T_STEP_EF
            else:
                self.state = State.CHARGING_PAUSED_EV
        elif s is State.T_STEP_EF and self._t_step_phase == 0:
            self._t_step_phase = 1
            self.pwm.off()  # stay in X1 a little before PWM returns (EV READY)
            self._state_timer.start(STAY_IN_X1_AFTER_T_STEP_EF_S)
        elif s in (State.T_STEP_EF, State.T_STEP_X1):
            self._return_from_t_step()
        elif s is State.SWITCH_PHASES:
            self._send_phase_switch()
            self.state = State.PREPARE_CHARGING
        self._run()
