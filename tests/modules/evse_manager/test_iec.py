# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The IEC 61851-1 control pilot machine: power rules, timers, lock, plug events, the duty cycle rule."""

from __future__ import annotations

import pytest

from everest_py.modules.evse_manager.clock import ManualClock
from everest_py.modules.evse_manager.iec import (
    C1_POWER_OFF_S,
    F_UNLOCK_S,
    CPEvent,
    CPState,
    IECConfig,
    IECStateMachine,
    ampere_to_duty_cycle,
)

from .fakes import FakeBoard, FakeLock


@pytest.mark.parametrize(
    ("ampere", "percent"),
    [
        (0.0, 100.0),
        (5.8, 100.0),
        (5.9, 10.0),
        (6.0, 10.0),
        (6.1, 10.0),
        (6.2, 6.2 / 0.6),
        (10.0, 10 / 0.6),
        (16.0, 16 / 0.6),
        (32.0, 32 / 0.6),
        (51.0, 85.0),
        (52.0, 85.0),  # the norm's gap 51..52.5 A is clamped to 51 A
        (52.5, 85.0),
        (63.0, 63 / 2.5 + 64),
        (80.0, 96.0),
        (80.05, 97.0),
        (81.0, 100.0),
    ],
)
def test_ampere_to_duty_cycle(ampere: float, percent: float) -> None:
    assert ampere_to_duty_cycle(ampere) == pytest.approx(percent)


class Iec:
    def __init__(self, config: IECConfig | None = None) -> None:
        self.clock = ManualClock()
        self.board = FakeBoard()
        self.lock = FakeLock()
        self.events: list[CPEvent] = []
        self.m = IECStateMachine(self.board, self.lock, self.clock, self.events.append, config or IECConfig())
        self.m.enable(True)
        self.board.take()

    def cp(self, *states: str) -> None:
        for s in states:
            self.m.on_bsp_event(s)

    def took(self) -> list[CPEvent]:
        events, self.events[:] = list(self.events), []
        return events


def test_plug_in_lock_and_unplug() -> None:
    t = Iec()
    t.cp("A")
    assert t.took() == []  # Disabled -> A: nothing was plugged
    assert t.board.take() == [("allow_power_on", False), ("X1", None)]
    t.cp("B")
    assert t.took() == [CPEvent.CAR_PLUGGED_IN]
    assert t.lock.calls == ["lock"], "locked in B (lock_connector_in_state_b)"
    assert t.board.power() == []
    t.cp("A")
    assert t.took() == [CPEvent.CAR_UNPLUGGED]
    assert t.board.take() == [("allow_power_on", False), ("X1", None)]
    assert t.lock.calls == ["lock", "unlock"]


def test_power_only_in_c_with_pwm_and_permission() -> None:
    t = Iec()
    t.cp("B")
    assert t.board.take() == [("allow_power_on", False)], "B from Disabled: make sure power is off"
    t.m.allow_power_on(True)
    t.m.set_pwm(26.67)
    assert t.board.take() == [("pwm_on", 26.67)], "B with PWM and permission: no power"
    t.cp("C")
    assert t.took() == [CPEvent.CAR_PLUGGED_IN, CPEvent.CAR_REQUESTED_POWER]
    assert t.board.power() == [True], "C + PWM + permission: on at once (Table A.6 seq. 4)"
    t.cp("C")
    assert t.board.power() == [], "sent once"


def test_no_power_without_pwm_or_permission() -> None:
    t = Iec()
    t.cp("B", "C")
    t.board.take()
    t.m.allow_power_on(True)
    assert t.board.power() == [], "C without PWM stays off"
    t.m.withhold_power()
    t.m.set_pwm(50.0)
    assert t.board.power() == [], "PWM without permission stays off"
    t.m.allow_power_on(True)
    assert t.board.power() == [True]


def test_c_to_b_switches_off_first() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.board.take()
    t.took()
    t.cp("B")
    assert t.board.take()[0] == ("allow_power_on", False), "the very first command on C->B"
    assert t.took() == [CPEvent.CAR_REQUESTED_STOP_POWER]
    assert not t.m.power_on_allowed, "the permission is gone; the charger has to give it again"
    t.cp("C")
    assert t.board.power() == []


def test_pwm_off_in_c_forces_power_off_after_6_s() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.board.take()
    t.m.withhold_power()
    t.m.set_x1()
    assert t.board.take() == [("X1", None)], "PWM off alone does not cut the power under load"
    t.clock.advance(C1_POWER_OFF_S - 0.01)
    assert t.board.power() == []
    t.clock.advance(0.02)
    assert t.board.power() == [False], "car stayed in C: forced off after 6 s (Table A.6 seq. 10.2)"


def test_pwm_back_on_in_c_stops_the_6_s_timer() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.m.set_x1()
    t.clock.advance(3)
    t.m.set_pwm(50.0)
    t.board.take()
    t.clock.advance(10)
    assert t.board.power() == []


def test_car_leaving_c_after_pwm_off_switches_off_at_once() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.m.withhold_power()
    t.m.set_x1()
    t.board.take()
    t.clock.advance(1)
    t.cp("B")
    assert t.board.power() == [False]
    t.clock.advance(10)
    assert t.board.power() == [], "the 6 s timer was stopped"


def test_state_e() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.took()
    t.board.take()
    t.cp("E")
    assert t.took() == [CPEvent.BCD_TO_EF, CPEvent.BCD_TO_E]
    assert t.board.take() == [("allow_power_on", False), ("X1", None)]
    assert t.lock.calls[-1] == "unlock"
    t.cp("B")
    assert t.took() == [CPEvent.CAR_REQUESTED_STOP_POWER, CPEvent.EF_TO_BCD]


def test_state_f_unlocks_after_5_s() -> None:
    t = Iec()
    t.cp("B", "C")
    t.took()
    t.board.take()
    t.lock.calls.clear()
    t.cp("F")
    assert t.took() == [CPEvent.BCD_TO_EF]
    assert t.board.power() == [False]
    t.clock.advance(F_UNLOCK_S - 0.01)
    assert t.lock.calls == []
    t.clock.advance(0.02)
    assert t.lock.calls == ["unlock"]


def test_leaving_f_early_keeps_the_lock() -> None:
    t = Iec()
    t.cp("B")
    t.lock.calls.clear()
    t.cp("F")
    t.clock.advance(1)
    t.cp("B")
    t.clock.advance(10)
    assert t.lock.calls == []
    assert t.m.is_locked


@pytest.mark.parametrize("ventilation", [True, False])
def test_state_d(ventilation: bool) -> None:
    t = Iec(IECConfig(has_ventilation=ventilation))
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.board.take()
    t.cp("D")
    assert t.board.power() == ([True] if ventilation else [False])
    if ventilation:
        assert t.took() == [CPEvent.CAR_PLUGGED_IN, CPEvent.CAR_REQUESTED_POWER]


def test_c_to_d_without_ventilation_switches_off() -> None:
    t = Iec(IECConfig(has_ventilation=False))
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.board.take()
    t.cp("D")
    assert t.board.power() == [False]


def test_simplified_mode() -> None:
    t = Iec(IECConfig(simplified_mode_limit_10A=True))
    t.cp("C")
    assert t.took() == [CPEvent.CAR_PLUGGED_IN]
    assert t.m.simplified_mode
    t.m.set_pwm(ampere_to_duty_cycle(32.0))
    assert t.took() == [CPEvent.CAR_REQUESTED_POWER], "reported when PWM starts, since there is no B->C"
    assert t.board.take() == [("pwm_on", round(10 / 0.6, 2))], "hack_simplified_mode_limit_10A caps at 10 A"


def test_events_ignored_until_enabled_then_replayed() -> None:
    clock = ManualClock()
    board, lock, events = FakeBoard(), FakeLock(), []
    m = IECStateMachine(board, lock, clock, events.append)
    m.on_bsp_event("B")
    assert events == []
    m.enable(True)
    assert events == [CPEvent.CAR_PLUGGED_IN]
    assert board.calls[0] == ("enable", True)


def test_disable_switches_off_and_unlocks() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.board.take()
    t.m.enable(False)
    assert t.board.take() == [("enable", False), ("allow_power_on", False)]
    assert t.m.cp is CPState.DISABLED
    assert t.lock.calls[-1] == "unlock"
    t.cp("A")
    assert t.took()[-1:] != [CPEvent.CAR_UNPLUGGED], "ignored while disabled"


def test_force_unlock_refused_under_power() -> None:
    t = Iec()
    t.cp("B")
    t.m.set_pwm(50.0)
    t.m.allow_power_on(True)
    t.cp("C")
    t.m.on_bsp_event("PowerOn")
    assert t.took()[-1] is CPEvent.POWER_ON
    assert not t.m.force_unlock()
    t.cp("B")
    t.m.on_bsp_event("PowerOff")
    t.lock.calls.clear()
    assert t.m.force_unlock()
    assert t.lock.calls == ["unlock"]
    t.cp("B")
    assert t.lock.calls == ["unlock"], "stays unlocked until the car leaves"


def test_lock_only_when_authorized_without_lock_in_b() -> None:
    t = Iec(IECConfig(lock_connector_in_state_b=False))
    t.cp("B")
    assert t.lock.calls == []
    t.m.set_authorized(True)
    assert t.lock.calls == ["lock"]
    t.m.set_authorized(False)
    assert t.lock.calls == ["lock", "unlock"]
    t.cp("C")
    assert t.lock.calls == ["lock", "unlock", "lock"], "C always locks"


def test_relays_on_keep_the_lock() -> None:
    t = Iec()
    t.cp("B", "C")
    t.m.on_bsp_event("PowerOn")
    t.lock.calls.clear()
    t.cp("E")
    assert t.lock.calls == [], "never unlock while the relays are reported on"
    t.m.on_bsp_event("PowerOff")
    assert t.lock.calls == ["unlock"]


def test_overcurrent_limit_sent_on_change() -> None:
    t = Iec()
    t.m.set_overcurrent_limit(16.0)
    t.m.set_overcurrent_limit(16.0)
    t.m.set_overcurrent_limit(10.0)
    assert t.board.take() == [("overcurrent", 16.0), ("overcurrent", 10.0)]
