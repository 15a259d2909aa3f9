# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The physics of the Tarragon's plug lock: DRV8872 inputs in, lock position and capacitor voltage out."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from everest_bsp.sim.stepper import Stepper
from everest_bsp.sim.tarragon_tree import TarragonTree

log = logging.getLogger(__name__)

ADC_FULL_SCALE_MV = 3300
ADC_MAX = 4095
CAP_DIVIDER = 22 / 90  # capacitor voltage → ADC pin


@dataclass(frozen=True)
class LockPhysics:
    """Numbers of the simulated lock (a Kuester 02S-like motor on 13 V storage capacitors)."""

    travel_s: float = 0.3  # drive time from one end to the other
    locked_mV: float = 400.0  # feedback at the locked end
    unlocked_mV: float = 3100.0  # feedback at the unlocked end
    cap_full_mV: float = 13000.0  # the capacitors charge towards this
    cap_tau_s: float = 0.4  # charging time constant: 10 V after ~0.6 s, 12.5 V after ~1.3 s
    drain_mV_per_s: float = 12000.0  # motor current while driven, against the charging (600 ms from 13 V: 9.3 V)
    min_motor_mV: float = 6000.0  # below this the motor does not turn


class LockMotorSim(Stepper):
    """The plug-lock motor, its feedback potentiometer and its storage capacitors on a :class:`TarragonTree`.

    Inputs are the physical levels of the two driver lines (``MOTOR_1_DRIVER_IN1_N`` is active-low:
    physical low = IN1 active). The DRV8872 truth table gives the motor: IN1 only = forward =
    unlock, IN2 only = backward = lock, both = brake, none = coast.  An input nobody has requested
    is held inactive by the board's pulls (the constructor applies a pull-up to ``IN1_N``).

    Outputs are the raw counts of the sense ADC (``voltage0``: ``locked_mV`` at the locked end,
    ``unlocked_mV`` at the unlocked end, linear in between) and of the capacitor ADC
    (``voltage4``: raw = mV * 22/90 * 4095/3300).  The capacitors charge towards 13 V
    (exponentially) and lose ``drain_mV_per_s`` while the motor is driven; the motor moves only
    above ``min_motor_mV``.

    Two ways to run it:

    - ``step(now_ns)``: a pure step to ``now_ns`` (CLOCK_MONOTONIC ns, or any clock that only moves
      forward). It applies the drive sampled at the previous step to the time since then, and then
      samples the driver lines again; the first call only sets the time base. Call it when the
      driver lines change (a board simulator does on the output events, stepping at the same
      ``now_ns`` is fine) and periodically.
    - ``start(period_s)`` / ``stop()``: an own thread that calls ``step(time.monotonic_ns())``
      every ``period_s``.

    Faults (settable at any time, also while the thread runs): ``jammed`` (the motor turns but the
    lock does not move), ``cap_fault`` (the capacitors never charge, they discharge instead),
    ``set_motor_fault(True)`` (DRV8872 nFAULT: outputs off, ``MOTOR_1_FAULT_N`` pulled low).
    ``move_to(locked)`` moves the lock by hand (for monitoring tests).

    State: ``position`` (0.0 unlocked … 1.0 locked), ``locked``, ``unlocked``, ``cap_mV``,
    ``sense_mV``, ``drive`` ("coast", "forward", "backward", "brake").
    """

    def __init__(
        self,
        tree: TarragonTree,
        *,
        locked: bool = False,
        cap_mV: float = 0.0,
        physics: LockPhysics | None = None,
        in1_line: str = "MOTOR_1_DRIVER_IN1_N",
        in1_active_low: bool = True,
        in2_line: str = "MOTOR_1_DRIVER_IN2",
        in2_active_low: bool = False,
        fault_line: str = "MOTOR_1_FAULT_N",
        sense_channel: str = "voltage0",
        cap_channel: str = "voltage4",
    ) -> None:
        self.tree = tree
        self.physics = physics or LockPhysics()
        self.in1_line, self.in1_active_low = in1_line, in1_active_low
        self.in2_line, self.in2_active_low = in2_line, in2_active_low
        self.fault_line = fault_line
        self.sense_channel = sense_channel
        self.cap_channel = cap_channel
        self.position = 1.0 if locked else 0.0
        self.cap_mV = float(cap_mV)
        self.jammed = False
        self.cap_fault = False
        self.motor_fault = False
        self._last_ns: int | None = None
        self._held = "coast"  # the drive sampled at the last step, applied up to the next one
        self._written: dict[str, int] = {}
        self._mutex = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: BaseException | None = None  # what ended the thread, if anything did
        # the board's pulls keep the driver inputs inactive while nobody drives them
        tree.set_input(in1_line, in1_active_low)
        tree.set_input(in2_line, in2_active_low)
        tree.set_input(fault_line, True)
        self._write()

    # -- what the board sees ------------------------------------------------------------------------
    @property
    def drive(self) -> str:
        in1 = self.tree.level(self.in1_line) != self.in1_active_low
        in2 = self.tree.level(self.in2_line) != self.in2_active_low
        return {(False, False): "coast", (True, False): "forward", (False, True): "backward"}.get((in1, in2), "brake")

    @property
    def locked(self) -> bool:
        return self.position >= 1.0

    @property
    def unlocked(self) -> bool:
        return self.position <= 0.0

    @property
    def sense_mV(self) -> float:
        p = self.physics
        return p.unlocked_mV + (p.locked_mV - p.unlocked_mV) * self.position

    # -- faults and hands ---------------------------------------------------------------------------
    def set_motor_fault(self, active: bool) -> None:
        with self._mutex:
            self.motor_fault = active
            self.tree.set_input(self.fault_line, not active)  # nFAULT is active-low

    def move_to(self, locked: bool) -> None:
        with self._mutex:
            self.position = 1.0 if locked else 0.0
            self._write()

    # -- time -------------------------------------------------------------------------------------
    def step(self, now_ns: int) -> None:
        """Advance to ``now_ns`` with the drive sampled at the previous step, then sample the drive."""
        with self._mutex:
            if self._last_ns is not None and now_ns > self._last_ns:
                self._advance((now_ns - self._last_ns) / 1e9, self._held)
            if self._last_ns is None or now_ns > self._last_ns:
                self._last_ns = now_ns
            self._held = "coast" if self.motor_fault else self.drive
            self._write()

    def _advance(self, dt: float, drive: str) -> None:
        p = self.physics
        driving = drive in ("forward", "backward") and not self.motor_fault
        strong_enough = self.cap_mV >= p.min_motor_mV
        target = 0.0 if self.cap_fault else p.cap_full_mV
        self.cap_mV += (target - self.cap_mV) * (1.0 - math.exp(-dt / p.cap_tau_s))
        if driving:
            self.cap_mV = max(0.0, self.cap_mV - p.drain_mV_per_s * dt)
            if strong_enough and not self.jammed:
                delta = dt / p.travel_s
                self.position = min(1.0, max(0.0, self.position + (delta if drive == "backward" else -delta)))

    def start(self, period_s: float = 0.005) -> LockMotorSim:
        self._start_thread(period_s, "lock-sim")
        return self

    def _loop(self, period_s: float) -> None:
        try:
            while not self._stop.wait(period_s):
                self.step(time.monotonic_ns())
        except Exception as err:  # the owner reads .error
            log.exception("the lock simulation stopped")
            self.error = err

    def _write(self) -> None:
        p_raw = round(self.sense_mV * ADC_MAX / ADC_FULL_SCALE_MV)
        c_raw = round(self.cap_mV * CAP_DIVIDER * ADC_MAX / ADC_FULL_SCALE_MV)
        for channel, value in ((self.sense_channel, p_raw), (self.cap_channel, c_raw)):
            raw = max(0, min(ADC_MAX, value))
            if self._written.get(channel) != raw:
                self.tree.write_adc(channel, raw)
                self._written[channel] = raw
