# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonDIs: opens the reference PWM at init and sets the digital-input threshold once."""

from __future__ import annotations

from dataclasses import dataclass

from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.modules.cb_tarragon_dis import threshold
from everest_bsp.tarragon.hardware import with_wait
from everest_py.framework.module import Module


@dataclass(frozen=True)
class DIsConfig:
    pwm_device: str
    pwmchannel: int
    threshold_voltage: int
    hal_root: str


class CbTarragonDIs(Module):
    """One-shot: nothing is published and nothing can be called (``empty``)."""

    Config = DIsConfig
    config: DIsConfig

    async def init(self) -> None:
        cfg = self.config
        # a missing device raises NotFoundError (a HardwareError) after the wait: the stack stops
        pwm = await with_wait(lambda: SysfsPwm.open(cfg.hal_root, cfg.pwm_device, cfg.pwmchannel), self.log)
        duty = threshold.apply(pwm, cfg.threshold_voltage)
        self.log.info(
            "digital inputs switch at %d mV (%s: %d/%d ns)",
            cfg.threshold_voltage,
            cfg.pwm_device,
            duty,
            threshold.PERIOD_NS,
        )
