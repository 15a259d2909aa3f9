# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Contactor policy of the Tarragon: wiring modes, close spacing, feedback supervision, fault latch.

The C core (cp_core) holds the safety floor: it refuses to close unless the pilot is in C/D and
opens by itself on faults.  This controller decides *which* relays to switch for the configured
phase-switch wiring (chargebyte-hw.md §2.6), keeps 10 s between two closings (relay wear), checks
that each feedback contact follows its actuator within 250 ms, and latches a contactor fault:
after a fault every further power-on is refused until the process restarts.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

R1 = 0x1
R2 = 0x2
CLOSE_SPACING_S = 10.0  # at most 6 closings a minute, counted from process start
FEEDBACK_WINDOW_S = 0.25
FEEDBACK_POLL_S = 0.005
SUPERVISE_S = 0.05  # a contact that leaves its coil's state is caught within the window plus this


class Wiring(enum.Enum):
    NONE = "none"
    SERIAL = "serial"
    SIMULTANEOUS = "simultaneous"
    MUTUAL = "mutual"


class RelayPort(Protocol):
    """The relays as the controller sees them (the C core plus the line requests)."""

    def close(self, mask: int) -> str | None:
        """Close the relays in ``mask``; a reason string when the core refuses."""

    def open(self, mask: int) -> None: ...

    def actuator(self, index: int) -> bool: ...

    def feedback(self, index: int) -> bool | None:
        """Logical feedback (True = closed) or None when the relay has no feedback contact."""


@dataclass
class Relay:
    name: str
    present: bool
    has_feedback: bool


def close_plan(wiring: Wiring, three_phase: bool) -> list[int]:
    """Masks to close, in order (each step waits for its feedback except serial's first)."""
    if wiring is Wiring.NONE or (not three_phase and wiring in (Wiring.SERIAL, Wiring.SIMULTANEOUS)):
        return [R1]
    if wiring is Wiring.SERIAL:
        return [R2, R1]
    if wiring is Wiring.SIMULTANEOUS:
        return [R1 | R2]
    return [R1] if three_phase else [R2]  # mutual: R1 switches all phases, R2 a single one


def state_mask(wiring: Wiring) -> int:
    """Relays whose closed state means 'power on'."""
    return R1 if wiring in (Wiring.NONE, Wiring.SERIAL) else R1 | R2


class RelayController:
    """Reconciles the requested power state with the relays; runs as one asyncio task."""

    def __init__(
        self,
        port: RelayPort,
        relays: tuple[Relay, Relay],
        wiring: Wiring,
        on_power: Callable[[bool], None],
        on_fault: Callable[[str], None],
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
        *,
        close_spacing_s: float = CLOSE_SPACING_S,
        feedback_window_s: float = FEEDBACK_WINDOW_S,
    ) -> None:
        self.port = port
        self.relays = relays
        self.wiring = wiring
        self.on_power = on_power
        self.on_fault = on_fault
        self.log = log
        self.close_spacing_s = close_spacing_s
        self.feedback_window_s = feedback_window_s
        self.three_phase = True
        self.fault: str | None = None
        self.powered = False
        self._desired = False
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._now = loop.time
        self._last_close = self._now()  # the spacing counts from start: the relay may have just opened
        self._settle_until = [0.0, 0.0]  # per relay: until then a feedback mismatch is a transition
        self._mismatch_since: list[float | None] = [None, None]

    @property
    def all_mask(self) -> int:
        return (R1 if self.relays[0].present else 0) | (R2 if self.relays[1].present else 0)

    # -- requests ----------------------------------------------------------------------------------
    def request(self, on: bool) -> str | None:
        """Ask for power on/off; a reason when power-on is refused at once."""
        if on and self.fault is not None:
            return f"contactor fault latched ({self.fault})"
        self._desired = on
        self._wake.set()
        return None

    def forced_off(self, mask: int) -> None:
        """The core opened the relays on its own (fault, pilot change, trip)."""
        self._desired = False
        now = self._now()
        for i in range(2):
            if mask & (1 << i):
                self._settle_until[i] = now + self.feedback_window_s
        if self.powered:
            self.powered = False
            self.on_power(False)
        self._wake.set()

    def feedback_changed(self, index: int) -> None:
        """A debounced edge on a feedback line: check it now rather than at the next round."""
        self._supervise_one(index)

    # -- the task ----------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._desired and not self.powered and self.fault is None:
                await self._close()
            elif not self._desired and (self.powered or self._any_actuator()):
                await self._open()

    def _any_actuator(self) -> bool:
        return any(self.port.actuator(i) for i in range(2) if self.relays[i].present)

    async def _close(self) -> None:
        wait = self._last_close + self.close_spacing_s - self._now()
        if wait > 0:
            self.log.warning(
                "closing the contactor in %.1f s (at most one closing per %g s)", wait, self.close_spacing_s
            )
            try:
                await asyncio.wait_for(self._until_off_requested(), wait)
                self.log.info("power-on aborted: power-off requested while waiting")
                return
            except TimeoutError:
                pass
        plan = close_plan(self.wiring, self.three_phase)
        for step, mask in enumerate(plan):
            refused = self.port.close(mask)
            if refused is not None:
                self.log.warning("power-on refused: %s", refused)
                self._desired = False
                self.port.open(self.all_mask)
                return
            self._last_close = self._now()
            for i in _bits(mask):
                self._settle_until[i] = self._now() + self.feedback_window_s
            if self.wiring is Wiring.SERIAL and step == 0 and len(plan) > 1:
                continue  # serial: R2 closes without load, its feedback is checked with R1's
            if not await self._confirm(_mask_up_to(plan, step), closed=True):
                return
        if not self._desired:  # power-off came in while switching
            await self._open()
            return
        self.powered = True
        self.on_power(True)

    async def _until_off_requested(self) -> None:
        while self._desired:
            await self._wake.wait()
            self._wake.clear()

    async def _open(self) -> None:
        mask = self.all_mask
        self.port.open(mask)
        for i in _bits(mask):
            self._settle_until[i] = self._now() + self.feedback_window_s
        was = self.powered
        self.powered = False
        if was:
            self.on_power(False)
        await self._confirm(mask, closed=False)

    async def _confirm(self, mask: int, *, closed: bool) -> bool:
        """Wait up to the feedback window for every relay in ``mask`` to report ``closed``."""
        deadline = self._now() + self.feedback_window_s
        while True:
            if closed and not all(self.port.actuator(i) for i in _bits(mask)):
                return False  # the core opened the relay meanwhile (pilot change, fault, trip): no contactor fault
            wrong = [i for i in _bits(mask) if self.port.feedback(i) not in (None, closed)]
            if not wrong:
                return True
            if self._now() >= deadline:
                names = ", ".join(self.relays[i].name for i in wrong)
                self._latch(
                    f"{names} did not {'close' if closed else 'open'} within {self.feedback_window_s * 1000:.0f} ms"
                )
                return False
            await asyncio.sleep(FEEDBACK_POLL_S)

    # -- supervision -------------------------------------------------------------------------------
    def check_consistent(self) -> None:
        """At start: every actuator and its feedback must agree (else the wiring config is wrong)."""
        for i, relay in enumerate(self.relays):
            fb = self.port.feedback(i) if relay.present else None
            if fb is not None and fb != self.port.actuator(i):
                self._latch(
                    f"{relay.name}: feedback reads {'closed' if fb else 'open'} while the actuator is "
                    f"{'on' if self.port.actuator(i) else 'off'}; check contactor_*_feedback_type"
                )

    async def supervise(self) -> None:
        """Every contact must follow its coil; a mismatch outside a switching window is a fault."""
        while True:
            for i in range(2):
                self._supervise_one(i)
            await asyncio.sleep(SUPERVISE_S)

    def _supervise_one(self, index: int) -> None:
        relay = self.relays[index]
        fb = self.port.feedback(index) if relay.present and relay.has_feedback else None
        if fb is None or fb == self.port.actuator(index):
            self._mismatch_since[index] = None
            return
        now = self._now()
        since = self._mismatch_since[index]
        if since is None:
            self._mismatch_since[index] = now
            return
        if now - since >= self.feedback_window_s and now >= self._settle_until[index] and self.fault is None:
            self._latch(f"{relay.name}: feedback reads {'closed' if fb else 'open'} on its own")

    def _latch(self, reason: str) -> None:
        first = self.fault is None
        if first:
            self.fault = reason
            self.log.error("contactor fault: %s; power-on refused until restart", reason)
        self._desired = False
        self.port.open(self.all_mask)
        if self.powered:
            self.powered = False
            self.on_power(False)
        if first:
            self.on_fault(reason)


def _bits(mask: int) -> list[int]:
    return [i for i in range(2) if mask & (1 << i)]


def _mask_up_to(plan: list[int], step: int) -> int:
    m = 0
    for x in plan[: step + 1]:
        m |= x
    return m
