# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The script executor: runs parsed steps against a :class:`Car`, one clock tick at a time.

Each :meth:`ScriptRunner.tick` runs steps until one has to wait: ``sleep`` until its time is
up, ``iec_wait_pwr_ready`` until the EVSE shows a nominal PWM, ``wait_for_real_plugin`` until
the board reports a car. Every other command acts at once. Time is whatever ``now`` the caller
passes (monotonic seconds), so tests drive it by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from everest_py.modules.ev_manager.car import Car
from everest_py.modules.ev_manager.script import Step


class ScriptRunner:
    def __init__(
        self,
        car: Car,
        steps: Sequence[Step],
        *,
        repeat: bool = False,
        plugin_steps: Sequence[Step] = (),
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        self.car = car
        self.repeat = repeat
        self.plugin_steps = list(plugin_steps)
        self._script = list(steps)
        self.steps = list(steps)
        self.index = 0
        self._started: float | None = None  # when the current step began
        self._on_step = on_step

    @property
    def finished(self) -> bool:
        return self.index >= len(self.steps) and not self.repeat

    @property
    def current(self) -> Step | None:
        return self.steps[self.index] if self.index < len(self.steps) else None

    def replace(self, steps: Sequence[Step]) -> None:
        """Drop what is left (the waiting step too) and go on with ``steps``; the car keeps its state."""
        self._script = list(steps)
        self.steps = list(steps)
        self.index = 0
        self._started = None

    def tick(self, now: float) -> None:
        wrapped = False
        while True:
            if self.index >= len(self.steps):
                if not self.repeat or wrapped or not self._script:
                    return
                self.steps, self.index, wrapped = list(self._script), 0, True
            step = self.steps[self.index]
            if self._started is None:
                self._started = now
                if self._on_step is not None:
                    self._on_step(step)
                self._begin(step)
            if not self._done(step, now - self._started):
                return
            self.index += 1
            self._started = None

    def _begin(self, step: Step) -> None:
        car, args = self.car, step.args
        match step.name:
            case "iec_wait_pwr_ready" | "plugin":
                car.plug_in()
                if step.name == "plugin":
                    self.steps[self.index + 1 : self.index + 1] = self.plugin_steps
            case "draw_power_regulated":
                car.draw_regulated(args[0], int(args[1]))
            case "draw_power_fixed":
                car.draw_fixed(args[0], int(args[1]))
            case "pause":
                car.pause()
            case "unplug":
                car.unplug()
            case "error_e":
                car.error_e()
            case "diode_fail":
                car.diode_fail()
            case "rcd_current":
                car.rcd_current(args[0])
            case "set_soc":
                car.set_soc(args[0])
            case "sleep" | "wait_for_real_plugin":
                pass
            case _:
                raise ValueError(f"no executor for {step.name}")  # the parser lets no such step through

    def _done(self, step: Step, elapsed: float) -> bool:
        match step.name:
            case "sleep":
                return elapsed >= step.args[0]
            case "iec_wait_pwr_ready":
                return self.car.pwm_ready
            case "wait_for_real_plugin":
                if not self.car.board_sees_car:
                    return False
                self.car.plug_in()
                return True
            case _:
                return True
