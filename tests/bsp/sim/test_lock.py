# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""LockMotorSim: the DRV8872 truth table on the physical lines, travel, feedback and capacitor ADCs, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from everest_bsp.hal.gpio import LineRequest, LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.sim.lock import LockMotorSim
from everest_bsp.sim.tarragon_tree import ADC_DEVICE, TarragonTree

IN1_N, IN2 = "MOTOR_1_DRIVER_IN1_N", "MOTOR_1_DRIVER_IN2"
MS = 1_000_000


def mV(tree: TarragonTree, channel: str) -> float:
    with AdcChannel.open(tree.root, ADC_DEVICE, channel) as adc:
        return adc.read_raw() * 3300 / 4095


def cap_V(tree: TarragonTree) -> float:
    return mV(tree, "voltage4") * 90 / 22 / 1000


@pytest.fixture
def motor(tree: TarragonTree) -> Iterator[LineRequest]:
    """The driver's view: logical IN1/IN2, IN1 through its active-low line."""
    req = request_lines(
        tree.root, "test", {IN1_N: LineSettings(output=True, active_low=True), IN2: LineSettings(output=True)}
    )
    yield req
    req.release()


def run(sim: LockMotorSim, start_ms: int, duration_ms: int) -> int:
    """Step the simulation in 5 ms slices from the moment the lines changed; returns the end time in ms."""
    for t in range(start_ms, start_ms + duration_ms + 1, 5):
        sim.step(t * MS)
    return start_ms + duration_ms


def test_nobody_driving_is_coast_and_the_adcs_are_written(tree: TarragonTree) -> None:
    sim = LockMotorSim(tree)
    assert sim.drive == "coast"
    assert tree.level(IN1_N) is True, "the board's pull-up keeps IN1 inactive"
    assert tree.level("MOTOR_1_FAULT_N") is True
    assert mV(tree, "voltage0") == pytest.approx(3100, abs=1)
    assert mV(tree, "voltage4") == 0


def test_truth_table_on_the_physical_lines(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree)
    seen = []
    for in1, in2 in ((False, False), (True, False), (False, True), (True, True)):
        motor.set_many({IN1_N: in1, IN2: in2})
        assert tree.level(IN1_N) is (not in1)
        seen.append(sim.drive)
    assert seen == ["coast", "forward", "backward", "brake"]


def test_backward_locks_forward_unlocks(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree, cap_mV=13000)
    sim.step(0)
    motor.set_many({IN1_N: False, IN2: True})
    t = run(sim, 0, 150)
    assert sim.position == pytest.approx(0.5)
    assert mV(tree, "voltage0") == pytest.approx(1750, abs=2), "half way: between the two ends"
    t = run(sim, t, 200)
    assert sim.locked
    assert mV(tree, "voltage0") == pytest.approx(400, abs=1)
    motor.set_many({IN1_N: True, IN2: True})  # brake: no movement
    t = run(sim, t, 500)
    assert sim.locked
    motor.set_many({IN1_N: True, IN2: False})
    run(sim, t, 300)
    assert sim.unlocked
    assert mV(tree, "voltage0") == pytest.approx(3100, abs=1)


def test_capacitors_charge_towards_13_V_and_drain_while_driving(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree)
    sim.step(0)
    t = run(sim, 0, 500)
    assert 5 < cap_V(tree) < 10
    t = run(sim, t, 1000)
    assert 12.5 < cap_V(tree) <= 13.0
    t = run(sim, t, 10_000)
    assert cap_V(tree) == pytest.approx(13.0, abs=0.01)
    motor.set_many({IN1_N: False, IN2: True})
    run(sim, t, 600)
    assert 8.5 < cap_V(tree) < 10, "a drive takes the capacitors below the 10 V a driver waits for"


def test_a_weak_capacitor_does_not_turn_the_motor(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree, cap_mV=5000)
    sim.cap_fault = True  # no charging current to help
    sim.step(0)
    motor.set_many({IN1_N: False, IN2: True})
    run(sim, 0, 300)
    assert sim.unlocked


def test_jammed(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree, cap_mV=13000)
    sim.jammed = True
    sim.step(0)
    motor.set_many({IN1_N: False, IN2: True})
    run(sim, 0, 600)
    assert sim.unlocked
    assert cap_V(tree) < 10, "the motor still draws current"


def test_capacitor_fault_never_charges(tree: TarragonTree) -> None:
    sim = LockMotorSim(tree, cap_mV=4000)
    sim.cap_fault = True
    sim.step(0)
    run(sim, 0, 3000)
    assert cap_V(tree) < 0.1


def test_motor_driver_fault(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree, cap_mV=13000)
    sim.set_motor_fault(True)
    assert tree.level("MOTOR_1_FAULT_N") is False
    sim.step(0)
    motor.set_many({IN1_N: False, IN2: True})
    run(sim, 0, 600)
    assert sim.unlocked
    assert cap_V(tree) == pytest.approx(13.0, abs=0.01), "outputs off: no current"
    sim.set_motor_fault(False)
    assert tree.level("MOTOR_1_FAULT_N") is True
    run(sim, 600, 300)
    assert sim.locked


def test_moved_by_hand(tree: TarragonTree) -> None:
    sim = LockMotorSim(tree)
    sim.move_to(True)
    assert sim.locked
    assert mV(tree, "voltage0") == pytest.approx(400, abs=1)


def test_time_never_runs_backwards(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree, cap_mV=13000)
    sim.step(1000 * MS)
    motor.set_many({IN1_N: False, IN2: True})
    sim.step(900 * MS)
    assert sim.unlocked
    sim.step(1100 * MS)
    assert sim.position == pytest.approx(1 / 3)


def test_own_thread(tree: TarragonTree, motor: LineRequest) -> None:
    sim = LockMotorSim(tree, cap_mV=11000).start(period_s=0.002)
    try:
        with pytest.raises(RuntimeError):
            sim.start()
        deadline = time.monotonic() + 5
        while cap_V(tree) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cap_V(tree) >= 12
        motor.set_many({IN1_N: False, IN2: True})
        deadline = time.monotonic() + 5
        while not sim.locked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.locked
    finally:
        sim.stop()
    assert sim.error is None
    position, cap = sim.position, sim.cap_mV
    time.sleep(0.02)
    assert (sim.position, sim.cap_mV) == (position, cap), "stopped"
