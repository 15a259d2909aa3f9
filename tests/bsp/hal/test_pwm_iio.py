# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""sysfs PWM and IIO ADC access against the simulated tree."""

from __future__ import annotations

import pytest

from everest_bsp.hal.errors import NotFoundError
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.sim.tarragon_tree import CP_PWM_DEVICE, TarragonTree
from everest_py.errors import HardwareError


def test_adc_by_device_name(tree: TarragonTree) -> None:
    with AdcChannel.open(tree.root, "2198000.adc", "voltage2") as adc:
        tree.write_adc("voltage2", 4095)
        assert adc.read_raw() == 4095
        tree.write_adc("voltage2", 7)  # shorter text: stale bytes after the newline are ignored
        assert adc.read_raw() == 7


def test_adc_errors_name_what_is_missing(tree: TarragonTree) -> None:
    with pytest.raises(NotFoundError, match=r"no IIO device named 'nope\.adc'"):
        AdcChannel.open(tree.root, "nope.adc", "voltage2")
    with pytest.raises(NotFoundError, match="no channel 'voltage42'"):
        AdcChannel.open(tree.root, "2198000.adc", "voltage42")
    tree.adc_path("voltage1").write_text("garbage\n")
    with AdcChannel.open(tree.root, "2198000.adc", "voltage1") as adc, pytest.raises(HardwareError):
        adc.read_raw()


def test_pwm_chip_by_device_link(tree: TarragonTree) -> None:
    pwm = SysfsPwm.open(tree.root, CP_PWM_DEVICE, 0)
    pwm.configure(1_000_000, 1_000_000)
    pwm.enable(True)
    assert tree.pwm(CP_PWM_DEVICE) == (1_000_000, 1_000_000, True)
    pwm.set_duty_ns(50_000)
    assert (pwm.period_ns, pwm.duty_ns, pwm.enabled, pwm.polarity) == (1_000_000, 50_000, True, "normal")
    pwm.configure(40_000, 20_000)  # a shorter period: the duty goes down first
    assert tree.pwm(CP_PWM_DEVICE)[:2] == (40_000, 20_000)
    with pytest.raises(ValueError):
        pwm.configure(1000, 2000)


def test_pwm_missing_device_or_channel(tree: TarragonTree) -> None:
    with pytest.raises(NotFoundError, match=r"no PWM chip of device 'x\.pwm'"):
        SysfsPwm.open(tree.root, "x.pwm", 0)
    with pytest.raises(NotFoundError, match="did not appear"):
        SysfsPwm.open(tree.root, CP_PWM_DEVICE, 1)
