# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Time for the EvseManager logic: a clock protocol, the asyncio clock, a manual clock for tests, one-shot timers."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds, wall-clock time and delayed callbacks."""

    def monotonic(self) -> float: ...

    def utc_now(self) -> datetime: ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Handle: ...


class AsyncioClock:
    """The running event loop's clock; a callback that raises is handed to ``on_error``."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def utc_now(self) -> datetime:
        return datetime.now(UTC)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Handle:
        def run() -> None:
            try:
                callback()
            except Exception as err:  # noqa: BLE001 - crash-only: the module turns it into a stack stop
                self._on_error(err)

        return asyncio.get_running_loop().call_later(max(0.0, delay_s), run)


class _ManualHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to (``advance``); callbacks run in due order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = 0.0
        self._start = start or datetime(2025, 1, 1, tzinfo=UTC)
        self._queue: list[tuple[float, int, _ManualHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def utc_now(self) -> datetime:
        return self._start + timedelta(seconds=self._now)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Handle:
        handle = _ManualHandle()
        heapq.heappush(self._queue, (self._now + max(0.0, delay_s), next(self._seq), handle, callback))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time forward, running every callback that falls due on the way."""
        end = self._now + seconds
        while self._queue and self._queue[0][0] <= end:
            due, _, handle, callback = heapq.heappop(self._queue)
            self._now = max(self._now, due)
            if not handle.cancelled:
                callback()
        self._now = end

    def pending(self) -> int:
        return sum(1 for entry in self._queue if not entry[2].cancelled)


class Timer:
    """A restartable one-shot timer on a :class:`Clock`."""

    def __init__(self, clock: Clock, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._handle: Handle | None = None
        self.deadline: float | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self, delay_s: float) -> None:
        """(Re)start: fire ``delay_s`` from now."""
        self.stop()
        self.deadline = self._clock.monotonic() + delay_s
        self._handle = self._clock.call_later(delay_s, self._fire)

    def start_if_idle(self, delay_s: float) -> None:
        if self._handle is None:
            self.start(delay_s)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self.deadline = None

    def _fire(self) -> None:
        self._handle = None
        self.deadline = None
        self._callback()
