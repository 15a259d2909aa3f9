# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The IEC 61851-1 control pilot state machine: BSP events in, CP events out, relays and lock driven.

It sits between the board (``evse_board_support``) and the charger logic:

- raw CP states (A..F) and relay confirmations (PowerOn/PowerOff) come from the BSP ``event`` var;
- the charger sets PWM / X1 / F and says whether power may flow (``allow_power_on``);
- this machine decides when the relays may actually close and tells the charger what the car does
  (:class:`CPEvent`).

Safety rules kept here, independent of the charger:

- C->B, ->A, ->E, ->F and D without ventilation switch power off at once, before anything else;
- power is switched on only in C (or D with ventilation) while PWM runs and the charger allows it;
- PWM switched off in C: if the car keeps C for 6 s, power is forced off under load;
- the connector unlocks 5 s after entering F (and at once in A, E and when disabled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from everest_py.modules.evse_manager.clock import Clock, Timer

log = logging.getLogger(__name__)

C1_POWER_OFF_S = 6.0  # IEC 61851-1 Table A.6 sequence 10.2
F_UNLOCK_S = 5.0
SIMPLIFIED_MODE_LIMIT_A = 10.0

REASON_POWER_OFF = "PowerOff"
REASON_FULL_POWER = "FullPowerCharging"


class CPState(StrEnum):
    DISABLED = "Disabled"
    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class CPEvent(StrEnum):
    CAR_PLUGGED_IN = "CarPluggedIn"
    CAR_REQUESTED_POWER = "CarRequestedPower"
    CAR_REQUESTED_STOP_POWER = "CarRequestedStopPower"
    CAR_UNPLUGGED = "CarUnplugged"
    EF_TO_BCD = "EFtoBCD"
    BCD_TO_EF = "BCDtoEF"
    BCD_TO_E = "BCDtoE"
    POWER_ON = "PowerOn"
    POWER_OFF = "PowerOff"


def ampere_to_duty_cycle(ampere: float) -> float:
    """PWM duty cycle in percent that signals ``ampere`` (IEC 61851-1 Annex A, as EVerest maps it).

    Below 5.9 A and above 80.1 A there is no valid duty cycle: 100 % (no charging allowed).
    6 A (5.9..6.1) is 10 %; up to 51 A the duty cycle is A / 0.6; the gap 51..52.5 A of the norm
    is clamped to 51 A (85 %); from 52.5 A to 80 A it is A / 2.5 + 64; 80..80.1 A is 97 %.
    """
    if ampere < 5.9:
        return 100.0
    if ampere <= 6.1:
        return 10.0
    if ampere < 52.5:
        return min(ampere, 51.0) / 0.6
    if ampere <= 80.0:
        return ampere / 2.5 + 64.0
    if ampere <= 80.1:
        return 97.0
    return 100.0


class Board(Protocol):
    """The commands of ``evse_board_support`` the machines use; each one is sent at once, in call order."""

    def enable(self, value: bool) -> None: ...

    def pwm_on(self, percent: float) -> None: ...

    def cp_state_x1(self) -> None: ...

    def cp_state_f(self) -> None: ...

    def allow_power_on(self, value: bool, reason: str) -> None: ...

    def switch_three_phases(self, three_phases: bool) -> None: ...

    def set_overcurrent_limit(self, ampere: float) -> None: ...


class ConnectorLock(Protocol):
    def lock(self) -> None: ...

    def unlock(self) -> None: ...


@dataclass(frozen=True)
class IECConfig:
    has_ventilation: bool = True
    lock_connector_in_state_b: bool = True
    simplified_mode_limit_10A: bool = False


class IECStateMachine:
    """One control pilot; see the module docstring for the rules."""

    def __init__(
        self,
        board: Board,
        lock: ConnectorLock,
        clock: Clock,
        on_event: Callable[[CPEvent], None],
        config: IECConfig | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self._board = board
        self._lock = lock
        self._on_event = on_event
        self._note = note or (lambda text: None)
        self.config = config or IECConfig()
        self.cp = CPState.DISABLED
        self.enabled = False
        self.pwm_running = False
        self.cp_output: str | None = None  # what was last commanded: "PWM", "X1", "F" (None: nothing yet)
        self.car_plugged_in = False
        self.simplified_mode = False
        self.relais_on = False  # as confirmed by the BSP (PowerOn/PowerOff)
        self.power_on_allowed = False  # the charger's permission
        self.power_reason = REASON_POWER_OFF
        self.power_requested = False  # allow_power_on(true) sent and not revoked
        self.authorized = False
        self.should_be_locked = False
        self.force_unlocked = False
        self.is_locked = False
        self._overcurrent_limit: float | None = None
        self._reported_while_disabled: CPState | None = None
        self._last_pwm = False
        self._c1_timer = Timer(clock, self._c1_timeout)
        self._unlock_timer = Timer(clock, self._f_unlock_timeout)

    # -- inputs from the board ------------------------------------------------------------------
    def on_bsp_event(self, event: str) -> None:
        """A value of the BSP ``event`` var (``BspEvent.event``)."""
        if event in (CPEvent.POWER_ON, CPEvent.POWER_OFF):
            self.relais_on = event == CPEvent.POWER_ON
            self._check_lock()
            self._on_event(CPEvent(event))
            return
        try:
            state = CPState(event)
        except ValueError:
            self._note(f"ignored BSP event {event!r}")
            return
        if state is CPState.DISABLED:
            return
        if not self.enabled:
            self._reported_while_disabled = state
            return
        self._step(state)

    # -- commands from the charger -----------------------------------------------------------------
    def enable(self, value: bool) -> None:
        """Enable or disable the CP output (BSP ``enable``)."""
        self.enabled = value
        self._board.enable(value)
        if not value:
            self._step(CPState.DISABLED)
            return
        replay, self._reported_while_disabled = self._reported_while_disabled, None
        if replay is not None and replay in (CPState.A, CPState.B, CPState.C, CPState.D):
            # the board may not report its state again after enable; use what it said meanwhile
            self._step(replay)

    def set_pwm(self, percent: float) -> None:
        """Nominal PWM with ``percent`` duty cycle (5 % is HLC signalling; 0 or 100 mean no PWM)."""
        if self.config.simplified_mode_limit_10A and self.simplified_mode:
            percent = min(percent, ampere_to_duty_cycle(SIMPLIFIED_MODE_LIMIT_A))
        self.pwm_running = 0.0 < percent < 100.0
        self.cp_output = "PWM"
        self._board.pwm_on(percent)
        self._step(None)

    def set_x1(self) -> None:
        """PWM off, constant +12 V."""
        self.pwm_running = False
        self.cp_output = "X1"
        self._board.cp_state_x1()
        self._step(None)

    def set_f(self) -> None:
        """PWM off, -12 V (EVSE not available / fault)."""
        self.pwm_running = False
        self.cp_output = "F"
        self._board.cp_state_f()
        self._step(None)

    def allow_power_on(self, value: bool, reason: str = REASON_FULL_POWER) -> None:
        """The charger's permission. False switches off at once; true closes only when the CP state allows."""
        self.power_on_allowed = value
        self.power_reason = reason if value else REASON_POWER_OFF
        if not value:
            self._power_off()
        self._step(None)

    def withhold_power(self) -> None:
        """Revoke the permission without switching off under load: the car is asked to stop by PWM off
        first; C->B (or the 6 s C1 timeout) then switches off."""
        self.power_on_allowed = False
        self.power_reason = REASON_POWER_OFF

    def set_authorized(self, value: bool) -> None:
        """Lock condition when ``lock_connector_in_state_b`` is false: lock only once authorized."""
        self.authorized = value
        self._check_lock()

    def force_unlock(self) -> bool:
        """Unlock now unless power flows; False if refused."""
        if self.relais_on or self.power_requested:
            return False
        self._lock.unlock()
        self.is_locked = False
        if self.cp in (CPState.B, CPState.C, CPState.D):
            self.force_unlocked = True
        return True

    def switch_three_phases(self, three_phases: bool) -> None:
        self._board.switch_three_phases(three_phases)

    def set_overcurrent_limit(self, ampere: float) -> None:
        if ampere != self._overcurrent_limit:
            self._overcurrent_limit = ampere
            self._board.set_overcurrent_limit(ampere)

    # -- the machine -------------------------------------------------------------------------------
    def _power_off(self) -> None:
        self.power_on_allowed = False
        self.power_reason = REASON_POWER_OFF
        self.power_requested = False
        self._board.allow_power_on(False, REASON_POWER_OFF)

    def _power_on(self) -> None:
        if not self.power_requested:
            self.power_requested = True
            self._board.allow_power_on(True, self.power_reason)

    def _lock_wanted(self) -> None:
        self.should_be_locked = True

    def _unlock_wanted(self) -> None:
        self.should_be_locked = False
        self.force_unlocked = False

    def _step(self, new: CPState | None) -> None:
        last = self.cp
        state = last if new is None else new
        changed = state is not last
        events: list[CPEvent] = []
        if changed and last is CPState.F:
            self._unlock_timer.stop()

        if state is CPState.DISABLED:
            if changed:
                self._power_off()
                self.pwm_running = False
                self.simplified_mode = False
                self._c1_timer.stop()
                self._unlock_wanted()
        elif state is CPState.A:
            if changed:
                self._power_off()
                self.pwm_running = False
                self.cp_output = "X1"
                self._board.cp_state_x1()
                self.simplified_mode = False
                self.car_plugged_in = False
                self._c1_timer.stop()
                self._unlock_wanted()
                if last is not CPState.DISABLED:
                    events.append(CPEvent.CAR_UNPLUGGED)
        elif state is CPState.B:
            if changed and last is not CPState.A:
                # Table A.6 sequence 8.1: off within 100 ms; this is the first command sent
                self._power_off()
                self._c1_timer.stop()
                if last is not CPState.DISABLED:
                    events.append(CPEvent.CAR_REQUESTED_STOP_POWER)
            self._lock_wanted()
            if changed and self._is_plug_in(last):
                events.append(CPEvent.CAR_PLUGGED_IN)
                self.car_plugged_in = True
                self.simplified_mode = False
            if changed and last in (CPState.E, CPState.F):
                events.append(CPEvent.EF_TO_BCD)
        elif state is CPState.D and not self.config.has_ventilation:
            if changed:
                self._note("state D without ventilation: power stays off")
            self._power_off()
            self._c1_timer.stop()
            self._lock_wanted()
        elif state in (CPState.C, CPState.D):
            self._lock_wanted()
            if changed and self._is_plug_in(last):
                events.append(CPEvent.CAR_PLUGGED_IN)
                self.car_plugged_in = True
                self.simplified_mode = True
                self._note("car went to C without B: simplified mode")
            elif changed and last is CPState.B:
                events.append(CPEvent.CAR_REQUESTED_POWER)
            if changed and last in (CPState.E, CPState.F):
                events.append(CPEvent.EF_TO_BCD)
            events += self._c_power_rules()
        elif state is CPState.E:
            self._unlock_wanted()
            if changed:
                self._power_off()
                self._c1_timer.stop()
                self.pwm_running = False
                self.cp_output = "X1"
                self._board.cp_state_x1()
                if last in (CPState.B, CPState.C, CPState.D):
                    events += [CPEvent.BCD_TO_EF, CPEvent.BCD_TO_E]
        elif state is CPState.F:
            self._c1_timer.stop()
            if changed:
                self._power_off()
                self.pwm_running = False
                self._unlock_timer.start(F_UNLOCK_S)
                if last in (CPState.B, CPState.C, CPState.D):
                    events.append(CPEvent.BCD_TO_EF)

        self.cp = state
        self._last_pwm = self.pwm_running
        self._check_lock()
        for event in events:
            self._on_event(event)

    def _is_plug_in(self, last: CPState) -> bool:
        return last in (CPState.A, CPState.DISABLED) or (last is CPState.F and not self.car_plugged_in)

    def _c_power_rules(self) -> list[CPEvent]:
        """C (or ventilated D): the PWM-off timer and when power may go on."""
        events: list[CPEvent] = []
        if not self.pwm_running and self._last_pwm and self.power_requested:
            # C2 -> C1: the car should open S2; force off if it still draws after 6 s
            self._c1_timer.start_if_idle(C1_POWER_OFF_S)
        if self.pwm_running:
            self._c1_timer.stop()
            if self.power_on_allowed:
                # Table A.6 sequence 4: power on within 3 s; sent on this call, no timer involved
                self._power_on()
            if not self._last_pwm and self.simplified_mode:
                # a simplified-mode car never shows B->C; report its request when PWM starts
                events.append(CPEvent.CAR_REQUESTED_POWER)
        return events

    def _c1_timeout(self) -> None:
        if self.cp in (CPState.C, CPState.D) and not self.pwm_running:
            self._note("PWM off for 6 s and the car stays in C: switching off under load")
            self._power_off()

    def _f_unlock_timeout(self) -> None:
        if self.cp is CPState.F:
            self._unlock_wanted()
            self._check_lock()

    def _check_lock(self) -> None:
        wanted = self.relais_on or (
            self.should_be_locked
            and not self.force_unlocked
            and (self.config.lock_connector_in_state_b or self.authorized or self.cp in (CPState.C, CPState.D))
        )
        if wanted and not self.is_locked:
            self.is_locked = True
            self._lock.lock()
        elif not wanted and self.is_locked:
            self.is_locked = False
            self._lock.unlock()
