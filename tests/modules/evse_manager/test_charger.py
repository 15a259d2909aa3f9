# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The charger state machine with the IEC machine and energy on a manual clock: every transition and timer."""

from __future__ import annotations

from typing import Any

import pytest

from everest_py.framework.contracts import Contracts
from everest_py.modules.evse_manager.enable import DISABLE, ENABLE, UNASSIGNED, source
from everest_py.modules.evse_manager.iec import IECConfig
from everest_py.modules.evse_manager.pwm import IEC_PWM_MAX_UPDATE_INTERVAL_S
from everest_py.modules.evse_manager.states import (
    LEGACY_WAKEUP_TIMEOUT_S,
    PREPARING_TIMEOUT_PAUSED_BY_EV_S,
    STAY_IN_X1_AFTER_T_STEP_EF_S,
    T_STEP_EF_S,
    ChargerConfig,
    State,
)

from .fakes import TOKEN, Harness

DUTY_16A = round(16 / 0.6, 2)
DUTY_10A = round(10 / 0.6, 2)


@pytest.fixture
def h(contracts: Contracts) -> Harness:
    return Harness(contracts).start()


def by_kind(h: Harness, kind: str) -> dict[str, Any]:
    return next(e for e in h.out.events if e["event"] == kind)


def test_start_announces_enabled_and_enters_idle(h: Harness) -> None:
    assert h.out.events[0]["event"] == "Enabled"
    assert h.out.events[0]["source"] == {
        "enable_source": "Unspecified",
        "enable_state": "Enable",
        "enable_priority": 10000,
    }
    assert h.out.events[0]["uuid"] == "", "outside a session the uuid is empty"
    assert h.charger.state is State.IDLE
    assert h.board.take() == [("X1", None), ("allow_power_on", False), ("enable", True)]
    h.check_events()


def test_basic_charging_session(h: Harness) -> None:
    h.new_kinds()
    h.board.take()
    h.limits(16.0, valid_for=3600)
    h.cp("B")
    assert h.new_kinds() == ["SessionStarted", "AuthRequired"]
    started = by_kind(h, "SessionStarted")["session_started"]
    assert started["reason"] == "EVConnected"
    assert started["logging_path"] == f"/logs/{h.sessions.session_id}"
    assert started["meter_value"]["energy_Wh_import"] == {"total": 0.0}, "no meter: a zero reading"
    assert h.charger.state is State.WAITING_FOR_AUTHENTICATION
    assert h.lock.calls == ["lock"]
    assert h.board.take() == [("allow_power_on", False)] * 2, "no PWM before authorization"

    h.meter = {"timestamp": "2025-01-01T00:00:00.000Z", "energy_Wh_import": {"total": 1234.0}}
    h.authorize()
    assert h.new_kinds() == ["Authorized", "TransactionStarted", "PrepareCharging"]
    tx = by_kind(h, "TransactionStarted")["transaction_started"]
    assert tx == {"id_tag": TOKEN, "meter_value": h.meter}
    assert h.out.transactions == [("start", h.sessions.session_id)]
    assert h.board.take() == [("pwm_on", DUTY_16A)]

    h.cp("C")
    assert h.new_kinds() == ["ChargingStarted"]
    assert h.charger.state is State.CHARGING
    assert h.board.power() == [True], "power on the same call: C with PWM, authorized, energy available"
    h.check_events()
    assert {e["uuid"] for e in h.out.events[1:]} == {h.sessions.session_id}


def test_ev_pause_and_resume(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.board.take()
    h.cp("B")
    assert h.board.take()[0] == ("allow_power_on", False), "C->B: off before anything else"
    assert h.new_kinds() == ["ChargingPausedEV"]
    assert h.charger.state is State.CHARGING_PAUSED_EV
    assert h.iec.pwm_running, "PWM stays on so the car can resume"
    h.cp("C")
    assert h.new_kinds() == ["ChargingStarted"]
    assert h.board.power() == [True]
    h.check_events()


def test_evse_pause_and_resume(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.board.take()
    assert h.charger.pause_charging()
    assert h.new_kinds() == ["ChargingPausedEVSE"]
    assert by_kind(h, "ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["UserPause"]}
    assert h.board.take() == [("X1", None)], "PWM off; the car is asked to stop first"
    h.cp("B")
    assert h.board.power() == [False]
    assert h.charger.pause_charging(), "pausing again is fine"
    assert h.new_kinds() == []
    assert h.charger.resume_charging()
    assert h.new_kinds() == ["PrepareCharging"]
    assert h.board.take() == [("pwm_on", DUTY_16A)]
    assert not h.charger.resume_charging(), "nothing to resume"
    h.cp("C")
    assert h.new_kinds() == ["ChargingStarted"]
    assert h.board.power() == [True]
    h.check_events()


def test_evse_pause_car_stays_in_c_forced_off_after_6_s(h: Harness) -> None:
    h.charging()
    h.board.take()
    h.charger.pause_charging()
    h.advance(5.9)
    assert h.board.power() == []
    h.advance(0.2)
    assert h.board.power() == [False]


def test_ev_pause_cannot_be_resumed_by_the_evse(h: Harness) -> None:
    h.charging()
    h.cp("B")
    assert not h.charger.resume_charging()
    assert h.charger.state is State.CHARGING_PAUSED_EV


def test_stop_transaction_waits_for_the_relays(h: Harness) -> None:
    h.charging()
    h.iec.on_bsp_event("PowerOn")
    h.new_kinds()
    h.board.take()
    request = {"reason": "Remote", "id_tag": TOKEN}
    assert h.charger.stop_transaction(request)
    assert h.new_kinds() == ["StoppingCharging"]
    assert h.board.take() == [("X1", None)]
    h.cp("B")
    assert h.board.power() == [False]
    h.iec.on_bsp_event("PowerOff")
    assert h.new_kinds() == ["ChargingFinished", "TransactionFinished"]
    finished = by_kind(h, "TransactionFinished")["transaction_finished"]
    assert finished["reason"] == "Remote"
    assert finished["id_tag"] == TOKEN
    assert h.charger.state is State.FINISHED
    assert not h.charger.stop_transaction(request), "no transaction any more"
    h.cp("C")
    assert h.board.power() == [], "no power after the end of the transaction"
    assert h.charger.state is State.FINISHED
    h.cp("B", "A")
    assert h.new_kinds() == ["SessionFinished"]
    assert h.charger.state is State.IDLE
    assert h.out.transactions[1:] == [("stop", "Remote"), ("session_finished", by_kind(h, "SessionFinished")["uuid"])]
    h.check_events()


def test_stop_transaction_without_relay_feedback_finishes_at_once(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    assert h.charger.stop_transaction({"reason": "Local"})
    assert h.new_kinds() == ["StoppingCharging", "ChargingFinished", "TransactionFinished"]


def test_unplug_while_charging(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.board.take()
    h.cp("A")
    assert h.board.take()[0] == ("allow_power_on", False)
    assert h.new_kinds() == ["StoppingCharging", "ChargingFinished", "TransactionFinished", "SessionFinished"]
    assert by_kind(h, "TransactionFinished")["transaction_finished"]["reason"] == "EVDisconnected"
    assert h.charger.state is State.IDLE
    assert h.lock.calls[-1] == "unlock"
    h.check_events()


def test_unplug_through_b(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.cp("B", "A")
    assert h.new_kinds() == [
        "ChargingPausedEV",
        "StoppingCharging",
        "ChargingFinished",
        "TransactionFinished",
        "SessionFinished",
    ]


def test_unplug_before_authorization(h: Harness) -> None:
    h.cp("B")
    h.new_kinds()
    h.cp("A")
    assert h.new_kinds() == ["SessionFinished"]
    assert h.charger.state is State.IDLE


def test_state_e_while_charging_ends_the_transaction(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.cp("E")
    assert h.new_kinds() == ["StoppingCharging", "ChargingFinished", "TransactionFinished"]
    assert h.charger.state is State.FINISHED


def test_error_while_charging_state_f_then_x1_and_back(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.board.take()
    h.charger.set_inoperative(True)
    assert h.board.take() == [("allow_power_on", False), ("F", None)], "off first, then F"
    assert h.new_kinds() == ["ChargingPausedEVSE"]
    assert by_kind(h, "ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["Error"]}
    h.cp("F")  # the board sees its own F
    assert h.board.take() == [("allow_power_on", False)]
    h.advance(0.29)
    assert h.board.take() == []
    h.advance(0.02)
    assert h.board.take() == [("X1", None)], "state F for state_F_after_fault_ms, then X1"
    h.cp("C")  # the car never left C
    h.board.take()
    h.charger.set_inoperative(False)
    assert h.new_kinds() == ["PrepareCharging", "ChargingStarted"]
    assert h.board.take() == [("pwm_on", DUTY_16A), ("allow_power_on", True)]
    h.check_events()


def test_error_cleared_within_the_f_time_waits_for_it(h: Harness) -> None:
    h.charging()
    h.board.take()
    h.charger.set_inoperative(True)
    h.charger.set_inoperative(False)
    assert h.charger.state is State.PREPARE_CHARGING
    assert h.board.take() == [("allow_power_on", False), ("F", None)], "no PWM during the minimum F time"
    h.advance(0.31)
    assert h.board.take() == [("X1", None), ("pwm_on", DUTY_16A), ("allow_power_on", True)]
    assert h.charger.state is State.CHARGING


def test_error_without_state_f(contracts: Contracts) -> None:
    h = Harness(contracts, charger=ChargerConfig(state_F_after_fault_ms=0)).start()
    h.charging()
    h.board.take()
    h.charger.set_inoperative(True)
    assert h.board.take() == [("allow_power_on", False), ("X1", None)]


def test_error_in_b_with_pwm_goes_to_x1_without_f(h: Harness) -> None:
    h.limits(16.0, valid_for=3600)
    h.cp("B")
    h.authorize()
    h.board.take()
    h.charger.set_inoperative(True)
    assert h.board.take() == [("allow_power_on", False), ("X1", None)], "B2 -> B1, no F"


def test_errors_block_new_sessions(h: Harness) -> None:
    h.new_kinds()
    h.charger.set_inoperative(True)
    h.cp("B")
    assert h.new_kinds() == []
    assert h.charger.state is State.IDLE
    assert not h.charger.reserve(1), "an inoperative EVSE takes no reservation"
    h.charger.set_inoperative(False)
    assert h.new_kinds() == ["SessionStarted", "AuthRequired"]


def test_limits_expire_and_come_back(h: Harness) -> None:
    h.limits(16.0, valid_for=10)
    h.cp("B")
    h.authorize()
    h.cp("C")
    h.new_kinds()
    h.board.take()
    h.advance(9.9)
    assert h.charger.state is State.CHARGING
    h.advance(0.2)
    assert h.new_kinds() == ["ChargingPausedEVSE"]
    assert by_kind(h, "ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["NoEnergy"]}
    assert h.energy.limit_A == 0.0
    assert h.board.take() == [("X1", None)]
    assert h.charger.energy_state == "WaitForEnergy"
    h.limits(10.0, valid_for=3600)
    assert h.new_kinds() == ["PrepareCharging", "ChargingStarted"]
    assert h.board.take() == [("pwm_on", DUTY_10A)], "the car stayed in C within 6 s: the relays never opened"
    h.advance(10)
    assert h.board.take() == [], "no forced power off: PWM is back"


def test_no_limits_no_charging(h: Harness) -> None:
    h.cp("B")
    h.authorize()
    assert h.charger.state is State.CHARGING_PAUSED_EVSE
    assert by_kind(h, "ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["NoEnergy"]}
    h.board.take()
    h.cp("C")
    assert h.board.take() == [], "no PWM and no power without limits"


def test_pwm_changes_at_most_every_5_s(h: Harness) -> None:
    h.charging()
    h.board.take()
    h.advance(1.0)
    h.limits(10.0, valid_for=3600)
    assert h.board.take() == [], "the duty cycle was set 1 s ago"
    h.advance(IEC_PWM_MAX_UPDATE_INTERVAL_S - 1.0 - 0.01)
    assert h.board.take() == []
    h.advance(0.02)
    assert h.board.take() == [("pwm_on", DUTY_10A)]
    h.advance(10)
    h.limits(16.0, valid_for=3600)
    assert h.board.take() == [("pwm_on", DUTY_16A)], "5 s have passed: at once"
    h.limits(12.0, valid_for=3600)
    h.limits(16.0, valid_for=3600)
    h.advance(10)
    assert h.board.take() == [], "back to the signalled value before 5 s: nothing to send"


def test_pwm_follows_limits_at_once_before_charging(h: Harness) -> None:
    h.limits(16.0, valid_for=3600)
    h.cp("B")
    h.authorize()
    h.board.take()
    h.limits(10.0, valid_for=3600)
    assert h.board.take() == [("pwm_on", DUTY_10A)]


def test_authorization_before_plug_in(h: Harness) -> None:
    h.limits(16.0, valid_for=3600)
    h.new_kinds()
    assert h.authorize()
    assert h.new_kinds() == ["SessionStarted", "Authorized"]
    started = by_kind(h, "SessionStarted")["session_started"]
    assert started["reason"] == "Authorized"
    assert started["id_tag"] == TOKEN
    assert h.charger.state is State.IDLE
    assert not h.authorize(), "authorized already"
    h.cp("B")
    assert h.new_kinds() == ["AuthRequired", "TransactionStarted", "PrepareCharging"]
    h.check_events()


def test_rejected_authorization_is_ignored(h: Harness) -> None:
    h.cp("B")
    h.new_kinds()
    assert not h.authorize(authorization_status="Blocked")
    assert h.new_kinds() == []


def test_plugin_timeout(contracts: Contracts) -> None:
    h = Harness(contracts, charger=ChargerConfig(raise_mrec9=True)).start()
    h.cp("B")
    h.new_kinds()
    h.charger.withdraw_authorization()
    assert h.new_kinds() == ["Deauthorized", "PluginTimeout"]
    assert h.out.mrec9 == [False, True]
    assert h.charger.state is State.WAITING_FOR_AUTHENTICATION, "the car is still there"
    h.cp("A")
    assert h.out.mrec9[-1] is False, "cleared on unplug"
    h.check_events()


def test_withdraw_after_authorization_without_car(h: Harness) -> None:
    h.authorize()
    h.new_kinds()
    h.charger.withdraw_authorization()
    assert h.new_kinds() == ["Deauthorized", "SessionFinished"]
    assert not h.charger.session_active


def test_withdraw_while_charging_is_ignored(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.charger.withdraw_authorization()
    assert h.new_kinds() == []
    assert h.charger.state is State.CHARGING


def test_reservation(h: Harness) -> None:
    h.limits(16.0, valid_for=3600)
    h.new_kinds()
    assert h.charger.reserve(5)
    assert h.new_kinds() == ["ReservationStart"]
    assert h.charger.reserve(5), "the same reservation again"
    assert h.new_kinds() == []
    h.cp("B")
    h.new_kinds()
    assert not h.authorize(), "reserved: a token without the reservation id does not start"
    assert not h.authorize(reservation_id=6)
    assert h.new_kinds() == []
    assert h.authorize(reservation_id=5)
    assert h.new_kinds() == ["Authorized", "ReservationEnd", "TransactionStarted", "PrepareCharging"]
    assert by_kind(h, "TransactionStarted")["transaction_started"]["reservation_id"] == 5
    assert not h.charger.reserve(7), "busy"
    h.check_events()


def test_cancel_reservation(h: Harness) -> None:
    h.new_kinds()
    h.charger.cancel_reservation()
    assert h.new_kinds() == []
    h.charger.reserve(-1)
    h.charger.cancel_reservation()
    assert h.new_kinds() == ["ReservationStart", "ReservationEnd"]


def test_negative_reservation_accepts_any_token(h: Harness) -> None:
    h.charger.reserve(-1)
    h.cp("B")
    assert h.authorize()


def test_enable_disable_priorities(h: Harness) -> None:
    h.new_kinds()
    h.board.take()
    csms_off = source("CSMS", DISABLE, 10)
    assert not h.charger.enable_disable(0, csms_off)
    assert h.new_kinds() == ["Disabled"]
    assert h.out.events[-1]["source"] == csms_off
    assert h.charger.state is State.DISABLED
    assert h.board.take() == [("allow_power_on", False), ("F", None), ("enable", False)]
    assert not h.charger.enable_disable(1, source("LocalAPI", ENABLE, 100)), "lower priority (higher number)"
    assert h.new_kinds() == []
    assert not h.charger.enable_disable(1, source("MobileApp", ENABLE, 10)), "same priority: Disable wins"
    assert h.charger.enable_disable(1, source("CSMS", UNASSIGNED, 10)), "CSMS leaves it to the others"
    assert h.new_kinds() == ["Enabled"]
    assert h.out.events[-1]["source"]["enable_source"] == "MobileApp"
    assert h.charger.state is State.IDLE
    assert ("enable", True) in h.board.take()
    h.check_events()


def test_disable_ends_a_running_transaction(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.board.take()
    h.charger.enable_disable(0, source("LocalAPI", DISABLE, 0))
    assert h.board.take()[0] == ("allow_power_on", False)
    assert h.new_kinds() == ["ChargingFinished", "TransactionFinished", "SessionFinished", "Disabled"]
    assert by_kind(h, "TransactionFinished")["transaction_finished"]["reason"] == "Other"
    h.cp("A", "B")
    assert h.new_kinds() == [], "nothing starts while disabled"
    h.charger.enable_disable(0, source("LocalAPI", ENABLE, 0))
    assert h.new_kinds() == ["Enabled", "SessionStarted", "AuthRequired"], "B reported while disabled counts"


def test_disable_authentication(contracts: Contracts) -> None:
    h = Harness(contracts, charger=ChargerConfig(disable_authentication=True)).start()
    h.limits(16.0, valid_for=3600)
    h.new_kinds()
    h.cp("B")
    assert h.new_kinds() == ["SessionStarted", "AuthRequired", "Authorized", "TransactionStarted", "PrepareCharging"]
    assert by_kind(h, "TransactionStarted")["transaction_started"]["id_tag"]["id_token"]["value"] == "FREESERVICE"
    h.check_events()


def test_legacy_wakeup_then_paused_by_ev(h: Harness) -> None:
    h.limits(16.0, valid_for=3600)
    h.cp("B")
    h.authorize()
    h.board.take()
    h.advance(LEGACY_WAKEUP_TIMEOUT_S - 0.1)
    assert h.board.take() == []
    h.advance(0.2)
    assert h.charger.state is State.T_STEP_EF
    assert h.board.take() == [("F", None)]
    h.advance(T_STEP_EF_S)
    assert h.board.take() == [("X1", None)]
    h.advance(STAY_IN_X1_AFTER_T_STEP_EF_S)
    assert h.board.take() == [("pwm_on", DUTY_16A)]
    assert h.charger.state is State.PREPARE_CHARGING
    h.new_kinds()
    h.advance(PREPARING_TIMEOUT_PAUSED_BY_EV_S + 0.1)
    assert h.new_kinds() == ["ChargingPausedEV"]
    h.cp("C")
    assert h.new_kinds() == ["ChargingStarted"]


def test_phase_switch_while_charging(h: Harness) -> None:
    h.charging()
    h.new_kinds()
    h.board.take()
    h.limits(16.0, valid_for=3600, ac_max_phase_count={"value": 1, "source": "test"})
    assert h.energy.phase_switch_target() == 1
    assert h.charger.switch_phases(False)
    assert h.new_kinds() == ["SwitchingPhases"]
    assert h.board.take() == [("X1", None)]
    h.cp("B")  # the car follows X1
    assert h.board.take() == [("allow_power_on", False)]
    h.advance(9.9)
    assert h.board.take() == []
    h.advance(0.2)
    assert h.board.take() == [("three_phases", False), ("pwm_on", DUTY_16A)]
    assert h.new_kinds() == ["PrepareCharging"]
    h.cp("C")
    assert h.energy.active_phases == 1
    assert h.energy.phase_switch_target() is None
    assert h.new_kinds() == ["ChargingStarted"]
    h.check_events()


def test_phase_switch_outside_charging_goes_straight_to_the_board(h: Harness) -> None:
    assert h.charger.switch_phases(False)
    assert h.board.take()[-1] == ("three_phases", False)
    assert h.new_kinds()[-1] != "SwitchingPhases"


def test_phase_switch_refused_without_board_support(contracts: Contracts) -> None:
    from .fakes import CAPS

    h = Harness(contracts, caps={**CAPS, "supports_changing_phases_during_charging": False}).start()
    h.charging()
    assert not h.charger.switch_phases(False)
    assert h.charger.state is State.CHARGING


def test_lock_waits_for_authorization_without_lock_in_b(contracts: Contracts) -> None:
    h = Harness(contracts, iec=IECConfig(lock_connector_in_state_b=False)).start()
    h.limits(16.0, valid_for=3600)
    h.cp("B")
    assert h.lock.calls == []
    h.authorize()
    assert h.lock.calls == ["lock"]
    h.charger.stop_transaction({"reason": "Local"})
    assert h.lock.calls == ["lock", "unlock"], "unlocked when the transaction is finished"


def test_simplified_mode_car(h: Harness) -> None:
    h.limits(16.0, valid_for=3600)
    h.cp("C")  # straight from A to C
    h.new_kinds()
    h.board.take()
    h.authorize()
    assert h.new_kinds() == ["Authorized", "TransactionStarted", "PrepareCharging", "ChargingStarted"]
    assert h.board.take() == [("pwm_on", DUTY_16A), ("allow_power_on", True)]


def test_f_then_c_without_an_error_charges_again() -> None:
    h = Harness().start()
    h.charging()
    h.board.take()
    h.cp("F")  # the board reports F (a pilot fault), no error raised: power off at once
    assert h.board.power() == [False]
    h.cp("C")
    h.advance(30)
    calls = h.board.take()
    assert any(name == "pwm_on" for name, _ in calls), calls  # the duty cycle is sent again
    assert ("allow_power_on", True) in calls, calls  # and power comes back
    assert h.charger.state is State.CHARGING


def test_inoperative_during_the_legacy_wakeup_offers_no_pwm() -> None:
    h = Harness().start()
    h.limits(16.0, valid_for=3600)
    h.cp("B")
    h.authorize()
    assert h.charger.state is State.PREPARE_CHARGING
    h.advance(30.01)  # the car stays in B: legacy wake-up through E/F
    assert h.charger.state is State.T_STEP_EF
    h.board.take()
    h.charger.set_inoperative(True)
    h.advance(5)
    calls = h.board.take()
    assert not any(name == "pwm_on" and value < 100 for name, value in calls), calls
    assert h.charger.state is State.CHARGING_PAUSED_EVSE
