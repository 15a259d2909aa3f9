# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A simulation that steps in its own thread: the start/stop both board and lock simulations share."""

from __future__ import annotations

import threading
import time


class Stepper:
    """Subclasses set ``_thread = None`` and ``_stop = Event()`` and provide ``step`` and ``_loop``."""

    _thread: threading.Thread | None
    _stop: threading.Event

    def step(self, now_ns: int) -> None:
        raise NotImplementedError

    def _loop(self, period_s: float) -> None:
        raise NotImplementedError

    def _start_thread(self, period_s: float, name: str) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{name} already runs")
        self._stop.clear()
        self.step(time.monotonic_ns())
        self._thread = threading.Thread(target=self._loop, args=(period_s,), name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
