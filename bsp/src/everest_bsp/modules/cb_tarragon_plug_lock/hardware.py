# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The lock's lines and ADC channels through the HAL: one request for both motor inputs, two ADC channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from everest_bsp.hal.gpio import LineRequest, LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.modules.cb_tarragon_plug_lock import plug_lock
from everest_bsp.modules.cb_tarragon_plug_lock.plug_lock import Motor

CONSUMER = "plug lock"


class LockLines:
    """:class:`plug_lock.LockHardware` on a board (or a simulated board's tree)."""

    def __init__(self, motor: LineRequest, in1: str, in2: str, sense: AdcChannel, cap: AdcChannel) -> None:
        self.motor = motor
        self.in1 = in1
        self.in2 = in2
        self.sense = sense
        self.cap = cap

    @classmethod
    def open(cls, cfg: Any) -> LockLines:
        """Open what a CbTarragonPlugLock config names; the motor starts in coast (both inputs inactive)."""
        root = Path(cfg.hal_root)
        in1, in2 = cfg.drv8872_in1_gpio_line_name, cfg.drv8872_in2_gpio_line_name
        sense = AdcChannel.open(root, cfg.sense_adc_device, cfg.sense_adc_channel)
        try:
            cap = AdcChannel.open(root, cfg.capcharge_adc_device, cfg.capcharge_adc_channel)
        except BaseException:
            sense.close()
            raise
        try:
            motor = request_lines(
                root,
                CONSUMER,
                {
                    in1: LineSettings(output=True, active_low=cfg.drv8872_in1_active_low, value=False),
                    in2: LineSettings(output=True, active_low=cfg.drv8872_in2_active_low, value=False),
                },
            )
        except BaseException:
            sense.close()
            cap.close()
            raise
        return cls(motor, in1, in2, sense, cap)

    def drive(self, motor: Motor) -> None:
        self.motor.set_many({self.in1: motor.in1, self.in2: motor.in2})

    def sense_mV(self) -> int:
        return plug_lock.sense_mV(self.sense.read_raw())

    def cap_mV(self) -> int:
        return plug_lock.cap_mV(self.cap.read_raw())

    def close(self) -> None:
        self.motor.release()
        self.sense.close()
        self.cap.close()
