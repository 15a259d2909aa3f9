# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonDIs: duty arithmetic, the PWM of a simulated Tarragon, and init failures of the stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from everest_bsp.hal.errors import NotFoundError
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.modules.cb_tarragon_dis import threshold
from everest_bsp.sim.tarragon_tree import DI_PWM_DEVICE, TarragonTree


@pytest.mark.parametrize(("mV", "ns"), [(0, 0), (6000, 20000), (12000, 40000), (3300, 11000), (1, 3), (11999, 39996)])
def test_duty_for_threshold(mV: int, ns: int) -> None:
    assert threshold.duty_ns(mV) == ns


@pytest.mark.parametrize("mV", [-1, 12001])
def test_threshold_out_of_range(mV: int) -> None:
    with pytest.raises(ValueError):
        threshold.duty_ns(mV)


def test_apply_on_the_simulated_board(tree: TarragonTree) -> None:
    pwm = SysfsPwm.open(tree.root, DI_PWM_DEVICE, 0)
    assert threshold.apply(pwm, 9000) == 30000
    assert tree.pwm(DI_PWM_DEVICE) == (40000, 30000, True)
    # a lower threshold afterwards: duty first, so it never exceeds the period
    assert threshold.apply(pwm, 600) == 2000
    assert tree.pwm(DI_PWM_DEVICE) == (40000, 2000, True)


def test_a_missing_device_is_a_hardware_error(tree: TarragonTree) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.pwm"):
        SysfsPwm.open(tree.root, "nope.pwm", 0)


def dis_config(root: Path, **config: object) -> dict[str, object]:
    return {"active_modules": {"dis": {"module": "CbTarragonDIs", "config_module": {"hal_root": str(root), **config}}}}


def test_module_sets_the_reference_pwm(make_stack, tree: TarragonTree) -> None:
    stack, _ = make_stack(dis_config(tree.root, threshold_voltage=3000))
    stack.start()
    try:
        assert tree.pwm(DI_PWM_DEVICE) == (40000, 10000, True)
        assert tree.pwm("20fc000.pwm") == (0, 0, False), "no other PWM touched"
    finally:
        assert stack.stop() == 0, stack.log()
    assert tree.pwm(DI_PWM_DEVICE) == (40000, 10000, True), "the inputs keep their reference after a stop"


@pytest.mark.slow
def test_a_missing_pwm_stops_the_stack(make_stack, tree: TarragonTree) -> None:
    """The module waits HAL_WAIT_S for the device (a simulator may still build its tree), then init fails."""
    stack, _ = make_stack(dis_config(tree.root, pwm_device="nope.pwm"))
    stack.start(wait=False)
    assert stack.wait(timeout_s=30) == 1
    log = stack.log()
    assert "waiting for the board: no PWM chip of device 'nope.pwm'" in log
    stopped = [line for line in log.splitlines() if "stopped:" in line]
    assert len(stopped) == 1 and "no PWM chip of device 'nope.pwm'" in stopped[0], log
