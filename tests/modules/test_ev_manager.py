# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EvManager logic: the script parser, the car and the script executor, on a hand-driven clock."""

from __future__ import annotations

from typing import Any

import pytest

from everest_py.framework.contracts import Contracts
from everest_py.modules.ev_manager.car import Car, CarParams, SimState
from everest_py.modules.ev_manager.runner import ScriptRunner
from everest_py.modules.ev_manager.script import COMMANDS, ISO_COMMANDS, ScriptError, Step, parse_script

TICK = 0.05
DUTY_10A = 10 / 0.6


class Board:
    """EvBoard that records what the car sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, cmd: str, args: dict[str, Any]) -> None:
        self.sent.append((cmd, args))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        sent, self.sent = self.sent, []
        return sent


def make_car(**params: Any) -> tuple[Car, Board]:
    board = Board()
    defaults: dict[str, Any] = {
        "max_current_A": 16.0,
        "three_phases": True,
        "nominal_voltage_V": 230.0,
        "capacity_Wh": 60000.0,
        "soc": 30.0,
    }
    return Car(board, CarParams(**{**defaults, **params})), board


# -- parser ---------------------------------------------------------------------------------------------


def test_the_sil_default_script() -> None:
    steps = parse_script("sleep 1;iec_wait_pwr_ready;sleep 1;draw_power_regulated 16,3;sleep 30;unplug")
    assert steps == [
        Step("sleep", (1.0,), "sleep 1"),
        Step("iec_wait_pwr_ready", (), "iec_wait_pwr_ready"),
        Step("sleep", (1.0,), "sleep 1"),
        Step("draw_power_regulated", (16.0, 3.0), "draw_power_regulated 16,3"),
        Step("sleep", (30.0,), "sleep 30"),
        Step("unplug", (), "unplug"),
    ]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("sleep 0.5", ("sleep", (0.5,))),
        ("iec_wait_pwr_ready", ("iec_wait_pwr_ready", ())),
        ("wait_for_real_plugin", ("wait_for_real_plugin", ())),
        ("draw_power_regulated 32,1", ("draw_power_regulated", (32.0, 1.0))),
        ("draw_power_fixed 10 3", ("draw_power_fixed", (10.0, 3.0))),
        ("draw_power_fixed 10, 3", ("draw_power_fixed", (10.0, 3.0))),
        ("pause", ("pause", ())),
        ("unplug", ("unplug", ())),
        ("plugin", ("plugin", ())),
        ("error_e", ("error_e", ())),
        ("diode_fail", ("diode_fail", ())),
        ("rcd_current 20", ("rcd_current", (20.0,))),
        ("set_soc 80.5", ("set_soc", (80.5,))),
    ],
)
def test_every_command(script: str, expected: tuple[str, tuple[float, ...]]) -> None:
    (step,) = parse_script(script)
    assert (step.name, step.args) == expected


def test_the_table_covers_what_the_tests_cover() -> None:
    assert set(COMMANDS) == {
        "sleep",
        "iec_wait_pwr_ready",
        "wait_for_real_plugin",
        "draw_power_regulated",
        "draw_power_fixed",
        "pause",
        "unplug",
        "plugin",
        "error_e",
        "diode_fail",
        "rcd_current",
        "set_soc",
    }


def test_blanks_newlines_and_empty_parts_are_fine() -> None:
    steps = parse_script("\n  sleep   2 ;;\n  unplug ;\n")
    assert [s.text for s in steps] == ["sleep 2", "unplug"]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("", "the script has no commands"),
        (" ; ;", "the script has no commands"),
        ("sleep 1;fly 3", "step 2 ('fly 3'): unknown command 'fly'"),
        ("Sleep 1", "unknown command 'Sleep'"),
        ("sleep", "step 1 ('sleep'): sleep takes 1 argument(s) (seconds), got 0"),
        ("unplug now", "unplug takes 0 argument(s) (none), got 1"),
        ("draw_power_regulated 16", "takes 2 argument(s) (current_A, phases), got 1"),
        ("sleep soon", "seconds must be a number, not 'soon'"),
        ("sleep -1", "seconds must be at least 0, not -1"),
        ("sleep nan", "seconds must be at least 0, not nan"),
        ("set_soc 101", "soc_percent must be 0..100, not 101"),
        ("draw_power_fixed 16,2", "phases must be one of 1, 3, not 2"),
        ("draw_power_fixed 81,3", "current_A must be 0..80, not 81"),
        ("rcd_current -5", "current_mA must be at least 0"),
    ],
)
def test_bad_scripts(script: str, message: str) -> None:
    with pytest.raises(ScriptError) as err:
        parse_script(script)
    assert message in str(err.value)


@pytest.mark.parametrize("name", sorted(ISO_COMMANDS))
def test_iso_commands_are_known_but_refused(name: str) -> None:
    with pytest.raises(ScriptError, match="not supported until everest-py has an ISO 15118 car"):
        parse_script(f"sleep 1;{name} AC")


# -- the car ------------------------------------------------------------------------------------------------


def test_enable_and_disable() -> None:
    car, board = make_car()
    car.enable(True)
    assert board.take() == [("enable", {"value": True}), ("set_cp_state", {"cp_state": "A"})]
    car.plug_in()
    board.take()
    car.enable(False)
    assert board.take() == [
        ("set_cp_state", {"cp_state": "A"}),  # the demand is 0 since plug-in already
        ("diode_fail", {"value": False}),
        ("set_rcd_error", {"rcd_current_mA": 0.0}),
        ("enable", {"value": False}),
    ]
    assert car.state is SimState.UNPLUGGED
    car.enable(True)
    assert board.take() == [("enable", {"value": True}), ("set_cp_state", {"cp_state": "A"})], "sent again"


def test_regulated_charging_follows_the_pwm() -> None:
    car, board = make_car()
    car.plug_in()
    assert car.state is SimState.PLUGGED_IN
    assert board.take() == [("set_ac_max_current", {"current": 0.0}), ("set_cp_state", {"cp_state": "B"})]
    car.draw_regulated(16, 3)
    assert car.demand_A == 0.0, "no PWM seen yet"
    assert board.take() == [("set_three_phases", {"three_phases": True}), ("set_cp_state", {"cp_state": "C"})]
    car.on_measurement(DUTY_10A)
    assert car.demand_A == pytest.approx(10.0)
    car.on_measurement(50.0)
    assert car.demand_A == 16.0, "its own limit"
    car.on_measurement(50.0)
    assert board.take() == [
        ("set_ac_max_current", {"current": pytest.approx(10.0)}),
        ("set_ac_max_current", {"current": 16.0}),
    ], "nothing repeated"
    car.on_measurement(100.0)
    assert car.demand_A == 0.0, "X1: no current"
    car.pause()
    car.on_measurement(50.0)
    assert car.demand_A == 0.0, "paused cars do not follow the PWM"


def test_fixed_charging_ignores_the_pwm() -> None:
    car, board = make_car()
    car.on_measurement(DUTY_10A)
    car.draw_fixed(13, 1)
    car.on_measurement(50.0)
    assert car.demand_A == 13.0 and car.phases == 1
    assert board.take() == [
        ("set_three_phases", {"three_phases": False}),
        ("set_ac_max_current", {"current": 13.0}),
        ("set_cp_state", {"cp_state": "C"}),
    ]


def test_faults_and_unplug() -> None:
    car, board = make_car()
    car.plug_in()
    board.take()
    car.diode_fail()
    car.rcd_current(12.0)
    car.error_e()
    assert car.state is SimState.ERROR_E
    assert board.take() == [
        ("diode_fail", {"value": True}),
        ("set_rcd_error", {"rcd_current_mA": 12.0}),
        ("set_cp_state", {"cp_state": "E"}),
    ]
    car.unplug()
    assert board.take() == [
        ("set_cp_state", {"cp_state": "A"}),
        ("diode_fail", {"value": False}),
        ("set_rcd_error", {"rcd_current_mA": 0.0}),
    ]


def test_what_the_car_sees() -> None:
    car, _ = make_car()
    assert not car.pwm_ready
    for duty, ready in ((5.0, False), (7.0, False), (7.5, True), (96.9, True), (97.0, False), (100.0, False)):
        car.on_measurement(duty)
        assert car.pwm_ready is ready, duty
    assert not car.board_sees_car
    car.on_bsp_event("B")
    assert car.board_sees_car
    car.on_bsp_event("PowerOn")
    assert car.power_on and car.cp_seen == "B"
    car.on_bsp_event("PowerOff")
    assert not car.power_on


def test_state_of_charge_and_ev_info(contracts: Contracts) -> None:
    car, _ = make_car(capacity_Wh=6900.0, soc=50)
    car.on_measurement(DUTY_10A)
    car.draw_regulated(16, 3)
    car.tick(0.0)
    car.tick(60.0)
    assert car.soc == 50.0, "no PowerOn yet"
    car.on_bsp_event("PowerOn")
    car.tick(120.0)  # 10 A x 3 x 230 V for 60 s = 115 Wh of 6900 Wh
    assert car.soc == pytest.approx(50 + 100 * 115 / 6900)
    info = car.ev_info()
    assert info == {
        "soc": 51.7,
        "present_current": 10.0,
        "target_current": 10.0,
        "maximum_current_limit": 16.0,
        "battery_capacity": 6900.0,
        "remaining_energy_needed": pytest.approx(6900 * (100 - car.soc) / 100, abs=0.05),
    }
    schema = contracts.interface("ev_manager").vars["ev_info"]
    contracts.validator(("test", "ev_manager", "ev_info"), schema)(info)
    car.tick(100_000.0)
    assert car.soc == 100.0
    car.set_soc(120)
    assert car.soc == 100.0
    car.set_soc(-3)
    assert car.soc == 0.0


# -- the executor ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, runner: ScriptRunner) -> None:
        self.runner = runner
        self.now = 0.0

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / TICK)):
            self.now += TICK
            self.runner.tick(self.now)


def test_a_whole_session() -> None:
    car, board = make_car()
    seen: list[str] = []
    runner = ScriptRunner(car, parse_script("sleep 1;iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 2;unplug"))
    runner._on_step = lambda step: seen.append(step.text)
    clock = Clock(runner)
    clock.run(0.95)
    assert car.state is SimState.UNPLUGGED and seen == ["sleep 1"]
    clock.run(0.1)
    assert car.state is SimState.PLUGGED_IN
    clock.run(5.0)
    assert runner.current is not None and runner.current.name == "iec_wait_pwr_ready", "no PWM, no progress"
    car.on_measurement(DUTY_10A)
    clock.run(TICK)
    assert car.state is SimState.CHARGING_REGULATED and car.demand_A == pytest.approx(10.0)
    clock.run(1.9)
    assert not runner.finished
    clock.run(0.2)
    assert runner.finished and car.state is SimState.UNPLUGGED
    assert seen == ["sleep 1", "iec_wait_pwr_ready", "draw_power_regulated 16,3", "sleep 2", "unplug"]
    assert ("set_cp_state", {"cp_state": "C"}) in board.sent


def test_every_instant_command_in_one_tick() -> None:
    car, board = make_car()
    script = "plugin;error_e;pause;diode_fail;rcd_current 8;set_soc 90;draw_power_fixed 12,1;unplug"
    runner = ScriptRunner(car, parse_script(script))
    runner.tick(0.0)
    assert runner.finished
    assert car.soc == 90.0
    assert [a["cp_state"] for c, a in board.sent if c == "set_cp_state"] == ["B", "E", "B", "C", "A"]
    assert ("set_rcd_error", {"rcd_current_mA": 8.0}) in board.sent
    assert ("set_ac_max_current", {"current": 12.0}) in board.sent


def test_wait_for_real_plugin() -> None:
    car, _ = make_car()
    runner = ScriptRunner(car, parse_script("wait_for_real_plugin;draw_power_fixed 6,1"))
    clock = Clock(runner)
    clock.run(1.0)
    assert car.state is SimState.UNPLUGGED
    car.on_bsp_event("B")
    clock.run(TICK)
    assert runner.finished and car.state is SimState.CHARGING_FIXED


def test_plugin_runs_the_plugin_commands() -> None:
    car, _ = make_car()
    runner = ScriptRunner(
        car, parse_script("plugin;set_soc 40"), plugin_steps=parse_script("set_soc 60;sleep 1;draw_power_fixed 8,3")
    )
    clock = Clock(runner)
    clock.run(TICK)
    assert car.soc == 60.0 and car.state is SimState.PLUGGED_IN
    clock.run(1.0)
    assert runner.finished
    assert car.state is SimState.CHARGING_FIXED and car.soc == 40.0


def test_repeat_starts_again_and_never_spins() -> None:
    car, board = make_car()
    runner = ScriptRunner(car, parse_script("plugin;sleep 1;unplug"), repeat=True, plugin_steps=parse_script("pause"))
    clock = Clock(runner)
    clock.run(3.2)
    assert not runner.finished
    plugs = [a for c, a in board.sent if c == "set_cp_state"]
    assert plugs == [{"cp_state": "B"}, {"cp_state": "A"}] * 3 + [{"cp_state": "B"}]
    assert len(runner.steps) == 4, "plugin steps are inserted once per pass"
    instant = ScriptRunner(car, parse_script("set_soc 10"), repeat=True)
    instant.tick(0.0)  # must return: one pass per tick at most
    assert car.soc == 10.0


def test_replace_drops_the_waiting_step() -> None:
    car, _ = make_car()
    runner = ScriptRunner(car, parse_script("iec_wait_pwr_ready;sleep 100"))
    runner.tick(0.0)
    assert car.state is SimState.PLUGGED_IN
    runner.replace(parse_script("unplug"))
    runner.tick(0.1)
    assert runner.finished and car.state is SimState.UNPLUGGED
