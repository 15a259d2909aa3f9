# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Time for the Auth logic: a clock and one-shot timers, replaceable by a fake in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    def now(self) -> datetime:
        """The current UTC time (reservations expire at wall-clock times)."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once after ``delay_s`` seconds unless the returned timer is cancelled."""
        ...


class AsyncioTimers:
    """Timers of the running asyncio loop and the system's UTC clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay_s), callback)
