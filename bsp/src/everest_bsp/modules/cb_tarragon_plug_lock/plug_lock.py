# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The plug-lock sequence: wait for the storage capacitors, drive, brake, check the feedback (chargebyte-hw.md §4).

The logic is asynchronous and does no I/O of its own: the motor lines and the two ADC channels come
in as :class:`LockHardware`, time as :class:`Clock` (so tests step a simulated lock with a fake
clock), and errors leave through :class:`ErrorPort`.  Every wait is an ``await`` of the clock: the
event loop is never blocked for longer than one GPIO write or one ADC read.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Protocol

from everest_py.errors import HardwareError

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

CAP_NOT_CHARGED = "connector_lock/ConnectorLockCapNotCharged"
UNEXPECTED_OPEN = "connector_lock/ConnectorLockUnexpectedOpen"
UNEXPECTED_CLOSE = "connector_lock/ConnectorLockUnexpectedClose"
FAILED_LOCK = "connector_lock/ConnectorLockFailedLock"
FAILED_UNLOCK = "connector_lock/ConnectorLockFailedUnlock"

ADC_FULL_SCALE_MV = 3300  # 12-bit ADC, 3.3 V reference
ADC_MAX = 4095
CAP_DIVIDER = (90, 22)  # the capacitor voltage reaches the ADC through a 22/90 divider


class Motor(enum.Enum):
    """DRV8872 input pairs (logical IN1, IN2); the polarity of each line is the line request's business."""

    COAST = (False, False)  # outputs off: the storage capacitors charge
    FORWARD = (True, False)  # unlock
    BACKWARD = (False, True)  # lock
    BRAKE = (True, True)  # low-side brake after every drive

    @property
    def in1(self) -> bool:
        return self.value[0]

    @property
    def in2(self) -> bool:
        return self.value[1]


class Position(enum.Enum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    BETWEEN = "neither locked nor unlocked"


def sense_mV(raw: int) -> int:
    """Feedback voltage at the ADC pin."""
    return raw * ADC_FULL_SCALE_MV // ADC_MAX


def cap_mV(raw: int) -> int:
    """Storage-capacitor voltage (before the divider)."""
    num, den = CAP_DIVIDER
    return raw * ADC_FULL_SCALE_MV * num // (ADC_MAX * den)


class LockHardware(Protocol):
    def drive(self, motor: Motor) -> None: ...

    def sense_mV(self) -> int: ...

    def cap_mV(self) -> int: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class ErrorPort(Protocol):
    """Raise and clear errors of the ``connector_lock`` implementation (idempotent on the bus side)."""

    def raise_error(self, error_type: str, message: str, severity: str) -> None: ...

    def clear_error(self, error_type: str) -> None: ...


class AsyncioClock:
    """The running loop's clock."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class LockSettings:
    actuator_duration_ms: int = 600
    unlocked_min_mV: int = 2900
    unlocked_max_mV: int = 3300
    locked_min_mV: int = 0
    locked_max_mV: int = 850
    charged_mV: int = 10000
    monitoring: bool = False
    cap_poll_s: float = 0.1
    cap_timeout_s: float = 5.0
    cap_startup_timeout_s: float = 400.0  # after power-up the capacitors start empty

    def position(self, mV: int) -> Position:
        if self.locked_min_mV <= mV <= self.locked_max_mV:
            return Position.LOCKED
        if self.unlocked_min_mV <= mV <= self.unlocked_max_mV:
            return Position.UNLOCKED
        return Position.BETWEEN


class PlugLock:
    """One lock motor. ``lock``/``unlock`` run one at a time; ``check`` is the 1 s supervision pass."""

    def __init__(self, hw: LockHardware, settings: LockSettings, clock: Clock, errors: ErrorPort, log: Log) -> None:
        self.hw = hw
        self.settings = settings
        self.clock = clock
        self.errors = errors
        self.log = log
        self.assumed_locked: bool | None = None  # the position last commanded (None before the first)
        self.active: set[str] = set()
        self._mutex = asyncio.Lock()
        self._halted = False

    @property
    def busy(self) -> bool:
        return self._mutex.locked()

    def halted(self) -> bool:
        """In the safe state (a method: it changes while a sequence awaits, narrowing must not stick)."""
        return self._halted

    # -- commands ---------------------------------------------------------------------------------
    async def start(self) -> bool:
        """At start-up: unlock, waiting up to ``cap_startup_timeout_s`` for the capacitors."""
        return await self._actuate(False, startup=True)

    async def lock(self) -> bool:
        return await self._actuate(True)

    async def unlock(self) -> bool:
        return await self._actuate(False)

    def halt(self) -> None:
        """Safe state: motor off (coast) now, and no further drive."""
        self._halted = True
        self._drive(Motor.COAST)

    # -- supervision ------------------------------------------------------------------------------
    def check(self) -> None:
        """Clear errors whose condition went away; with monitoring, compare the position to the command."""
        if self.halted() or self.busy:
            return
        try:
            if CAP_NOT_CHARGED in self.active and self.hw.cap_mV() >= self.settings.charged_mV:
                self.log.info("storage capacitors charged again")
                self._clear(CAP_NOT_CHARGED)
            if not self.settings.monitoring or self.assumed_locked is None:
                return
            mV = self.hw.sense_mV()
        except HardwareError as err:
            self.log.warning("lock supervision: %s", err)
            return
        pos = self.settings.position(mV)
        if self.assumed_locked:
            if pos is Position.LOCKED:
                self._clear(UNEXPECTED_OPEN)
                self._clear(FAILED_LOCK)
            elif FAILED_LOCK not in self.active:
                self._raise(UNEXPECTED_OPEN, f"lock should be locked but feedback is {pos.value} ({mV} mV)", "High")
        elif pos is Position.UNLOCKED:
            self._clear(UNEXPECTED_CLOSE)
            self._clear(FAILED_UNLOCK)
        elif FAILED_UNLOCK not in self.active:
            self._raise(UNEXPECTED_CLOSE, f"lock should be unlocked but feedback is {pos.value} ({mV} mV)", "High")

    # -- the sequence ---------------------------------------------------------------------------------
    async def _actuate(self, locking: bool, startup: bool = False) -> bool:
        what = "lock" if locking else "unlock"
        async with self._mutex:
            if self.halted():
                self.log.warning("%s refused: the module is in its safe state", what)
                return False
            try:
                return await self._sequence(locking, startup)
            except HardwareError as err:
                self._drive(Motor.COAST)
                self.assumed_locked = locking
                failed = FAILED_LOCK if locking else FAILED_UNLOCK
                self._raise(failed, f"{what} failed: {err}", "Medium")
                return False

    async def _sequence(self, locking: bool, startup: bool) -> bool:
        s = self.settings
        what = "lock" if locking else "unlock"
        timeout = s.cap_startup_timeout_s if startup else s.cap_timeout_s
        charged, mV = await self._wait_charged(timeout)
        if self.halted():
            return False
        if not charged:
            self._raise(
                CAP_NOT_CHARGED,
                f"storage capacitors at {mV} mV after {timeout:g} s, {s.charged_mV} mV needed to {what}",
                "High" if startup else "Medium",
            )
            return False
        self._clear(CAP_NOT_CHARGED)
        self._drive(Motor.BACKWARD if locking else Motor.FORWARD)
        try:
            await self.clock.sleep(s.actuator_duration_ms / 1000)
        finally:
            self._drive(Motor.COAST if self.halted() else Motor.BRAKE)
        if self.halted():
            return False
        self.assumed_locked = locking
        feedback = self.hw.sense_mV()
        pos = s.position(feedback)
        wanted = Position.LOCKED if locking else Position.UNLOCKED
        if pos is not wanted:
            failed = FAILED_LOCK if locking else FAILED_UNLOCK
            self._raise(failed, f"{what} failed: feedback is {pos.value} ({feedback} mV)", "Medium")
            return False
        self.log.info("%s (feedback %d mV)", "locked" if locking else "unlocked", feedback)
        # the connector is where it was sent: older complaints about the position are void; a failed
        # unlock stays until an unlock succeeds (the plug may still be stuck for the user)
        for error in (UNEXPECTED_OPEN, UNEXPECTED_CLOSE, FAILED_LOCK):
            self._clear(error)
        if not locking:
            self._clear(FAILED_UNLOCK)
        return True

    async def _wait_charged(self, timeout_s: float) -> tuple[bool, int]:
        deadline = self.clock.monotonic() + timeout_s
        told = False
        while True:
            mV = self.hw.cap_mV()
            if mV >= self.settings.charged_mV:
                return True, mV
            if self.halted() or self.clock.monotonic() >= deadline:
                return False, mV
            if not told:
                self.log.info("waiting for the storage capacitors (%d of %d mV)", mV, self.settings.charged_mV)
                told = True
            await self.clock.sleep(self.settings.cap_poll_s)

    # -- helpers ----------------------------------------------------------------------------------
    def _drive(self, motor: Motor) -> None:
        try:
            self.hw.drive(motor)
        except HardwareError as err:
            self.log.error("cannot set the lock motor to %s: %s", motor.name.lower(), err)

    def _raise(self, error_type: str, message: str, severity: str) -> None:
        if error_type not in self.active:
            self.active.add(error_type)
            self.log.warning("%s: %s", error_type.split("/", 1)[1], message)
            self.errors.raise_error(error_type, message, severity)

    def _clear(self, error_type: str) -> None:
        if error_type in self.active:
            self.active.discard(error_type)
            self.log.info("%s cleared", error_type.split("/", 1)[1])
            self.errors.clear_error(error_type)
