# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""PWM towards the IEC machine: the duty cycle for a current, the 5 s update rule, X1, and F after a fault."""

from __future__ import annotations

from collections.abc import Callable

from everest_py.modules.evse_manager.clock import Clock, Timer
from everest_py.modules.evse_manager.energy import Energy
from everest_py.modules.evse_manager.iec import IECStateMachine, ampere_to_duty_cycle

IEC_PWM_MAX_UPDATE_INTERVAL_S = 5.0  # basic charging: change the duty cycle at most this often


class PwmControl:
    """The charger's CP output; ``on_change`` runs when a deferred update or the F hold time is due."""

    def __init__(self, iec: IECStateMachine, energy: Energy, clock: Clock, on_change: Callable[[], None]) -> None:
        self.iec = iec
        self.energy = energy
        self.clock = clock
        self.on_change = on_change
        self.percent: float | None = None  # None: X1 or F
        self.ampere = 0.0  # the current the PWM signals (0 without PWM)
        self._last_update = -IEC_PWM_MAX_UPDATE_INTERVAL_S
        self._retry = Timer(clock, on_change)
        self.fault_f = False  # F after a fault is held for its minimum time
        self._fault_timer = Timer(clock, self._fault_over)

    def set(self, ampere: float) -> None:
        """Nominal PWM for ``ampere`` now (not while F after a fault is held)."""
        if self.fault_f:
            return
        self._retry.stop()
        self.percent = ampere_to_duty_cycle(ampere)
        self.ampere = ampere
        self._last_update = self.clock.monotonic()
        self.iec.set_pwm(self.percent)

    def now_if_changed(self) -> None:
        """PWM for the present current limit, at once if it differs."""
        ampere = self.energy.current_limit()
        if ampere_to_duty_cycle(ampere) != self.percent:
            self.set(ampere)

    def rate_limited(self) -> None:
        """Follow the current limit, changing the duty cycle at most every 5 s (IEC 61851-1); a change that
        has to wait is applied by a timer."""
        ampere = self.energy.current_limit()
        if ampere_to_duty_cycle(ampere) == self.percent:
            self._retry.stop()
            return
        wait = self._last_update + IEC_PWM_MAX_UPDATE_INTERVAL_S - self.clock.monotonic()
        if wait <= 0:
            self.set(ampere)
        else:
            self._retry.start_if_idle(wait)

    def off(self) -> None:
        """X1 (no PWM), unless it is X1 already or F after a fault is held."""
        self._retry.stop()
        self.percent = None
        self.ampere = 0.0
        if not self.fault_f and self.iec.cp_output != "X1":
            self.iec.set_x1()

    def f(self) -> None:
        """State F."""
        self._retry.stop()
        self.percent = None
        self.ampere = 0.0
        if self.iec.cp_output != "F":
            self.iec.set_f()

    def hold_f(self, seconds: float) -> None:
        """State F for at least ``seconds`` (after a fault), then X1."""
        self.f()
        self.fault_f = True
        self._fault_timer.start(seconds)

    def _fault_over(self) -> None:
        self.fault_f = False
        self.iec.set_x1()
        self.on_change()

    def signalled(self) -> float:
        """Ampere the car may draw now: what the PWM signals, 0 without PWM."""
        return self.ampere if self.iec.pwm_running else 0.0
