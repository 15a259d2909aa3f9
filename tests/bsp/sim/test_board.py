# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""TarragonBoardSim: pilot peaks per car state and drive, relays and their feedback, PP, RCM, power, injections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from everest_bsp.hal.gpio import LineRequest, LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.sim import physics
from everest_bsp.sim.board import BoardConfig, InjectionError, TarragonBoardSim
from everest_bsp.sim.lock import LockMotorSim
from everest_bsp.sim.tarragon_tree import ADC_DEVICE, CP_PWM_DEVICE, TarragonTree
from everest_bsp.tarragon import pp

MS = 1_000_000
PERIOD_NS = 1_000_000
NOISE = 3
LEVEL_MV = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0}
# the driver's bands (chargebyte-hw.md §2.4), without hysteresis
BAND_MV = {"A": (11000, 13000), "B": (8000, 10000), "C": (5000, 7000), "D": (2000, 4000), "E": (-1000, 2000)}


@dataclass
class Driver:
    """The SoC's side as CbTarragonDriver holds it: CP lines, relay coils, the CP PWM, the ADC channels."""

    tree: TarragonTree
    lines: LineRequest
    pwm: SysfsPwm

    def pilot(self, duty_percent: float | None) -> None:
        """Drive the pilot at a duty cycle (percent); None lets it float (CP_INVERT inactive)."""
        if duty_percent is None:
            self.lines.set("CP_INVERT", False)
            return
        self.pwm.configure(PERIOD_NS, round(PERIOD_NS * duty_percent / 100))
        self.pwm.enable(True)
        self.lines.set("CP_INVERT", True)

    def coil(self, n: int, on: bool) -> int:
        """Switch a relay coil; returns a time no earlier than the edge's timestamp."""
        self.lines.set(f"RELAY_{n}_ENABLE", on)
        return time.monotonic_ns()

    def reset_peaks(self) -> None:
        self.lines.set_many({"CP_POSITIVE_PEAK_RST": True, "CP_NEGATIVE_PEAK_RST": True})
        self.lines.set_many({"CP_POSITIVE_PEAK_RST": False, "CP_NEGATIVE_PEAK_RST": False})

    def raw(self, channel: str) -> int:
        with AdcChannel.open(self.tree.root, ADC_DEVICE, channel) as adc:
            return adc.read_raw()

    def mv(self, channel: str) -> int:
        """A CP peak in mV, converted as the driver does."""
        return round(physics.cp_volts(self.raw(channel)) * 1000)


@pytest.fixture
def driver(tree: TarragonTree) -> Iterator[Driver]:
    outputs = ["CP_INVERT", "CP_POSITIVE_PEAK_RST", "CP_NEGATIVE_PEAK_RST", "RELAY_1_ENABLE", "RELAY_2_ENABLE"]
    lines = request_lines(tree.root, "test", {n: LineSettings(output=True) for n in outputs})
    yield Driver(tree, lines, SysfsPwm.open(tree.root, CP_PWM_DEVICE, 0))
    lines.release()


def make(tree: TarragonTree, **cfg: object) -> TarragonBoardSim:
    return TarragonBoardSim(tree, BoardConfig(**{"noise_counts": NOISE, **cfg}))  # type: ignore[arg-type]


def now() -> int:
    return time.monotonic_ns()


# -- conversions --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mv", [12000, 9000, 6000, 3000, 0, -12000])
def test_cp_raw_inverts_the_drivers_formula(mv: int) -> None:
    assert abs(physics.cp_volts(physics.cp_raw(mv / 1000)) * 1000 - mv) < 15


def test_the_noise_spreads_a_few_counts(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, noise_counts=3, seed=7)
    driver.pilot(100)
    seen = set()
    for _ in range(40):
        driver.reset_peaks()
        sim.step(now())
        seen.add(driver.raw("voltage2"))
    nominal = physics.cp_raw(12.0)
    assert seen <= set(range(nominal - 3, nominal + 4))
    assert len(seen) >= 4, "fresh noise after each reset"


# -- control pilot ------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["A", "B", "C", "D"])
@pytest.mark.parametrize("duty", [100, 96, 50, 5, 0, None])
def test_pilot_peaks_per_car_state_and_drive(tree: TarragonTree, driver: Driver, state: str, duty: int | None) -> None:
    sim = make(tree)
    sim.inject("car_state", state)
    driver.pilot(duty)
    driver.reset_peaks()
    sim.step(now())
    level = LEVEL_MV[state]
    if duty is None:
        expected = (0, 0)  # floating pilot: the detectors see 0 V
    elif duty == 0:
        expected = (-12000, -12000)
    elif duty == 100:
        expected = (level, level)  # no low phase
    else:
        expected = (level, -12000)
    pos, neg = driver.mv("voltage2"), driver.mv("voltage3")
    assert abs(pos - expected[0]) <= 60 and abs(neg - expected[1]) <= 60, (pos, neg)
    if duty is not None and duty > 0:
        low, high = BAND_MV[state]
        assert low <= pos < high


@pytest.mark.parametrize("duty", [100, 50, 0])
def test_car_in_e_shorts_the_pilot(tree: TarragonTree, driver: Driver, duty: int) -> None:
    sim = make(tree)
    sim.inject("car_state", "E")
    driver.pilot(duty)
    sim.step(now())
    assert abs(driver.mv("voltage2")) <= 60 and abs(driver.mv("voltage3")) <= 60
    assert sim.state().car_view == "E"


def test_diode_fault_mirrors_the_positive_peak(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree)
    sim.inject("car_state", "C")
    sim.inject("diode_fault", True)
    driver.pilot(50)
    sim.step(now())
    assert abs(driver.mv("voltage2") - 6000) <= 60
    assert abs(driver.mv("voltage3") + 6000) <= 60
    sim.inject("diode_fault", False)
    sim.step(now())
    assert abs(driver.mv("voltage3") + 12000) <= 60


def test_cp_short_and_cp_open(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree)
    sim.inject("car_state", "C")
    driver.pilot(50)
    sim.inject("cp_short", True)
    sim.step(now())
    assert abs(driver.mv("voltage2")) <= 60 and abs(driver.mv("voltage3")) <= 60
    sim.inject("cp_short", False)
    sim.inject("cp_open", True)
    sim.step(now())
    assert abs(driver.mv("voltage2") - 12000) <= 60, "a broken CP wire looks like no car"
    assert sim.state().car_view == "E", "the car sees no pilot"


def test_a_fresh_sample_after_each_release_of_the_resets(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, noise_counts=0)
    driver.pilot(50)
    sim.step(now())
    nominal = physics.cp_raw(12.0), physics.cp_raw(-12.0)
    tree.write_adc("voltage2", 1)
    tree.write_adc("voltage3", 1)
    sim.step(now())
    assert (driver.raw("voltage2"), driver.raw("voltage3")) == (1, 1), "nothing changed: nothing written"
    driver.lines.set("CP_POSITIVE_PEAK_RST", True)
    sim.step(now())
    assert driver.raw("voltage2") == 1, "written on the release, not while the reset is held"
    driver.lines.set("CP_POSITIVE_PEAK_RST", False)
    sim.step(now())
    assert (driver.raw("voltage2"), driver.raw("voltage3")) == (nominal[0], 1)
    driver.lines.set("CP_NEGATIVE_PEAK_RST", True)
    driver.lines.set("CP_NEGATIVE_PEAK_RST", False)
    sim.step(now())
    assert driver.raw("voltage3") == nominal[1]


def test_car_view_and_duty(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree)
    assert sim.state().car_view == "A"
    sim.inject("car_state", "B")
    driver.pilot(None)
    sim.step(now())
    assert (sim.state().car_view, sim.state().car_duty_percent) == ("E", 0.0)
    driver.pilot(0)
    sim.step(now())
    assert sim.state().car_view == "F"
    driver.pilot(25)
    sim.step(now())
    assert sim.state().car_view == "B"
    assert sim.state().car_duty_percent == pytest.approx(25.0)


# -- relays -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("feedback", ["no", "nc"])
def test_relay_feedback_follows_after_pull_in_and_drop_out(tree: TarragonTree, driver: Driver, feedback: str) -> None:
    sim = make(tree, relay_feedback=(feedback, feedback))
    open_level = feedback == "nc"
    sim.step(now())
    assert tree.level("RELAY_1_SENSE") is open_level

    before = now()
    after = driver.coil(1, True)
    sim.step(before + 15 * MS - 1000)
    assert tree.level("RELAY_1_SENSE") is open_level, "still pulling in"
    sim.step(after + 15 * MS)
    assert tree.level("RELAY_1_SENSE") is not open_level
    assert sim.state().contacts == (True, False)
    assert tree.level("RELAY_2_SENSE") is open_level, "relay 2 untouched"

    before = now()
    after = driver.coil(1, False)
    sim.step(before + 20 * MS - 1000)
    assert tree.level("RELAY_1_SENSE") is not open_level, "still dropping out"
    sim.step(after + 20 * MS)
    assert tree.level("RELAY_1_SENSE") is open_level
    assert sim.state().contacts == (False, False)


def test_relay_without_feedback_leaves_the_sense_line_alone(tree: TarragonTree, driver: Driver) -> None:
    tree.set_input("RELAY_1_SENSE", True)
    sim = make(tree)
    t = driver.coil(1, True)
    sim.step(t + 20 * MS)
    assert sim.state().contacts == (True, False)
    t = driver.coil(1, False)
    sim.step(t + 25 * MS)
    assert tree.level("RELAY_1_SENSE") is True


def test_a_short_coil_pulse_does_not_move_the_contact(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, relay_feedback=("no", "none"))
    driver.coil(1, True)
    t = driver.coil(1, False)
    sim.step(t + 50 * MS)
    assert tree.level("RELAY_1_SENSE") is False
    assert sim.state().contacts == (False, False)


def test_custom_delays(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, relay_feedback=("none", "no"), relay_pull_in_ms=40.0)
    before = now()
    after = driver.coil(2, True)
    sim.step(before + 40 * MS - 1000)
    assert tree.level("RELAY_2_SENSE") is False
    sim.step(after + 40 * MS)
    assert tree.level("RELAY_2_SENSE") is True


def test_welded_relay_stays_closed_until_the_fault_goes(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, relay_feedback=("no", "none"))
    t = driver.coil(1, True)
    sim.step(t + 15 * MS)
    sim.inject("relay_welded", True)
    t = driver.coil(1, False)
    sim.step(t + 200 * MS)
    assert tree.level("RELAY_1_SENSE") is True
    assert sim.state().contacts[0] is True
    sim.inject("relay_welded", False)
    t = now()
    sim.step(t)
    sim.step(t + 20 * MS)
    assert tree.level("RELAY_1_SENSE") is False


def test_stuck_open_relay_never_closes(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, relay_feedback=("none", "nc"))
    sim.inject("relay_2_stuck_open", True)
    t = driver.coil(2, True)
    sim.step(t + 200 * MS)
    assert tree.level("RELAY_2_SENSE") is True, "nc: still reads open"
    assert sim.state().contacts == (False, False)


def test_broken_sense_wire_reads_low(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, relay_feedback=("nc", "none"))
    sim.step(now())
    assert tree.level("RELAY_1_SENSE") is True
    sim.inject("relay_1_sense_broken", True)
    sim.step(now())
    assert tree.level("RELAY_1_SENSE") is False
    t = driver.coil(1, True)
    sim.step(t + 15 * MS)
    assert sim.state().contacts[0] is True
    assert tree.level("RELAY_1_SENSE") is False


# -- proximity pilot, RCM, grid -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ampacity", "expected"),
    [(13, "A_13"), (20, "A_20"), (32, "A_32"), (63, "A_63_3ph_70_1ph"), (None, "None"), ("fault", None)],
)
def test_pp_bands_as_the_driver_reads_them(
    tree: TarragonTree, driver: Driver, ampacity: int | str | None, expected: str | None
) -> None:
    sim = make(tree)
    sim.inject("pp_ampacity", ampacity)
    sim.inject("car_state", "B")
    sim.step(now())
    assert pp.ampacity(driver.raw("voltage5")) == expected
    sim.inject("car_state", "A")
    sim.step(now())
    assert pp.ampacity(driver.raw("voltage5")) == "None", "no car, no cable in the socket"


def test_pp_cable_override(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, pp_ampacity_A=20)
    sim.inject("cable_plugged", True)
    sim.step(now())
    assert pp.ampacity(driver.raw("voltage5")) == "A_20"
    sim.inject("car_state", "C")
    sim.inject("cable_plugged", False)
    sim.step(now())
    assert pp.ampacity(driver.raw("voltage5")) == "None"
    sim.inject("cable_plugged", None)
    sim.step(now())
    assert pp.ampacity(driver.raw("voltage5")) == "A_20"


@pytest.mark.parametrize("active_low", [False, True])
def test_rcm_trips_on_residual_current_or_injection(tree: TarragonTree, active_low: bool) -> None:
    sim = make(tree, rcm_active_low=active_low, rcm_trip_mA=6.0)
    sim.step(now())
    assert tree.level("DIGITAL_IN_2") is active_low
    sim.inject("rcm_current_mA", 5.9)
    sim.step(now())
    assert tree.level("DIGITAL_IN_2") is active_low
    sim.inject("rcm_current_mA", 6.0)
    sim.step(now())
    assert tree.level("DIGITAL_IN_2") is not active_low
    assert sim.state().rcm_tripped
    sim.inject("rcm_current_mA", 0)
    sim.step(now())
    assert tree.level("DIGITAL_IN_2") is active_low
    sim.inject("rcm", True)
    sim.step(now())
    assert tree.level("DIGITAL_IN_2") is not active_low


def test_rcm_on_another_input(tree: TarragonTree) -> None:
    sim = make(tree, rcm_line="DIGITAL_IN_5")
    sim.inject("rcm", True)
    sim.step(now())
    assert tree.level("DIGITAL_IN_5") is True
    assert tree.level("DIGITAL_IN_2") is False


def test_grid_phase_count_line(tree: TarragonTree) -> None:
    sim = make(tree, grid_phase_count_line="DIGITAL_IN_3", grid_phase_count_active_low=True)
    sim.step(now())
    assert tree.level("DIGITAL_IN_3") is False, "three phases: active (low)"
    sim.inject("grid_phases", 1)
    sim.step(now())
    assert tree.level("DIGITAL_IN_3") is True


# -- power and energy ---------------------------------------------------------------------------------
def charge(
    sim: TarragonBoardSim, driver: Driver, duty: float, max_A: float = 16.0, relays: tuple[int, ...] = (1,)
) -> int:
    sim.inject("car_state", "C")
    sim.inject("car_max_current_A", max_A)
    driver.pilot(duty)
    t = now()
    for n in relays:
        t = driver.coil(n, True)
    sim.step(t + 20 * MS)
    return t + 20 * MS


def test_energy_integrates_what_the_car_draws(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree)
    t = charge(sim, driver, 50.0)  # 50 % allows 30 A, the car takes 16 A
    values = sim.meter_values()
    assert values.current_A == (16.0, 16.0, 16.0)
    assert values.power_total_W == pytest.approx(3 * 230 * 16)
    assert sim.state().live_phases == 3
    sim.step(t + 3600 * 1_000_000_000)
    assert sim.meter_values().energy_import_total_Wh == pytest.approx(3 * 230 * 16)
    assert sim.meter_values().energy_import_Wh[1] == pytest.approx(230 * 16)
    sim.inject("car_state", "B")
    sim.step(t + 7200 * 1_000_000_000)
    assert sim.meter_values().current_A == (0.0, 0.0, 0.0)
    assert sim.meter_values().energy_import_total_Wh == pytest.approx(3 * 230 * 16)


@pytest.mark.parametrize(("duty", "amps"), [(10.0, 6.0), (25.0, 15.0), (90.0, 65.0), (100.0, 0.0), (0.0, 0.0)])
def test_current_follows_the_duty_cycle(tree: TarragonTree, driver: Driver, duty: float, amps: float) -> None:
    sim = make(tree)
    charge(sim, driver, duty, max_A=80.0)
    assert sim.meter_values().current_A[0] == pytest.approx(amps)


def test_no_current_without_power_at_the_inlet_or_the_cars_consent(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree)
    charge(sim, driver, 50.0, relays=())
    assert sim.meter_values().current_A == (0.0, 0.0, 0.0)
    t = driver.coil(1, True)
    sim.inject("car_power_allowed", False)
    sim.step(t + 100 * MS)
    assert sim.meter_values().current_A == (0.0, 0.0, 0.0)
    sim.inject("car_power_allowed", True)
    sim.step(t + 101 * MS)
    assert sim.meter_values().current_A[0] == 16.0


def test_phases_from_the_wiring_the_car_and_the_grid(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, switch_3ph1ph_wiring="serial")
    t = charge(sim, driver, 50.0)
    assert sim.meter_values().current_A == (16.0, 0.0, 0.0), "serial wiring: relay 1 alone is L1"
    t = driver.coil(2, True)
    sim.step(t + 20 * MS)
    assert sim.meter_values().current_A == (16.0, 16.0, 16.0)
    sim.inject("car_phases", 1)
    sim.step(t + 21 * MS)
    assert sim.meter_values().current_A == (16.0, 0.0, 0.0)
    sim.inject("car_phases", 3)
    sim.inject("grid_phases", 1)
    sim.step(t + 22 * MS)
    values = sim.meter_values()
    assert values.current_A == (16.0, 0.0, 0.0)
    assert values.voltage_V == (230.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("wiring", "r1", "r2", "phases"),
    [
        ("none", True, False, 3),
        ("none", False, True, 0),
        ("simultaneous", True, True, 3),
        ("simultaneous", False, True, 0),
        ("mutual", False, True, 1),
        ("mutual", True, False, 3),
    ],
)
def test_live_phases(wiring: str, r1: bool, r2: bool, phases: int) -> None:
    assert physics.live_phases(wiring, r1, r2, 3) == phases


# -- injections, lock, thread -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("warp_drive", True),
        ("car_state", "X"),
        ("diode_fault", "yes"),
        ("car_max_current_A", -1),
        ("car_phases", 2),
        ("pp_ampacity", 16),
        ("relay_3_welded", True),
        ("relay_melted", True),
        ("grid_phases", True),
        ("noise_counts", -1),
        ("lock_jammed", True),
    ],
)
def test_bad_injections_are_refused(tree: TarragonTree, name: str, value: object) -> None:
    sim = make(tree)
    with pytest.raises(InjectionError):
        sim.inject(name, value)


def test_car_disabled_is_no_car(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree)
    charge(sim, driver, 50.0)
    sim.inject("rcm_current_mA", 10.0)
    sim.inject("car_enabled", False)
    sim.step(now() + 30 * MS)
    state = sim.state()
    assert (state.car_view, state.rcm_tripped, state.meter.current_A) == ("A", False, (0.0, 0.0, 0.0))
    sim.inject("car_state", "C")
    sim.step(now() + 31 * MS)
    assert sim.state().car_view == "A", "a disabled car side stays unplugged"
    sim.inject("car_enabled", True)
    sim.step(now() + 32 * MS)
    assert sim.state().car_view == "C"


def test_the_lock_is_stepped_with_the_board(tree: TarragonTree) -> None:
    lock = LockMotorSim(tree)
    sim = TarragonBoardSim(tree, BoardConfig(), lock=lock)
    t = now()
    sim.step(t)
    sim.step(t + 2000 * MS)
    assert lock.cap_mV > 10000, "the storage capacitors charged"
    sim.inject("lock_position", "locked")
    assert lock.locked
    sim.inject("lock_motor_fault", True)
    assert tree.level("MOTOR_1_FAULT_N") is False


def test_the_thread_follows_the_driver(tree: TarragonTree, driver: Driver) -> None:
    sim = make(tree, relay_feedback=("no", "none")).start()
    try:
        sim.inject("car_state", "B")
        driver.pilot(50)
        assert wait(lambda: abs(driver.mv("voltage2") - 9000) <= 60 and abs(driver.mv("voltage3") + 12000) <= 60)
        driver.coil(1, True)
        assert wait(lambda: tree.level("RELAY_1_SENSE"))
        driver.pilot(None)
        assert wait(lambda: abs(driver.mv("voltage2")) <= 60)
    finally:
        sim.close()
    assert sim.error is None


def wait(cond: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
