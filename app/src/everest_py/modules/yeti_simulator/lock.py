# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated connector lock: a motor that needs a moment to lock or unlock."""

from __future__ import annotations

from dataclasses import dataclass

MOTOR_S = 0.3


@dataclass
class ConnectorLock:
    """``locked`` is the position reached; a move started by lock()/unlock() ends MOTOR_S later in step()."""

    locked: bool = False
    target: bool = False
    done_at: float | None = None

    @property
    def moving(self) -> bool:
        return self.done_at is not None

    def _move(self, target: bool, now: float) -> None:
        if target == self.target and (self.moving or self.locked == target):
            return
        self.target = target
        self.done_at = now + MOTOR_S

    def lock(self, now: float) -> None:
        self._move(True, now)

    def unlock(self, now: float) -> None:
        self._move(False, now)

    def step(self, now: float) -> bool | None:
        """Finish a move that is due; returns the new position then, None otherwise."""
        if self.done_at is None or now < self.done_at:
            return None
        self.done_at = None
        self.locked = self.target
        return self.locked
