# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YetiSimulator logic: pilot physics, debounced events, relay rules, current, meter, RCD, lock, injection."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest
import yaml

from everest_py.framework.contracts import Contracts
from everest_py.modules.yeti_simulator import cp, injection
from everest_py.modules.yeti_simulator.board import CAPABILITIES, YetiBoard
from everest_py.modules.yeti_simulator.cp import Output, Pilot
from everest_py.modules.yeti_simulator.lock import MOTOR_S, ConnectorLock
from everest_py.modules.yeti_simulator.meter import Meter
from everest_py.modules.yeti_simulator.rcd import Rcd

from .test_manifests import MODULES, REFERENCE, manifest, shape

TICK = 0.05
DUTY_10A = 10 / 0.6
DUTY_32A = 32 / 0.6


class Recorder:
    """BoardPort that keeps everything; ``refuse`` lists error types the interface would not allow."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.events: list[str] = []
        self.active: dict[tuple[str, str], str] = {}
        self.history: list[tuple[str, str, str]] = []
        self.refuse = refuse

    def event(self, event: str) -> None:
        self.events.append(event)

    def raise_error(self, impl: str, error_type: str, message: str, severity: str) -> bool:
        if error_type in self.refuse:
            return False
        if (impl, error_type) not in self.active:
            self.active[(impl, error_type)] = severity
            self.history.append(("raise", impl, error_type))
        return True

    def clear_error(self, impl: str, error_type: str) -> None:
        if self.active.pop((impl, error_type), None) is not None:
            self.history.append(("clear", impl, error_type))


class Sim:
    """A board and a hand-driven clock."""

    def __init__(self, reset_meter: bool = True, refuse: tuple[str, ...] = ()) -> None:
        self.port = Recorder(refuse)
        self.now = 0.0
        self.board = YetiBoard(self.port, "meter-1", reset_meter_on_session_start=reset_meter, now=0.0)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / TICK)):
            self.now += TICK
            self.board.step(self.now)

    def take(self) -> list[str]:
        events, self.port.events = self.port.events, []
        return events

    def plugged_and_charging(self, amps: float = 16.0, duty: float = DUTY_10A) -> None:
        """Enable both sides, plug in, PWM, C, power allowed: ends with the relays closed."""
        b = self.board
        b.enable(True)
        b.ev_enable(True)
        b.set_car_current(amps)
        b.set_car_state("B")
        self.run(0.2)
        b.set_pilot(Output.PWM, duty)
        b.set_car_state("C")
        self.run(0.2)
        b.allow_power_on(True)
        assert b.relays_closed
        self.take()


@pytest.fixture
def sim() -> Sim:
    return Sim()


# -- pilot physics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pilot", "car", "diode_shorted", "expected"),
    [
        (Pilot(Output.X1), "A", False, (12.0, 12.0)),
        (Pilot(Output.X1), "B", False, (9.0, 9.0)),
        (Pilot(Output.PWM, 50), "B", False, (9.0, -12.0)),
        (Pilot(Output.PWM, 50), "C", False, (6.0, -12.0)),
        (Pilot(Output.PWM, 50), "D", False, (3.0, -12.0)),
        (Pilot(Output.PWM, 50), "C", True, (6.0, -6.0)),
        (Pilot(Output.PWM, 50), "A", True, (12.0, -12.0)),
        (Pilot(Output.PWM, 100), "C", False, (6.0, 6.0)),
        (Pilot(Output.PWM, 0), "C", False, (-12.0, -12.0)),
        (Pilot(Output.F), "B", False, (-12.0, -12.0)),
        (Pilot(Output.E), "B", False, (0.0, 0.0)),
        (Pilot(Output.PWM, 50), "E", False, (0.0, 0.0)),
    ],
)
def test_plateaus(pilot: Pilot, car: str, diode_shorted: bool, expected: tuple[float, float]) -> None:
    assert cp.plateaus(pilot, car, diode_shorted) == expected


@pytest.mark.parametrize(
    ("high", "state"),
    [(12.0, "A"), (10.5, "A"), (9.0, "B"), (6.0, "C"), (3.0, "D"), (0.0, "E"), (-12.0, "F"), (-6.0, "F")],
)
def test_decode(high: float, state: str) -> None:
    assert cp.decode(high) == state


def test_diode_fault_is_seen_only_with_pwm_and_a_car() -> None:
    pwm = Pilot(Output.PWM, 50)
    assert cp.diode_fault(pwm, 9.0, -9.0)
    assert not cp.diode_fault(pwm, 9.0, -12.0)
    assert not cp.diode_fault(pwm, 12.0, -12.0)
    assert not cp.diode_fault(Pilot(Output.X1), 9.0, 9.0)


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (0, 0),
        (5, 0),
        (7.5, 0),
        (8, 6),
        (9.9, 6),
        (10, 6),
        (DUTY_10A, 10),
        (50, 30),
        (85, 51),
        (90, 65),
        (96, 80),
        (96.5, 80),
        (97.5, 0),
        (100, 0),
    ],
)
def test_pwm_limit(duty: float, amps: float) -> None:
    assert cp.pwm_limit_A(duty) == pytest.approx(amps)


def test_hlc_band() -> None:
    assert [cp.is_hlc(d) for d in (2.9, 3, 5, 7, 7.1)] == [False, True, True, True, False]


# -- events, debounce, enable ---------------------------------------------------------------------------


def test_disabled_board_reports_nothing_and_enable_reports_the_state_after_two_samples(sim: Sim) -> None:
    sim.run(1)
    assert sim.take() == []
    assert sim.board.pilot == Pilot(Output.F, 0.0)
    sim.board.enable(True)
    sim.run(TICK)
    assert sim.take() == [], "one sample is not enough"
    sim.run(TICK)
    assert sim.take() == ["A"]
    sim.run(1)
    assert sim.take() == [], "no repeats"


def test_a_glitch_shorter_than_the_debounce_is_not_reported(sim: Sim) -> None:
    sim.board.enable(True)
    sim.board.ev_enable(True)
    sim.run(0.2)
    sim.take()
    sim.board.set_car_state("B")
    sim.run(TICK)
    sim.board.set_car_state("A")
    sim.run(0.5)
    assert sim.take() == []


def test_the_car_side_counts_only_when_enabled(sim: Sim) -> None:
    sim.board.enable(True)
    sim.board.set_car_state("B")
    sim.run(0.2)
    assert sim.take() == ["A"]
    sim.board.ev_enable(True)
    sim.board.set_car_state("B")
    sim.run(0.2)
    assert sim.take() == ["B"]
    sim.board.ev_enable(False)
    sim.run(0.2)
    assert sim.take() == ["A"]
    assert sim.board.ev.cp_state == "A", "disabling resets the car side"


def test_pilot_commands_while_disabled_are_cached(sim: Sim) -> None:
    sim.board.set_pilot(Output.PWM, 25.0)
    assert sim.board.pilot.output is Output.F
    sim.board.enable(True)
    assert sim.board.pilot == Pilot(Output.PWM, 25.0)
    assert sim.board.duty_cycle == 25.0
    sim.board.set_pilot(Output.X1)
    assert sim.board.duty_cycle == 100.0
    sim.board.set_pilot(Output.F)
    assert sim.board.duty_cycle == 0.0


def test_evse_driven_states(sim: Sim) -> None:
    sim.board.enable(True)
    sim.board.ev_enable(True)
    sim.board.set_car_state("B")
    sim.run(0.2)
    sim.board.set_pilot(Output.F)
    sim.run(0.2)
    sim.board.set_pilot(Output.E)
    sim.run(0.2)
    sim.board.set_pilot(Output.X1)
    sim.run(0.2)
    assert sim.take() == ["B", "F", "E", "B"]


# -- relays and current -------------------------------------------------------------------------------------


def test_a_session_events_and_currents(sim: Sim) -> None:
    b = sim.board
    b.enable(True)
    b.ev_enable(True)
    b.set_car_current(16)
    b.set_car_state("B")
    sim.run(0.2)
    b.allow_power_on(True)
    assert not b.relays_closed, "not in B"
    b.set_car_state("C")
    sim.run(0.2)
    assert not b.relays_closed, "not without PWM"
    b.set_pilot(Output.PWM, DUTY_10A)
    assert b.relays_closed
    assert sim.take() == ["B", "C", "PowerOn"]
    assert b.currents == pytest.approx((10.0, 10.0, 10.0)), "min(car 16 A, PWM 10 A)"
    b.set_pilot(Output.PWM, DUTY_32A)
    assert b.currents == pytest.approx((16.0, 16.0, 16.0)), "min(car 16 A, PWM 32 A)"
    b.set_car_phases(False)
    assert b.currents == pytest.approx((16.0, 0.0, 0.0))
    b.set_car_phases(True)
    assert b.switch_phases(False) == 1
    assert b.currents == pytest.approx((16.0, 0.0, 0.0))
    assert b.switch_phases(True) == 3
    b.ev_allow_power_on(False)
    assert b.currents == (0.0, 0.0, 0.0), "the car's own contactor"
    b.ev_allow_power_on(True)
    b.set_pilot(Output.X1)
    assert b.relays_closed, "PWM off in C: the 6 s rule is the EvseManager's"
    assert b.currents == (0.0, 0.0, 0.0), "no PWM, no current"
    b.set_pilot(Output.PWM, DUTY_10A)
    b.set_car_state("B")
    sim.run(TICK)
    assert b.relays_closed
    sim.run(TICK)
    assert not b.relays_closed, "the board opens at C->B by itself"
    assert sim.take() == ["B", "PowerOff"]
    assert b.telemetry()["relais_on"] is False


@pytest.mark.parametrize("output", [Output.F, Output.E])
def test_f_and_e_open_the_relays_at_once(sim: Sim, output: Output) -> None:
    sim.plugged_and_charging()
    sim.board.set_pilot(output)
    assert not sim.board.relays_closed
    assert sim.take() == ["PowerOff"]


def test_power_off_and_disable_open_the_relays(sim: Sim) -> None:
    sim.plugged_and_charging()
    sim.board.allow_power_on(False)
    assert sim.take() == ["PowerOff"]
    sim.board.allow_power_on(True)
    assert sim.take() == ["PowerOn"]
    sim.board.enable(False)
    assert sim.take() == ["PowerOff"]
    sim.run(0.2)
    assert sim.take() == []
    sim.board.enable(True)
    sim.run(0.2)
    assert sim.take() == ["C", "PowerOn"], "re-enabled: the state is reported again"


def test_hlc_pwm_gives_the_car_what_it_asks(sim: Sim) -> None:
    sim.plugged_and_charging(amps=20, duty=5.0)
    assert sim.board.currents == (20.0, 20.0, 20.0)


def test_no_current_in_b_or_with_relays_open(sim: Sim) -> None:
    b = sim.board
    b.enable(True)
    b.ev_enable(True)
    b.set_car_current(16)
    b.set_car_state("C")
    b.set_pilot(Output.PWM, DUTY_10A)
    sim.run(0.2)
    assert b.currents == (0.0, 0.0, 0.0)


def test_safe_state_opens_silently(sim: Sim) -> None:
    sim.plugged_and_charging()
    sim.board.safe_state()
    assert not sim.board.relays_closed and not sim.board.enabled
    assert sim.board.currents == (0.0, 0.0, 0.0)
    assert sim.take() == []


# -- faults ---------------------------------------------------------------------------------------------


def test_diode_fault(sim: Sim) -> None:
    b = sim.board
    b.enable(True)
    b.ev_enable(True)
    b.set_car_state("B")
    b.set_car_diode(True)
    sim.run(0.2)
    assert sim.take() == ["B"], "not visible without PWM"
    b.set_pilot(Output.PWM, DUTY_10A)
    sim.run(0.2)
    assert sim.take() == ["F"]
    assert sim.port.active == {("board_support", "evse_board_support/DiodeFault"): "High"}
    b.allow_power_on(True)
    b.set_car_state("C")
    sim.run(0.2)
    assert not b.relays_closed, "no power with a shorted diode"
    b.set_pilot(Output.X1)
    sim.run(0.2)
    assert sim.take() == ["C"]
    assert sim.port.active, "X1 cannot show the diode is fine again"
    b.set_car_diode(False)
    b.set_pilot(Output.PWM, DUTY_10A)
    sim.run(0.2)
    assert sim.port.active == {}
    assert b.relays_closed
    b.set_car_diode(True)
    sim.run(0.2)
    assert not b.relays_closed
    b.set_car_state("A")
    sim.run(0.2)
    assert sim.port.active == {}, "unplugging clears it"
    assert sim.take() == ["PowerOn", "F", "PowerOff", "A"]


def test_rcd_trips_and_re_arms(sim: Sim) -> None:
    sim.plugged_and_charging()
    b = sim.board
    b.set_residual_current(dc_mA=6.0)
    assert b.relays_closed, "6 mA DC is the limit, not over it"
    b.set_residual_current(dc_mA=6.5)
    assert not b.relays_closed
    assert sim.take() == ["PowerOff"]
    assert sim.port.active == {("rcd", "ac_rcd/DC"): "High", ("rcd", "ac_rcd/MREC2GroundFailure"): "High"}
    assert b.measurement()["rcd_current_mA"] == 6.5
    assert b.rcd_reset() is False
    b.set_residual_current(dc_mA=0.0)
    assert sim.port.active, "latched until reset"
    sim.run(0.2)
    assert not b.relays_closed
    assert b.rcd_reset() is True
    assert sim.port.active == {}
    assert b.relays_closed
    b.set_residual_current(ac_mA=31.0)
    assert ("rcd", "ac_rcd/AC") in sim.port.active
    b.set_car_state("A")
    sim.run(0.2)
    assert sim.port.active == {}, "a car leaving takes its residual current along"
    assert b.rcd.current_mA == 0.0


def test_rcd_limits() -> None:
    rcd = Rcd(dc_mA=5.0, ac_mA=29.0)
    assert rcd.check() is None
    rcd.ac_mA = 30.5
    assert rcd.check() == "AC"
    assert rcd.check() is None, "reported once"
    assert rcd.tripped_by == "AC"


def test_rcd_self_test(sim: Sim) -> None:
    assert sim.board.rcd_self_test()
    sim.board.inject("rcd", "ac_rcd/Selftest", True)
    assert not sim.board.rcd_self_test()


def test_injected_errors(sim: Sim) -> None:
    sim.plugged_and_charging()
    b = sim.board
    assert b.inject("board_support", "evse_board_support/MREC3HighTemperature", True)
    assert b.relays_closed, "derating does not stop charging"
    assert sim.port.active[("board_support", "evse_board_support/MREC3HighTemperature")] == "Low"
    assert b.inject("board_support", "evse_board_support/MREC6UnderVoltage", True)
    assert not b.relays_closed
    assert b.inject("connector_lock", "connector_lock/ConnectorLockFailedLock", True)
    assert b.inject("board_support", "evse_board_support/MREC6UnderVoltage", False)
    assert b.relays_closed, "lock errors do not block the relays"
    assert set(sim.port.active) == {
        ("board_support", "evse_board_support/MREC3HighTemperature"),
        ("connector_lock", "connector_lock/ConnectorLockFailedLock"),
    }


def test_an_injected_error_the_interface_refuses_is_not_kept() -> None:
    sim = Sim(refuse=("evse_board_support/Nonsense",))
    sim.plugged_and_charging()
    assert not sim.board.inject("board_support", "evse_board_support/Nonsense", True)
    assert sim.board.relays_closed


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"error_type": "MREC6UnderVoltage", "raise": "true"}', ("board_support", "MREC6UnderVoltage", True)),
        ('{"error_type": "DiodeFault", "raise": "false"}', ("board_support", "DiodeFault", False)),
        ('{"error_type": "ac_rcd_DC", "raise": true}', ("rcd", "ac_rcd/DC", True)),
        ('{"error_type": "lock_VendorError", "raise": "TRUE"}', ("connector_lock", "connector_lock/VendorError", True)),
        ('{"error_type": "powermeter_VendorError", "raise": "true"}', ("powermeter", "generic/VendorError", True)),
        ('{"error_type": "ac_rcd/Selftest", "raise": "true"}', ("rcd", "ac_rcd/Selftest", True)),
    ],
)
def test_injection_payloads(payload: str, expected: tuple[str, str, bool]) -> None:
    impl, error_type, active = expected
    if "/" not in error_type:
        error_type = f"evse_board_support/{error_type}"
    assert injection.parse(payload) == injection.Injection(impl, error_type, active)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("raise it", "not JSON"),
        ('["DiodeFault"]', "not a JSON object"),
        ('{"error_type": 3, "raise": "true"}', "error_type must be a string"),
        ('{"error_type": "DiodeFault", "raise": "yes"}', "raise must be"),
        ('{"error_type": "DiodeFault"}', "raise must be"),
        ('{"error_type": "", "raise": "true"}', "empty"),
        ('{"error_type": "system/Reboot", "raise": "true"}', "namespace"),
    ],
)
def test_bad_injection_payloads(payload: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        injection.parse(payload)


# -- lock ---------------------------------------------------------------------------------------------------


def test_lock_motor() -> None:
    lock = ConnectorLock()
    lock.lock(10.0)
    assert lock.moving and not lock.locked
    assert lock.step(10.0 + MOTOR_S / 2) is None
    assert lock.step(10.0 + MOTOR_S) is True
    assert lock.locked and not lock.moving
    lock.lock(11.0)
    assert not lock.moving, "already locked"
    lock.unlock(12.0)
    lock.lock(12.1)
    assert lock.step(12.1 + MOTOR_S) is True, "the last command wins"


def test_board_lock(sim: Sim) -> None:
    sim.board.lock_connector(sim.now)
    sim.run(MOTOR_S + TICK)
    assert sim.board.lock.locked
    sim.board.unlock_connector(sim.now)
    sim.run(MOTOR_S + TICK)
    assert not sim.board.lock.locked


# -- meter --------------------------------------------------------------------------------------------


def test_energy_integration_and_reset_on_plug_in(sim: Sim) -> None:
    sim.plugged_and_charging()
    sim.board.set_car_phases(False)
    start = sim.board.meter.total_Wh
    sim.run(36.0)
    # 10 A x 230 V on L1 for 36 s = 23 Wh (three phases until set_car_phases took effect: before `start`)
    assert sim.board.meter.total_Wh - start == pytest.approx(23.0)
    reading = sim.board.powermeter("2025-01-01T00:00:00.000Z")
    assert reading["current_A"] == {"L1": 10.0, "L2": 0.0, "L3": 0.0, "N": 0.0}
    assert reading["power_W"] == {"total": 2300.0, "L1": 2300.0, "L2": 0.0, "L3": 0.0}
    sim.board.set_car_state("A")
    sim.run(0.2)
    assert sim.board.meter.total_Wh == pytest.approx(start + 23.0), "kept after unplugging"
    sim.board.set_car_state("B")
    sim.run(0.2)
    assert sim.board.meter.total_Wh == 0.0, "reset at the next plug-in"


def test_no_reset_when_configured_so() -> None:
    sim = Sim(reset_meter=False)
    sim.plugged_and_charging()
    sim.run(1.0)
    sim.board.set_car_state("A")
    sim.run(0.2)
    energy = sim.board.meter.total_Wh
    sim.board.set_car_state("B")
    sim.run(0.2)
    assert sim.board.meter.total_Wh == energy > 0


def test_transactions(check_result) -> None:
    meter = Meter("m")
    request = {
        "evse_id": "E1",
        "transaction_id": "t1",
        "identification_status": "ASSIGNED",
        "identification_flags": [],
        "identification_type": "ISO14443",
    }
    assert meter.start_transaction(request, "2025-01-01T00:00:00.000Z") == {"status": "OK"}
    assert meter.start_transaction(request, "2025-01-01T00:00:00.000Z")["status"] == "UNEXPECTED_ERROR"
    meter.integrate((10.0, 10.0, 10.0), 3600.0)
    stopped = meter.stop_transaction("t1", "2025-01-01T01:00:00.000Z")
    check_result("powermeter", "stop_transaction", stopped)
    assert json.loads(stopped["start_signed_meter_value"]["signed_meter_data"])["energy_Wh_import"] == 0.0
    assert json.loads(stopped["signed_meter_value"]["signed_meter_data"])["energy_Wh_import"] == 6900.0
    unknown = meter.stop_transaction("t1", "2025-01-01T01:00:00.000Z")
    assert unknown["status"] == "UNEXPECTED_ERROR" and "t1" in unknown["error"]
    check_result("powermeter", "stop_transaction", unknown)
    meter.start_transaction({**request, "transaction_id": "t2"}, "2025-01-01T00:00:00.000Z")
    assert meter.stop_transaction("", "2025-01-01T01:00:00.000Z") == {"status": "OK"}
    assert meter.transactions == {}
    assert meter.start_transaction({**request, "transaction_id": ""}, "x")["status"] == "UNEXPECTED_ERROR"


# -- published values match the contracts -------------------------------------------------------------------


def check_var(contracts: Contracts, interface: str, var: str, value: Any) -> None:
    contracts.validator(("test", interface, var), contracts.interface(interface).vars[var])(value)


def test_published_values_match_the_interfaces(sim: Sim, contracts: Contracts) -> None:
    sim.plugged_and_charging()
    sim.run(1.0)
    b = sim.board
    check_var(contracts, "evse_board_support", "capabilities", CAPABILITIES)
    check_var(contracts, "evse_board_support", "telemetry", b.telemetry())
    check_var(contracts, "ev_board_support", "bsp_measurement", b.measurement())
    check_var(contracts, "powermeter", "powermeter", b.powermeter("2025-01-01T00:00:00.000Z"))
    assert b.measurement() == {
        "cp_pwm_duty_cycle": pytest.approx(DUTY_10A, abs=0.01),
        "proximity_pilot": {"ampacity": "A_32"},
        "rcd_current_mA": 0.0,
    }


# -- manifests and file headers of both simulators -----------------------------------------------------------


@pytest.mark.parametrize(("name", "folder"), [("YetiSimulator", "yeti_simulator"), ("EvManager", "ev_manager")])
def test_manifest_matches_the_reference(name: str, folder: str) -> None:
    ref_file = REFERENCE / name / "manifest.yaml"
    if not ref_file.is_file():
        pytest.skip(f"no reference manifest at {ref_file}")
    ours, ref = manifest(folder), yaml.safe_load(ref_file.read_text())
    assert shape(ours) == shape(ref)
    assert ours["description"] != ref["description"]
    assert ours["metadata"] == {
        "license": "https://opensource.org/licenses/Apache-2.0",
        "authors": ["everest-py contributors"],
    }
    header = ["# SPDX-License-Identifier: Apache-2.0", "# Copyright contributors to everest-py"]
    for f in (MODULES / folder).iterdir():
        if f.suffix in (".py", ".yaml"):
            assert f.read_text().splitlines()[:2] == header, f
        if f.suffix == ".py":
            doc = ast.get_docstring(ast.parse(f.read_text()))
            assert doc and "\n" not in doc.split("\n\n")[0], f
    assert (MODULES / folder / "README.md").is_file()


def test_unknown_car_states_are_refused(sim: Sim) -> None:
    with pytest.raises(ValueError, match="unknown CP state 'X'"):
        sim.board.set_car_state("X")
    assert sim.board.ev.cp_state == "A"
