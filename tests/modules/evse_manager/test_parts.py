# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Energy and limits, session ids and payloads, enable priorities, error classification, the session log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from everest_py.framework.contracts import Contracts
from everest_py.modules.evse_manager.clock import ManualClock
from everest_py.modules.evse_manager.enable import DISABLE, ENABLE, UNASSIGNED, EnableTable, source
from everest_py.modules.evse_manager.energy import Energy, OverCurrentWatch
from everest_py.modules.evse_manager.errors import ErrorTracker
from everest_py.modules.evse_manager.session import Ev, SessionEvents, new_session_id
from everest_py.modules.evse_manager.session_log import SessionLog

from .fakes import CAPS, TOKEN


def check(contracts: Contracts, interface: str, var: str, value: Any) -> None:
    schema = contracts.interface(interface).vars[var]
    contracts.validator(("test", interface, var), schema)(value)


def energy(**kw: Any) -> tuple[Energy, ManualClock, list[int]]:
    clock = ManualClock()
    changes: list[int] = []
    e = Energy(clock, "evse_1", on_change=lambda: changes.append(1), **kw)
    e.set_hw_caps(CAPS)
    return e, clock, changes


def enforced(**root: Any) -> dict[str, Any]:
    return {"uuid": "evse_1", "valid_for": 5, "limits_root_side": root, "schedule": []}


def test_flow_request(contracts: Contracts) -> None:
    e, _, _ = energy()
    meter = {"timestamp": "2025-01-01T00:00:00.000Z", "energy_Wh_import": {"total": 5.0}}
    request = e.flow_request("WaitForAuth", idle=False, meter=meter, priority=True)
    check(contracts, "energy", "energy_flow_request", request)
    assert request["uuid"] == "evse_1"
    assert request["node_type"] == "Evse"
    assert request["evse_state"] == "WaitForAuth"
    assert request["priority_request"] is True
    assert request["energy_usage_root"] == meter
    entry = request["schedule_import"][0]
    assert entry["timestamp"] == "2025-01-01T00:00:00.000Z"
    root = entry["limits_to_root"]
    assert root["ac_max_current_A"]["value"] == 32.0
    assert root["ac_min_current_A"]["value"] == 6.0
    assert (root["ac_max_phase_count"]["value"], root["ac_min_phase_count"]["value"]) == (3, 1)
    assert root["ac_supports_changing_phases_during_charging"] is True
    assert root["ac_number_of_active_phases"] == 3
    assert request["schedule_export"][0]["limits_to_root"]["ac_max_current_A"]["value"] == 0.0


def test_flow_request_before_caps_and_zero_in_idle(contracts: Contracts) -> None:
    e = Energy(ManualClock(), "evse_1", request_zero_power_in_idle=True)
    request = e.flow_request("Unplugged", idle=True)
    check(contracts, "energy", "energy_flow_request", request)
    assert request["schedule_import"][0]["limits_to_root"]["ac_max_current_A"]["value"] == 0.0
    e.set_hw_caps(CAPS)
    assert (
        e.flow_request("Unplugged", idle=True)["schedule_import"][0]["limits_to_root"]["ac_max_current_A"]["value"]
        == 0.0
    )
    assert (
        e.flow_request("WaitForAuth", idle=False)["schedule_import"][0]["limits_to_root"]["ac_max_current_A"]["value"]
        == 32.0
    )


def test_enforce_ampere_watt_and_expiry(contracts: Contracts) -> None:
    e, clock, changes = energy(nominal_voltage=230.0)
    assert not e.enforce({**enforced(ac_max_current_A={"value": 10, "source": "x"}), "uuid": "other"})
    assert e.limit_A == 0.0
    assert e.enforce(
        enforced(ac_max_current_A={"value": 20, "source": "x"}, total_power_W={"value": 6900, "source": "x"})
    )
    assert e.limit_A == pytest.approx(10.0), "6900 W / (230 V * 3 phases)"
    assert e.current_limit() == pytest.approx(10.0)
    assert e.power_available()
    check(contracts, "evse_manager", "limits", e.limits())
    assert e.limits() == {"uuid": "evse_1", "max_current": pytest.approx(10.0), "nr_of_phases_available": 3}
    e.set_phases_available(1)
    e.enforce(enforced(total_power_W={"value": 6900, "source": "x"}))
    assert e.limit_A == pytest.approx(30.0), "one phase"
    clock.advance(4.9)
    assert e.limit_A == pytest.approx(30.0)
    before = len(changes)
    clock.advance(0.2)
    assert e.limit_A == 0.0, "valid_for ran out"
    assert len(changes) == before + 1
    assert not e.power_available()


def test_enforce_caps_and_edge_cases() -> None:
    e, _, _ = energy()
    e.enforce(enforced(ac_max_current_A={"value": 63, "source": "x"}))
    assert e.current_limit() == 32.0, "hardware maximum"
    e.enforce(enforced(ac_max_current_A={"value": -10, "source": "x"}))
    assert e.limit_A == 0.0, "export is not possible in basic charging"
    e.enforce(enforced(ac_max_current_A={"value": 16, "source": "x"}))
    e.enforce({**enforced(ac_max_current_A={"value": 6, "source": "x"}), "valid_for": 0})
    assert e.limit_A == 16.0, "limits that arrive expired are not applied"
    e.enforce(enforced())
    assert e.limit_A == 0.0, "no limit given: nothing to draw"
    e.enforce(enforced(ac_max_current_A={"value": 5.8, "source": "x"}))
    assert not e.power_available(), "below 5.9 A there is no duty cycle"


def test_socket_cable_ampacity() -> None:
    e, _, _ = energy()
    e.set_hw_caps({**CAPS, "connector_type": "IEC62196Type2Socket"})
    e.enforce(enforced(ac_max_current_A={"value": 32, "source": "x"}))
    assert e.current_limit() == 0.0, "a socket needs the cable's ampacity first"
    e.set_pp_ampacity("A_20")
    assert e.current_limit() == 20.0
    e.set_pp_ampacity("A_63_3ph_70_1ph")
    assert e.current_limit() == 32.0
    assert e.pp_ampacity == 63.0
    e.set_pp_ampacity("None")
    assert e.current_limit() == 0.0


def test_phase_switch_target() -> None:
    e, _, _ = energy()
    assert e.phase_switch_target() is None
    e.enforce(enforced(ac_max_current_A={"value": 16, "source": "x"}, ac_max_phase_count={"value": 1, "source": "x"}))
    assert e.phase_switch_target() == 1
    e.set_phases_available(1)
    assert e.phase_switch_target() is None
    e.enforce(enforced(ac_max_current_A={"value": 16, "source": "x"}))
    assert e.phase_switch_target() is None, "no phase limit: leave it"
    e.enforce(enforced(ac_max_current_A={"value": 16, "source": "x"}, ac_max_phase_count={"value": 3, "source": "x"}))
    assert e.phase_switch_target() == 3
    e.set_hw_caps({**CAPS, "min_phase_count_import": 3})
    assert e.phase_switch_target() is None, "fixed phase count"


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("UUID", r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"),
        ("UUID_BASE64", r"^[A-Za-z0-9_-]{22}$"),
        ("SHORT_BASE64", r"^[A-Za-z0-9_-]{16}$"),
    ],
)
def test_session_ids(kind: str, pattern: str) -> None:
    ids = {new_session_id(kind) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.match(pattern, i) for i in ids)


def test_session_payloads(contracts: Contracts) -> None:
    clock = ManualClock()
    meter: dict[str, Any] = {}
    s = SessionEvents(clock, 2, lambda: meter)
    sid = s.start()
    events = [
        s.session_started("EVConnected", TOKEN, 3, "/x"),
        s.transaction_started(TOKEN, 3),
        s.event(Ev.CHARGING_STARTED),
        s.event(Ev.AUTHORIZED),
        s.paused_evse({"NoEnergy", "UserPause", "Error"}),
        s.transaction_finished(
            "Local",
            TOKEN,
            signed={"signed_meter_value": {"signed_meter_data": "d", "signing_method": "m", "encoding_method": "e"}},
        ),
        s.session_finished(),
        s.enable_event(False, source("CSMS", DISABLE, 5)),
        s.event(Ev.SESSION_RESUMED, session_id="old"),
    ]
    for e in events:
        check(contracts, "evse_manager", "session_event", e)
    assert all(e["connector_id"] == 2 for e in events)
    assert [e["uuid"] for e in events[:-1]] == [sid] * 8
    assert events[-1]["uuid"] == "old"
    assert events[0]["session_started"] == {
        "reason": "EVConnected",
        "id_tag": TOKEN,
        "meter_value": {"timestamp": "2025-01-01T00:00:00.000Z", "energy_Wh_import": {"total": 0.0}},
        "reservation_id": 3,
        "logging_path": "/x",
    }
    assert "charging_state_changed_event" in events[2]
    assert "authorization_event" in events[3]
    assert events[4]["charging_paused_evse"] == {"reasons": ["UserPause", "Error", "NoEnergy"]}
    assert events[5]["transaction_finished"]["signed_meter_value"]["signed_meter_data"] == "d"
    assert events[7]["source"]["enable_source"] == "CSMS"
    s.end()
    assert s.event(Ev.ENABLED)["uuid"] == ""


def test_enable_table() -> None:
    t = EnableTable()
    assert t.enabled
    assert not t.update(source("CSMS", DISABLE, 50))
    assert t.update(source("LocalAPI", ENABLE, 40)), "40 beats 50"
    assert t.winner["enable_source"] == "LocalAPI"
    assert not t.update(source("MobileApp", DISABLE, 40)), "same priority: Disable wins"
    assert t.update(source("MobileApp", UNASSIGNED, 0)), "Unassigned entries do not count"
    assert not t.update(source("LocalAPI", UNASSIGNED, 0))
    assert t.winner["enable_source"] == "CSMS"
    t.update(source("CSMS", UNASSIGNED, 0))
    t.update(source("Unspecified", UNASSIGNED, 0))
    assert t.enabled, "nothing assigned: enabled"


def test_error_classification() -> None:
    t = ErrorTracker(fail_on_powermeter_errors=False)
    assert t.raised("bsp", {"type": "evse_board_support/DiodeFault", "severity": "High"})
    assert t.inoperative and t.emergency
    assert not t.raised("bsp", {"type": "evse_board_support/MREC3HighTemperature"})
    assert not t.raised("bsp", {"type": "evse_board_support/VendorWarning"})
    assert not t.raised("connector_lock", {"type": "connector_lock/VendorWarning"})
    assert not t.raised("powermeter_grid_side", {"type": "generic/CommunicationFault"}), "fail_on_powermeter_errors"
    assert not t.raised("slac", {"type": "generic/VendorError"})
    assert t.raised("ac_rcd", {"type": "ac_rcd/DC", "sub_type": "x"})
    assert t.describe() == "bsp: evse_board_support/DiodeFault, ac_rcd: ac_rcd/DC/x"
    assert not t.cleared("ac_rcd", {"type": "ac_rcd/DC"}), "sub_type must match"
    assert t.cleared("ac_rcd", {"type": "ac_rcd/DC", "sub_type": "x"})
    assert t.cleared("bsp", {"type": "evse_board_support/DiodeFault"})
    assert not t.inoperative
    strict = ErrorTracker()
    assert strict.raised("powermeter_car_side", {"type": "generic/VendorError"})
    assert not strict.raised("powermeter_car_side", {"type": "generic/VendorWarning"})


def test_session_log(tmp_path: Path) -> None:
    clock = ManualClock()
    log = SessionLog(clock, str(tmp_path / "logs"), "session_uuid")
    path = log.start("abc")
    assert path is not None
    folder = Path(path)
    assert folder.name == "2025-01-01T00:00:00.000Z-abc"
    log.write("note", "hello")
    assert (folder / "incomplete-eventlog.jsonl").is_file()
    log.finish()
    lines = [json.loads(x) for x in (folder / "eventlog.jsonl").read_text().splitlines()]
    assert [(x["kind"], x["data"]) for x in lines] == [("session", {"session_id": "abc"}), ("note", "hello")]
    assert not (folder / "incomplete-eventlog.jsonl").exists()
    fixed = SessionLog(clock, str(tmp_path / "logs"), "mine")
    clock.advance(1)
    assert Path(fixed.start("x") or "").name == "2025-01-01T00:00:01.000Z-mine"
    fixed.finish()
    assert SessionLog(clock, str(tmp_path), enabled=False).start("y") is None
    (tmp_path / "file").write_text("")
    assert SessionLog(clock, str(tmp_path / "file")).start("z") is None, "unwritable: no log, no crash"


def test_soft_over_current() -> None:
    clock = ManualClock()
    trips: list[str] = []
    watch = OverCurrentWatch(clock, trips.append, tolerance_percent=10.0, noise_A=0.5, timeout_ms=7000)
    limit = (16.0 + 0.5) * 1.1  # 18.15 A
    watch.check(16.0, {"L1": 18.1, "L2": 3.0})
    clock.advance(60)
    assert trips == [], "within tolerance"
    watch.check(16.0, {"L1": 10.0, "L2": -(limit + 0.1)})
    assert watch.over
    clock.advance(6.9)
    watch.check(16.0, {"L2": limit + 1})
    clock.advance(0.05)
    assert trips == [], "the timer is not restarted by further over current values"
    clock.advance(0.1)
    assert len(trips) == 1
    assert "soft over current" in trips[0]
    watch.check(16.0, {"L3": 30.0})
    clock.advance(3)
    watch.check(16.0, {"L3": 16.0})
    clock.advance(10)
    assert len(trips) == 1, "back below the limit in time"
    watch.check(None, {"L1": 99.0})
    clock.advance(10)
    assert len(trips) == 1, "not checked outside charging"


def test_signalled_current(contracts: Contracts) -> None:
    from .fakes import Harness

    h = Harness(contracts).start()
    assert h.charger.signalled_current() is None
    h.charging()
    assert h.charger.signalled_current() == 16.0
    h.charger.pause_charging()
    assert h.charger.signalled_current() == 0.0, "PWM off: nothing may be drawn"


def test_a_power_limit_follows_a_phase_switch() -> None:
    e, _, _ = energy()
    e.set_phases_available(1)
    assert e.enforce(enforced(total_power_W=7360.0, ac_max_current_A=32.0))
    assert e.limit_A == 32.0  # 7360 W on one phase at 230 V
    e.phases_available = 3  # switched to three phases: the same power, a third of the current
    assert abs(e.limit_A - 7360.0 / 690.0) < 1e-9
