# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonPlugLock: the bus adapter of :class:`PlugLock` (connector_lock commands, errors out)."""

from __future__ import annotations

from dataclasses import dataclass

from everest_bsp.modules.cb_tarragon_plug_lock.hardware import LockLines
from everest_bsp.modules.cb_tarragon_plug_lock.plug_lock import AsyncioClock, LockSettings, PlugLock
from everest_bsp.tarragon.hardware import with_wait
from everest_py.framework.module import Module, command

IMPL = "connector_lock"
CHECK_S = 1.0  # supervision period (chargebyte's monitor thread)


@dataclass(frozen=True)
class PlugLockConfig:
    sense_adc_device: str
    sense_adc_channel: str
    actuator_duration: int
    unlocked_threshold_voltage_min: int
    unlocked_threshold_voltage_max: int
    locked_threshold_voltage_min: int
    locked_threshold_voltage_max: int
    drv8872_in1_gpio_line_name: str
    drv8872_in2_gpio_line_name: str
    drv8872_in1_active_low: bool
    drv8872_in2_active_low: bool
    capcharge_adc_device: str
    capcharge_adc_channel: str
    charged_threshold_voltage: int
    enable_monitoring: bool
    hal_root: str

    def settings(self) -> LockSettings:
        return LockSettings(
            actuator_duration_ms=self.actuator_duration,
            unlocked_min_mV=self.unlocked_threshold_voltage_min,
            unlocked_max_mV=self.unlocked_threshold_voltage_max,
            locked_min_mV=self.locked_threshold_voltage_min,
            locked_max_mV=self.locked_threshold_voltage_max,
            charged_mV=self.charged_threshold_voltage,
            monitoring=self.enable_monitoring,
        )


class _Errors:
    def __init__(self, module: Module) -> None:
        self._m = module

    def raise_error(self, error_type: str, message: str, severity: str) -> None:
        self._m.errors(IMPL).raise_error(error_type, "", message, severity)

    def clear_error(self, error_type: str) -> None:
        self._m.errors(IMPL).clear_error(error_type)


class CbTarragonPlugLock(Module):
    Config = PlugLockConfig
    config: PlugLockConfig

    _lines: LockLines | None = None
    _lock: PlugLock | None = None

    @property
    def plug_lock(self) -> PlugLock:
        if self._lock is None:
            raise RuntimeError("the plug lock is not set up yet")
        return self._lock

    async def init(self) -> None:
        cfg = self.config
        self._lines = await with_wait(lambda: LockLines.open(cfg), self.log)
        self._lock = PlugLock(self._lines, cfg.settings(), AsyncioClock(), _Errors(self), self.log)

    async def ready(self) -> None:
        self.spawn(self._run(), "plug lock")

    async def _run(self) -> None:
        # the lock is unlocked first, as on chargebyte's board (a plug may be stuck from before a reboot)
        await self.plug_lock.start()
        clock = self.plug_lock.clock
        while True:
            await clock.sleep(CHECK_S)
            self.plug_lock.check()

    def safe_state(self) -> None:
        if self._lock is not None:
            self._lock.halt()

    async def shutdown(self) -> None:
        if self._lines is not None:
            self._lines.close()
            self._lines = None

    @command(IMPL)
    async def lock(self) -> None:
        await self.plug_lock.lock()

    @command(IMPL)
    async def unlock(self) -> None:
        await self.plug_lock.unlock()
