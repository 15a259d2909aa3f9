# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonPlugLock: sequences against a simulated Tarragon and lock, errors, and the module over mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from everest_bsp.modules.cb_tarragon_plug_lock import plug_lock as pl
from everest_bsp.modules.cb_tarragon_plug_lock.hardware import LockLines
from everest_bsp.modules.cb_tarragon_plug_lock.module import PlugLockConfig
from everest_bsp.modules.cb_tarragon_plug_lock.plug_lock import (
    CAP_NOT_CHARGED,
    FAILED_LOCK,
    FAILED_UNLOCK,
    UNEXPECTED_CLOSE,
    UNEXPECTED_OPEN,
    LockSettings,
    Motor,
    PlugLock,
    Position,
)
from everest_bsp.sim.lock import LockMotorSim
from everest_bsp.sim.tarragon_tree import TarragonTree
from everest_py.testing import Probe

MODULE_DIR = Path(pl.__file__).parent
IN1_N, IN2 = "MOTOR_1_DRIVER_IN1_N", "MOTOR_1_DRIVER_IN2"
LOG = logging.getLogger("test.plug_lock")


def defaults(**overrides: Any) -> PlugLockConfig:
    config = yaml.safe_load((MODULE_DIR / "manifest.yaml").read_text())["config"]
    values = {key: entry["default"] for key, entry in config.items()}
    return PlugLockConfig(**{**values, **overrides})


class SimClock:
    """A fake clock that steps the lock simulation in 10 ms slices while the logic 'sleeps'."""

    SLICE_NS = 10_000_000

    def __init__(self, sim: LockMotorSim) -> None:
        self.sim = sim
        self.ns = 0  # integer time: no drift over thousands of polls
        sim.step(0)

    @property
    def t(self) -> float:
        return self.ns / 1e9

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        end = self.ns + round(seconds * 1e9)
        self.sim.step(self.ns)  # the lines may have changed just now (a board steps on output events)
        while self.ns < end:
            self.ns = min(end, self.ns + self.SLICE_NS)
            self.sim.step(self.ns)
        await asyncio.sleep(0)


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []
        self.active: dict[str, str] = {}

    def raise_error(self, error_type: str, message: str, severity: str) -> None:
        assert error_type not in self.active, f"{error_type} raised twice"
        self.active[error_type] = severity
        self.log.append(("raise", error_type, severity))

    def clear_error(self, error_type: str) -> None:
        assert error_type in self.active, f"{error_type} cleared but not active"
        del self.active[error_type]
        self.log.append(("clear", error_type, ""))


@dataclasses.dataclass
class Rig:
    tree: TarragonTree
    sim: LockMotorSim
    lines: LockLines
    clock: SimClock
    errors: Recorder
    lock: PlugLock

    def motor_levels(self) -> list[tuple[bool, bool]]:
        """Physical (IN1_N, IN2) after each change of a motor line since the last call."""
        levels = {IN1_N: self.tree.level(IN1_N), IN2: self.tree.level(IN2)}
        out: list[tuple[bool, bool]] = []
        current = dict(self._levels)
        for e in self.tree.output_events():
            if e.line in current:
                current[e.line] = e.level
                out.append((current[IN1_N], current[IN2]))
        self._levels = levels
        return out

    _levels: dict[str, bool] = dataclasses.field(default_factory=dict)


@pytest.fixture
def rig(tree: TarragonTree) -> Iterator[Callable[..., Rig]]:
    opened: list[LockLines] = []

    def make(*, locked: bool = False, cap_mV: float = 13000.0, **settings: Any) -> Rig:
        sim = LockMotorSim(tree, locked=locked, cap_mV=cap_mV)
        lines = LockLines.open(defaults(hal_root=str(tree.root)))
        opened.append(lines)
        clock = SimClock(sim)
        errors = Recorder()
        lock = PlugLock(lines, dataclasses.replace(defaults().settings(), **settings), clock, errors, LOG)
        r = Rig(tree, sim, lines, clock, errors, lock)
        tree.output_events()
        r._levels = {IN1_N: tree.level(IN1_N), IN2: tree.level(IN2)}
        return r

    yield make
    for lines in opened:
        lines.close()


# -- arithmetic -------------------------------------------------------------------------------------


def test_adc_conversions() -> None:
    assert pl.sense_mV(0) == 0
    assert pl.sense_mV(4095) == 3300
    assert pl.sense_mV(1241) == 1000
    # the capacitor ADC sees 22/90 of the voltage: 13 V is raw 3943
    assert pl.cap_mV(3943) == 12998
    assert pl.cap_mV(3033) == 9998
    assert pl.cap_mV(3034) == 10002


def test_positions_by_threshold() -> None:
    s = LockSettings()
    assert [s.position(mV) for mV in (0, 850, 851, 2899, 2900, 3300, 3301)] == [
        Position.LOCKED,
        Position.LOCKED,
        Position.BETWEEN,
        Position.BETWEEN,
        Position.UNLOCKED,
        Position.UNLOCKED,
        Position.BETWEEN,
    ]


def test_drv8872_truth_table() -> None:
    assert [(m.in1, m.in2) for m in (Motor.COAST, Motor.FORWARD, Motor.BACKWARD, Motor.BRAKE)] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]


# -- sequences against the simulated board ------------------------------------------------------------


def test_lock_then_unlock_drives_the_motor_and_checks_the_feedback(rig: Callable[..., Rig]) -> None:
    r = rig()
    assert r.tree.level(IN1_N) is True and r.tree.level(IN2) is False, "coast after the request (IN1 active-low)"
    assert r.tree.consumer(IN1_N) == "plug lock"
    assert asyncio.run(r.lock.lock()) is True
    assert r.sim.locked
    # backward (IN1 inactive = high, IN2 high), then brake (IN1 active = low, IN2 high)
    assert r.motor_levels() == [(True, True), (False, True)]
    assert r.clock.t == pytest.approx(0.6)
    assert r.lock.assumed_locked is True
    assert asyncio.run(r.lock.unlock()) is True
    assert r.sim.unlocked
    # from brake: forward (IN1 low, IN2 low), then brake
    assert r.motor_levels() == [(False, False), (False, True)]
    assert r.errors.log == []


def test_start_waits_for_the_capacitors_then_unlocks(rig: Callable[..., Rig]) -> None:
    r = rig(locked=True, cap_mV=0.0)
    assert asyncio.run(r.lock.start()) is True
    assert r.sim.unlocked
    # 10 V are reached after about 0.6 s of charging (tau 0.4 s), polled every 100 ms
    waited = r.clock.t - 0.6
    assert 0.5 <= waited <= 0.7
    assert r.errors.log == []


def test_a_drained_capacitor_delays_the_next_drive(rig: Callable[..., Rig]) -> None:
    r = rig()
    assert asyncio.run(r.lock.lock()) is True
    assert r.sim.cap_mV < 10000
    before = r.clock.t
    assert asyncio.run(r.lock.unlock()) is True
    assert r.clock.t - before > 0.6, "waited for the charge before driving"


def test_jammed_lock_fails_and_the_errors_clear_on_success(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.sim.jammed = True
    assert asyncio.run(r.lock.lock()) is False
    assert r.errors.active == {FAILED_LOCK: "Medium"}
    assert r.motor_levels()[-1] == (False, True), "braked after the drive even when it failed"
    r.sim.jammed = False
    # an unlock that works puts the connector into a known state again
    assert asyncio.run(r.lock.unlock()) is True
    assert r.errors.active == {}
    assert asyncio.run(r.lock.lock()) is True
    r.sim.jammed = True
    assert asyncio.run(r.lock.unlock()) is False
    assert r.errors.active == {FAILED_UNLOCK: "Medium"}
    r.sim.jammed = False
    # locking again does not free a plug that could not be unlocked; only an unlock does
    assert asyncio.run(r.lock.lock()) is True
    assert r.errors.active == {FAILED_UNLOCK: "Medium"}
    assert asyncio.run(r.lock.unlock()) is True
    assert r.errors.active == {}
    assert r.errors.log == [
        ("raise", FAILED_LOCK, "Medium"),
        ("clear", FAILED_LOCK, ""),
        ("raise", FAILED_UNLOCK, "Medium"),
        ("clear", FAILED_UNLOCK, ""),
    ]


def test_a_drive_too_short_leaves_the_lock_between(rig: Callable[..., Rig]) -> None:
    r = rig(actuator_duration_ms=100)
    assert asyncio.run(r.lock.lock()) is False
    assert 0.0 < r.sim.position < 1.0
    assert r.errors.active == {FAILED_LOCK: "Medium"}


def test_motor_driver_fault_fails_the_lock(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.sim.set_motor_fault(True)
    assert r.tree.level("MOTOR_1_FAULT_N") is False
    assert asyncio.run(r.lock.lock()) is False
    assert r.sim.unlocked
    assert list(r.errors.active) == [FAILED_LOCK]


def test_capacitor_not_charged_at_startup_is_high(rig: Callable[..., Rig]) -> None:
    r = rig(locked=True, cap_mV=0.0)
    r.sim.cap_fault = True
    assert asyncio.run(r.lock.start()) is False
    assert r.clock.t == pytest.approx(400.0)
    assert r.errors.active == {CAP_NOT_CHARGED: "High"}
    assert r.sim.locked, "never driven"
    assert r.motor_levels() == []


def test_capacitor_not_charged_later_is_medium_and_clears_when_charged(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.sim.cap_fault = True
    asyncio.run(r.clock.sleep(3.0))
    assert asyncio.run(r.lock.lock()) is False
    assert r.clock.t == pytest.approx(8.0)
    assert r.errors.active == {CAP_NOT_CHARGED: "Medium"}
    r.sim.cap_fault = False
    r.lock.check()
    assert CAP_NOT_CHARGED in r.errors.active, "still empty"
    asyncio.run(r.clock.sleep(1.0))
    r.lock.check()
    assert r.errors.active == {}
    assert asyncio.run(r.lock.lock()) is True


def test_monitoring_reports_unexpected_open_and_close(rig: Callable[..., Rig]) -> None:
    r = rig(monitoring=True)
    r.lock.check()
    assert r.errors.log == [], "nothing is checked before the first command"
    assert asyncio.run(r.lock.lock()) is True
    r.lock.check()
    assert r.errors.active == {}
    r.sim.move_to(False)
    r.lock.check()
    assert r.errors.active == {UNEXPECTED_OPEN: "High"}
    r.lock.check()
    r.sim.move_to(True)
    r.lock.check()
    assert r.errors.active == {}
    assert asyncio.run(r.lock.unlock()) is True
    r.sim.move_to(True)
    r.lock.check()
    assert r.errors.active == {UNEXPECTED_CLOSE: "High"}
    # a new command sets a new expectation
    assert asyncio.run(r.lock.lock()) is True
    assert r.errors.active == {}
    assert r.errors.log == [
        ("raise", UNEXPECTED_OPEN, "High"),
        ("clear", UNEXPECTED_OPEN, ""),
        ("raise", UNEXPECTED_CLOSE, "High"),
        ("clear", UNEXPECTED_CLOSE, ""),
    ]


def test_monitoring_clears_a_failed_lock_once_the_lock_is_closed(rig: Callable[..., Rig]) -> None:
    r = rig(monitoring=True)
    r.sim.jammed = True
    assert asyncio.run(r.lock.lock()) is False
    r.lock.check()
    assert r.errors.active == {FAILED_LOCK: "Medium"}, "no UnexpectedOpen on top of the failure"
    r.sim.move_to(True)
    r.lock.check()
    assert r.errors.active == {}


def test_without_monitoring_a_moved_lock_goes_unnoticed(rig: Callable[..., Rig]) -> None:
    r = rig()
    assert asyncio.run(r.lock.lock()) is True
    r.sim.move_to(False)
    r.lock.check()
    assert r.errors.log == []


def test_halt_stops_a_drive_and_refuses_new_ones(rig: Callable[..., Rig]) -> None:
    r = rig()

    async def scenario() -> bool:
        task = asyncio.create_task(r.lock.lock())
        while r.sim.drive != "backward":
            await asyncio.sleep(0)
        r.lock.halt()
        result = await task
        assert await r.lock.unlock() is False
        return result

    assert asyncio.run(scenario()) is False
    assert r.sim.drive == "coast"
    assert r.motor_levels()[-1] == (True, False)
    assert r.errors.log == []


def test_commands_run_one_at_a_time(rig: Callable[..., Rig]) -> None:
    r = rig()

    async def scenario() -> list[bool]:
        return list(await asyncio.gather(r.lock.lock(), r.lock.unlock()))

    assert asyncio.run(scenario()) == [True, True]
    assert r.sim.unlocked
    drives = [levels for levels in r.motor_levels() if levels != (False, True)]
    assert drives == [(True, True), (False, False)], "backward, brake, forward, brake: never both at once"


# -- the module over mosquitto ----------------------------------------------------------------------


def lock_config(root: Path, **config: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            "plug": {"module": "CbTarragonPlugLock", "config_module": {"hal_root": str(root), **config}},
            "probe": {
                "module": "ProbeModule",
                "connections": {"lock": [{"module_id": "plug", "implementation_id": "connector_lock"}]},
            },
        }
    }


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_module_locks_and_reports_a_jammed_lock(make_stack, run_probe, tree: TarragonTree) -> None:
    sim = LockMotorSim(tree, locked=True, cap_mV=0.0).start()
    try:
        stack, prefix = make_stack(lock_config(tree.root, enable_monitoring=True, actuator_duration=400))
        stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
        try:

            async def scenario(probe: Probe) -> list[tuple[str, str]]:
                seen: list[tuple[str, str]] = []
                assert probe.bus is not None
                probe.bus.subscribe(
                    f"{probe.topics.impl('plug', 'connector_lock')}/error/#",
                    lambda t, p: seen.append((json.loads(p)["msg_type"], json.loads(p)["data"]["type"])),
                )
                # the module unlocks at start, once the capacitors are charged
                assert await asyncio.to_thread(wait_until, lambda: sim.unlocked and sim.drive == "brake")
                assert await probe.call("lock", "lock") is None
                assert sim.locked
                sim.jammed = True
                assert await probe.call("lock", "unlock") is None
                assert sim.locked
                assert await asyncio.to_thread(wait_until, lambda: len(seen) == 1)
                sim.jammed = False
                assert await probe.call("lock", "unlock") is None
                assert sim.unlocked
                assert await asyncio.to_thread(wait_until, lambda: len(seen) == 2)
                # monitoring: the lock closes by itself
                sim.move_to(True)
                assert await asyncio.to_thread(wait_until, lambda: len(seen) == 3)
                sim.move_to(False)
                assert await asyncio.to_thread(wait_until, lambda: len(seen) == 4)
                return seen

            seen = run_probe(prefix, scenario)
        finally:
            assert stack.stop() == 0, stack.log()
    finally:
        sim.stop()
    assert seen == [
        ("RaiseError", FAILED_UNLOCK),
        ("ClearError", FAILED_UNLOCK),
        ("RaiseError", UNEXPECTED_CLOSE),
        ("ClearError", UNEXPECTED_CLOSE),
    ]
    assert sim.drive == "coast", "safe state on stop"
    assert tree.consumer(IN1_N) == "", "lines released"
    assert sim.error is None
