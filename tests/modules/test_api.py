# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""API: rounding, session info, command payloads, and the everest_api/... topics of a running stack."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from everest_py.framework.contracts import Contracts
from everest_py.modules.api import commands, decimals
from everest_py.modules.api.commands import Call
from everest_py.modules.api.decimals import Precision
from everest_py.modules.api.session import SessionEnergy, SessionInfo, state_of_event
from everest_py.testing import Probe

MODULE_DIR = Path(__file__).resolve().parents[2] / "app" / "src" / "everest_py" / "modules"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "everest" / "modules"
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# -- sample values of the evse_manager variables (schema-valid) ------------------------------------------


def powermeter(import_wh: float = 1000.0, export_wh: float | None = None, power_w: float = 0.0) -> dict[str, Any]:
    value: dict[str, Any] = {
        "timestamp": "2024-05-01T10:00:00.000Z",
        "meter_id": "SIM",
        "phase_seq_error": False,
        "energy_Wh_import": {"total": import_wh, "L1": import_wh / 3, "L2": import_wh / 3, "L3": import_wh / 3},
        "power_W": {"total": power_w, "L1": power_w / 3},
        "voltage_V": {"L1": 230.123456, "L2": 229.987, "L3": 231.0},
        "current_A": {"L1": 16.0444, "L2": 15.9, "L3": 16.1, "N": 0.2049},
        "frequency_Hz": {"L1": 50.01234},
        "VAR": {"total": 12.3456},
    }
    if export_wh is not None:
        value["energy_Wh_export"] = {"total": export_wh}
    return value


HW_CAPS = {
    "max_current_A_import": 32.123,
    "min_current_A_import": 6.0,
    "max_phase_count_import": 3,
    "min_phase_count_import": 1,
    "max_current_A_export": 16.456,
    "min_current_A_export": 0.0,
    "max_phase_count_export": 3,
    "min_phase_count_export": 1,
    "supports_changing_phases_during_charging": True,
    "supports_cp_state_E": False,
    "connector_type": "IEC62196Type2Socket",
}
TELEMETRY = {
    "evse_temperature_C": 30.7292,
    "fan_rpm": 1200.4,
    "supply_voltage_12V": 11.9509,
    "supply_voltage_minus_12V": -11.9416,
    "relais_on": True,
}


def session_event(event: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": "s-1", "timestamp": "2024-05-01T10:00:00.000Z", "event": event, **extra}


def transaction_started(import_wh: float, export_wh: float | None = None) -> dict[str, Any]:
    token = {"id_token": {"value": "DEADBEEF", "type": "ISO14443"}, "authorization_type": "RFID"}
    return session_event(
        "TransactionStarted", transaction_started={"id_tag": token, "meter_value": powermeter(import_wh, export_wh)}
    )


def transaction_finished(import_wh: float, reason: str = "EVDisconnected") -> dict[str, Any]:
    return session_event(
        "TransactionFinished", transaction_finished={"meter_value": powermeter(import_wh), "reason": reason}
    )


# -- rounding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "value", "expected"),
    [
        (Precision(2, 0), 16.113445, 16.11),
        (Precision(0, 0), 16.5001, 17.0),
        (Precision(2, 0.5), 16.26, 16.5),
        (Precision(2, 0.5), -16.26, -16.5),
        (Precision(1, 10), 4611.95, 4610.0),
        (Precision(3, 0.25), 1.125, 1.25),
    ],
)
def test_precision(precision: Precision, value: float, expected: float) -> None:
    assert precision(value) == expected


def config_with(**overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {}
    for q in decimals.QUANTITIES:
        values[f"{q}_decimal_places"] = 2
        values[f"{q}_round_to"] = 0.0
    values.update(overrides)
    return SimpleNamespace(**values)


def test_published_shapes_are_rounded_per_quantity() -> None:
    p = decimals.precisions(
        config_with(powermeter_voltage_decimal_places=0, powermeter_power_round_to=100.0, limits_max_current_round_to=1)
    )
    pm = decimals.powermeter(powermeter(1000.0, 5.55555, 3333.3), p)
    assert pm == {
        "timestamp": "2024-05-01T10:00:00.000Z",
        "meter_id": "SIM",
        "phase_seq_error": False,
        "energy_Wh_import": {"total": 1000.0, "L1": 333.33, "L2": 333.33, "L3": 333.33},
        "energy_Wh_export": {"total": 5.56},
        "power_W": {"total": 3300.0, "L1": 1100.0},
        "voltage_V": {"L1": 230.0, "L2": 230.0, "L3": 231.0},
        "VAR": {"total": 12.35},
        "current_A": {"L1": 16.04, "L2": 15.9, "L3": 16.1, "N": 0.2},
        "frequency_Hz": {"L1": 50.01},
    }
    assert decimals.hw_capabilities(HW_CAPS, p) == {
        "max_phase_count_import": 3,
        "min_phase_count_import": 1,
        "max_phase_count_export": 3,
        "min_phase_count_export": 1,
        "supports_changing_phases_during_charging": True,
        "max_current_A_import": 32.12,
        "min_current_A_import": 6.0,
        "max_current_A_export": 16.46,
        "min_current_A_export": 0.0,
        "connector_type": "IEC62196Type2Socket",
    }
    assert decimals.limits({"uuid": "u", "max_current": 15.6, "nr_of_phases_available": 3}, p) == {
        "uuid": "u",
        "nr_of_phases_available": 3,
        "max_current": 16.0,
    }
    assert decimals.telemetry({**TELEMETRY, "plug_temperature_C": 40.056}, p) == {
        "temperature": 30.73,
        "fan_rpm": 1200.4,
        "supply_voltage_12V": 11.95,
        "supply_voltage_minus_12V": -11.94,
        "relais_on": True,
        "plug_temperature_C": 40.06,
    }


# -- session info ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (session_event("Enabled"), "Unplugged"),
        (session_event("Disabled"), "Disabled"),
        (session_event("SessionStarted"), "Preparing"),
        (session_event("AuthRequired"), "AuthRequired"),
        (session_event("ChargingStarted"), "Charging"),
        (session_event("ChargingPausedEV"), "ChargingPausedEV"),
        (session_event("ChargingPausedEVSE"), "ChargingPausedEVSE"),
        (session_event("StoppingCharging"), "FinishedEV"),
        (session_event("ChargingFinished"), "Finished"),
        (transaction_finished(1.0, "Local"), "FinishedEVSE"),
        (transaction_finished(1.0, "EVDisconnected"), "Finished"),
        (session_event("PluginTimeout"), "AuthTimeout"),
        (session_event("ReservationStart"), "Reserved"),
        (session_event("SessionFinished"), "Unplugged"),
        (session_event("Authorized"), None),
        (session_event("SwitchingPhases"), None),
    ],
)
def test_state_of_event(event: dict[str, Any], state: str | None) -> None:
    assert state_of_event(event) == state


def test_session_energy_and_duration() -> None:
    clock = FakeClock()
    energy = SessionEnergy(clock)
    energy.transaction_started(powermeter(1000.0, 50.0))
    clock.advance(30)
    energy.meter_value(powermeter(1200.0, 60.0, 7000.0), metered=True)
    clock.advance(30)
    energy.meter_value(powermeter(1300.0, 70.0, 3000.0), metered=False)  # not counted, power still noted
    assert (energy.charged_wh, energy.discharged_wh, energy.duration_s, energy.latest_total_w) == (
        200.0,
        10.0,
        30,
        3000.0,
    )
    clock.advance(15)
    energy.transaction_finished(powermeter(1400.0))
    assert (energy.charged_wh, energy.discharged_wh, energy.duration_s) == (400.0, 0.0, 75)


def test_session_info_snapshot() -> None:
    clock = FakeClock()
    info = SessionInfo(clock)
    assert info.snapshot() == {
        "state": "Unknown",
        "permanent_fault": False,
        "active_permanent_faults": [],
        "active_errors": [],
        "charged_energy_wh": 0,
        "discharged_energy_wh": 0,
        "latest_total_w": 0.0,
        "charging_duration_s": 0,
        "datetime": "2024-05-01T10:00:00.000Z",
        "active_enable_disable_source": {"source": "Unspecified", "state": "Enabled", "priority": 0},
    }
    source = {"enable_source": "CSMS", "enable_state": "Disable", "enable_priority": 7}
    assert info.session_event(session_event("Disabled", source=source)) is None
    started = {"reason": "EVConnected", "meter_value": powermeter(), "logging_path": "/tmp/s1"}
    assert info.session_event(session_event("SessionStarted", session_started=started)) == "/tmp/s1"
    info.session_event(transaction_started(1000.4))
    info.session_event(session_event("ChargingStarted"))
    clock.advance(61.5)
    info.meter_value(powermeter(1250.9, power_w=11000.5))
    info.error_raised({"type": "evse_manager/Inoperative", "description": "Cannot charge", "severity": "High"})
    info.error_raised({"type": "evse_manager/MREC5OverVoltage", "sub_type": "L1", "message": "too high"})
    info.countdown({"countdown_s": 12, "current_limit_after_delay_A": 16.0, "current_limit_during_delay_A": 0.0})
    snap = info.snapshot()
    assert snap == {
        "state": "Charging",
        "permanent_fault": True,
        "active_permanent_faults": [
            {
                "type": "evse_manager/Inoperative",
                "sub_type": "",
                "description": "Cannot charge",
                "message": "",
                "severity": "High",
            }
        ],
        "active_errors": [
            {
                "type": "evse_manager/MREC5OverVoltage",
                "sub_type": "L1",
                "description": "",
                "message": "too high",
                "severity": "Low",
            }
        ],
        "charged_energy_wh": 250,
        "discharged_energy_wh": 0,
        "latest_total_w": 11000.5,
        "charging_duration_s": 61,
        "datetime": "2024-05-01T10:01:01.500Z",
        "active_enable_disable_source": {"source": "CSMS", "state": "Disable", "priority": 7},
        "uk_random_delay": {
            "remaining_s": 12,
            "current_limit_after_delay_A": 16.0,
            "current_limit_during_delay_A": 0.0,
            "start_time": "",
        },
    }
    info.error_cleared({"type": "evse_manager/Inoperative"})
    info.countdown({"countdown_s": 0, "current_limit_after_delay_A": 16.0, "current_limit_during_delay_A": 0.0})
    snap = info.snapshot()
    assert (snap["permanent_fault"], snap["active_permanent_faults"], len(snap["active_errors"])) == (False, [], 1)
    assert "uk_random_delay" not in snap


# -- command payloads ------------------------------------------------------------------------------------


def test_enable_disable_payloads() -> None:
    full = '{"connector_id": 1, "source": "ServiceTechnician", "state": "disable", "priority": 42}'
    assert commands.plan("enable_disable", full, T0) == [
        Call(
            "evse",
            "enable_disable",
            {
                "connector_id": 1,
                "cmd_source": {"enable_source": "ServiceTechnician", "enable_state": "Disable", "enable_priority": 42},
            },
        )
    ]
    default = {"enable_source": "LocalAPI", "enable_state": "Enable", "enable_priority": 100}
    assert commands.plan("enable_disable", "{}", T0)[0].args == {"connector_id": 0, "cmd_source": default}
    assert commands.plan("enable", "0", T0)[0].args == {"connector_id": 0, "cmd_source": default}
    assert commands.plan("disable", " 2 ", T0)[0].args["cmd_source"]["enable_state"] == "Disable"


def test_session_commands() -> None:
    assert commands.plan("pause_charging", "whatever", T0) == [Call("evse", "pause_charging")]
    assert commands.plan("resume_charging", "", T0) == [Call("evse", "resume_charging")]
    assert commands.plan("stop_charging", "", T0) == [
        Call("evse", "stop_transaction", {"request": {"reason": "Local"}})
    ]
    unlock = [Call("evse", "stop_transaction", {"request": {"reason": "UnlockCommand"}})]
    assert commands.plan("force_unlock", "", T0) == [*unlock, Call("evse", "force_unlock", {"connector_id": 1})]
    assert commands.plan("force_unlock", "2", T0) == [*unlock, Call("evse", "force_unlock", {"connector_id": 2})]
    assert commands.plan("uk_random_delay", "cancel", T0) == [Call("random_delay", "cancel")]
    assert commands.plan("uk_random_delay_set_max_duration_s", "300", T0) == [
        Call("random_delay", "set_duration_s", {"value": 300})
    ]


def entry(key: str, value: float) -> dict[str, Any]:
    return {
        "timestamp": "2024-05-01T10:00:00.000Z",
        "limits_to_root": {},
        "limits_to_leaves": {key: {"value": value, "source": "API_module"}},
    }


@pytest.fixture(scope="module")
def limits_schema(contracts: Contracts) -> Callable[[Any], None]:
    schema = contracts.interface("external_energy_limits").cmds["set_external_limits"].arguments["value"]
    check: Callable[[Any], None] = contracts.validator(("test", "external_limits"), schema)
    return check


def test_limit_commands(limits_schema: Callable[[Any], None]) -> None:
    [call] = commands.plan("set_limit_amps", "16.5", T0)
    assert call == Call(
        "sink",
        "set_external_limits",
        {
            "value": {
                "schedule_import": [entry("ac_max_current_A", 16.5)],
                "schedule_export": [entry("ac_max_current_A", 0.0)],
                "schedule_setpoints": [],
            }
        },
    )
    [call] = commands.plan("set_limit_watts", "-3000", T0)
    assert call.args["value"] == {
        "schedule_import": [entry("total_power_W", 0.0)],
        "schedule_export": [entry("total_power_W", 3000.0)],
        "schedule_setpoints": [],
    }
    [call] = commands.plan("set_limit_amps_phases", '{"amps": 10, "phases": 1}', T0)
    leaves = call.args["value"]["schedule_import"][0]["limits_to_leaves"]
    assert leaves == {
        "ac_max_phase_count": {"value": 1, "source": "API_module"},
        "ac_min_phase_count": {"value": 1, "source": "API_module"},
        "ac_max_current_A": {"value": 10.0, "source": "API_module"},
    }
    assert call.args["value"]["schedule_export"] == []
    [call] = commands.plan("set_limit_amps_phases", '{"amps": -8, "phases": 3}', T0)
    assert call.args["value"]["schedule_import"] == [entry("ac_max_current_A", 0.0)]
    for name, payload in [
        ("set_limit_amps", "16.5"),
        ("set_limit_watts", "-3000"),
        ("set_limit_amps_phases", '{"amps": 10, "phases": 1}'),
        ("set_limit_amps_phases", '{"amps": -8, "phases": 3}'),
    ]:
        limits_schema(commands.plan(name, payload, T0)[0].args["value"])


@pytest.mark.parametrize(
    ("cmd", "payload"),
    [
        ("enable_disable", ""),
        ("enable_disable", "not json"),
        ("enable_disable", "[1]"),
        ("enable_disable", '{"state": "Maybe"}'),
        ("enable_disable", '{"source": "Neighbour"}'),
        ("enable_disable", '{"priority": 10001}'),
        ("enable_disable", '{"connector_id": "one"}'),
        ("enable", ""),
        ("disable", "x"),
        ("enable", "-1"),
        ("force_unlock", "one"),
        ("force_unlock", "0"),
        ("set_limit_amps", ""),
        ("set_limit_amps", "sixteen"),
        ("set_limit_watts", "nan"),
        ("set_limit_watts", "inf"),
        ("set_limit_amps_phases", '{"amps": 10}'),
        ("set_limit_amps_phases", '{"amps": 10, "phases": 2}'),
        ("set_limit_amps_phases", '{"amps": NaN, "phases": 3}'),
        ("set_limit_amps_phases", '{"amps": true, "phases": 3}'),
        ("uk_random_delay", "start"),
        ("uk_random_delay_set_max_duration_s", "ten"),
        ("uk_random_delay_set_max_duration_s", "-5"),
        ("reboot", ""),
    ],
)
def test_bad_payloads(cmd: str, payload: str) -> None:
    with pytest.raises(ValueError):
        commands.plan(cmd, payload, T0)


# -- the manifest ----------------------------------------------------------------------------------------


def test_manifest_matches_the_reference() -> None:
    ours = yaml.safe_load((MODULE_DIR / "api" / "manifest.yaml").read_text())
    ref_file = REFERENCE / "API" / "manifest.yaml"
    if not ref_file.is_file():
        pytest.skip("no reference manifest")
    ref = yaml.safe_load(ref_file.read_text())
    keys = ("type", "default", "minimum", "enum")
    assert {k: {s: v.get(s) for s in keys} for k, v in ours["config"].items()} == {
        k: {s: v.get(s) for s in keys} for k, v in ref["config"].items()
    }
    assert ours["requires"] == ref["requires"]
    assert ours.get("provides") == ref.get("provides")
    assert ours["enable_external_mqtt"] is True
    assert ours["description"] != ref["description"]
    assert {f"{q}_{s}" for q in decimals.QUANTITIES for s in ("decimal_places", "round_to")} < set(ours["config"])


# -- over the wire ---------------------------------------------------------------------------------------


class External:
    """Records every message under the external prefix; ``wait`` polls for one that passes a check."""

    def __init__(self, probe: Probe, prefix: str) -> None:
        assert probe.bus is not None
        self.bus = probe.bus
        self.prefix = prefix
        self.messages: dict[str, list[str]] = {}
        self.bus.subscribe(f"{prefix}everest_api/#", self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.messages.setdefault(topic.removeprefix(self.prefix), []).append(payload.decode())

    def publish(self, topic: str, payload: str) -> None:
        self.bus.publish(self.prefix + topic, payload)

    async def wait(self, topic: str, check: Callable[[str], bool] = lambda _: True, timeout_s: float = 5.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            for payload in reversed(self.messages.get(topic, [])):
                if check(payload):
                    return payload
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing on {topic} passed the check; got {self.messages.get(topic)}")
            await asyncio.sleep(0.02)

    async def json(self, topic: str, check: Callable[[Any], bool] = lambda _: True, timeout_s: float = 5.0) -> Any:
        payload = await self.wait(topic, lambda p: check(json.loads(p)), timeout_s)
        return json.loads(payload)


async def wait_for(calls: list[Any], n: int, timeout_s: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while len(calls) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return calls


def api_config(history_db: Path, info_file: Path) -> dict[str, Any]:
    probe = "probe"
    return {
        "active_modules": {
            "history": {
                "module": "ErrorHistory",
                "config_implementation": {"error_history": {"database_path": str(history_db)}},
            },
            "api": {
                "module": "API",
                "config_module": {
                    "charger_information_file": str(info_file),  # ignored: the connection wins
                    "powermeter_power_decimal_places": 0,
                    "limits_max_current_round_to": 0.5,
                },
                "connections": {
                    "evse_manager": [{"module_id": probe, "implementation_id": "evse"}],
                    "evse_energy_sink": [{"module_id": probe, "implementation_id": "sink"}],
                    "random_delay": [{"module_id": probe, "implementation_id": "delay"}],
                    "charger_information": [{"module_id": probe, "implementation_id": "info"}],
                    "ocpp": [{"module_id": probe, "implementation_id": "ocpp"}],
                    "error_history": [{"module_id": "history", "implementation_id": "error_history"}],
                },
            },
            probe: {
                "module": "ProbeModule",
                "mapping": {"module": {"evse": 1}},
            },
        }
    }


CHARGER_INFO = {"vendor": "everest-py", "model": "Probe", "chargepoint_serial": "P-1", "firmware_version": "1.2.3"}


def test_api_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    info_file = tmp_path / "charger.yaml"
    info_file.write_text("vendor: from-the-file\n")
    stack, prefix = make_stack(api_config(tmp_path / "errors.db", info_file))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(name: str, result: Any = None) -> Callable[..., Any]:
        def handler(**args: Any) -> Any:
            calls.append((name, args))
            return result

        return handler

    def setup(probe: Probe) -> None:
        for cmd, result in [
            ("enable_disable", True),
            ("pause_charging", True),
            ("resume_charging", True),
            ("stop_transaction", True),
            ("force_unlock", True),
        ]:
            probe.implement("evse", cmd, record(cmd, result))
        probe.implement("evse", "get_evse", lambda: {"id": 1, "connectors": [{"id": 1}]})
        probe.implement("sink", "set_external_limits", record("set_external_limits"))
        for cmd in ("enable", "disable", "cancel", "set_duration_s"):
            probe.implement("delay", cmd, record(f"delay.{cmd}"))
        probe.implement("info", "get_charger_information", lambda: CHARGER_INFO)

    async def scenario(probe: Probe) -> None:
        ext = External(probe, f"ext_{prefix}/")
        assert json.loads(await ext.wait("everest_api/connectors")) == ["probe"]
        assert json.loads(await ext.wait("everest_api/info/var/info")) == CHARGER_INFO
        assert await ext.wait("everest_api/ocpp/var/connection_status") == "unknown"
        probe.publish_var("ocpp", "is_connected", True)
        await ext.wait("everest_api/ocpp/var/connection_status", lambda p: p == "connected")

        base = "everest_api/probe/var/"
        probe.publish_var("evse", "hw_capabilities", HW_CAPS)
        caps = await ext.json(base + "hardware_capabilities")
        assert (caps["max_current_A_import"], caps["max_current_A_export"]) == (32.12, 16.46)
        probe.publish_var("evse", "limits", {"max_current": 15.8, "nr_of_phases_available": 3})
        assert await ext.json(base + "limits") == {"nr_of_phases_available": 3, "max_current": 16.0}
        probe.publish_var("evse", "telemetry", TELEMETRY)
        assert (await ext.json(base + "telemetry"))["temperature"] == 30.73
        probe.publish_var("evse", "ev_info", {"soc": 42.5})
        assert await ext.json(base + "ev_info") == {"soc": 42.5}
        probe.publish_var("evse", "selected_protocol", "IEC61851-1")
        await ext.wait(base + "selected_protocol", lambda p: p == "IEC61851-1")
        assert await ext.wait(base + "datetime", lambda p: p.endswith("Z"))

        started = {"reason": "EVConnected", "meter_value": powermeter(), "logging_path": "/tmp/session-1"}
        probe.publish_var("evse", "session_event", session_event("SessionStarted", session_started=started))
        assert await ext.wait(base + "logging_path") == "/tmp/session-1"
        probe.publish_var("evse", "session_event", transaction_started(1000.0))
        probe.publish_var("evse", "session_event", session_event("ChargingStarted"))
        probe.publish_var("evse", "powermeter", powermeter(1234.5678, power_w=7360.4))
        pm = await ext.json(base + "powermeter")
        assert (pm["energy_Wh_import"]["total"], pm["power_W"]["total"]) == (1234.57, 7360.0)
        info = await ext.json(base + "session_info", lambda v: v["charged_energy_wh"] == 234)
        assert (info["state"], info["latest_total_w"], info["permanent_fault"]) == ("Charging", 7360.4, False)

        probe.raise_error("evse", "evse_manager/Inoperative", "", "no power", "High")
        info = await ext.json(base + "session_info", lambda v: v["permanent_fault"])
        assert [e["type"] for e in info["active_permanent_faults"]] == ["evse_manager/Inoperative"]
        active = await ext.json("everest_api/errors/var/active_errors", lambda v: len(v) == 1)
        assert (active[0]["type"], active[0]["state"], active[0]["message"]) == (
            "evse_manager/Inoperative",
            "Active",
            "no power",
        )

        probe.publish_var("evse", "ready", True)
        cmd = "everest_api/probe/cmd/"
        ext.publish(cmd + "enable_disable", '{"connector_id": 1, "source": "MobileApp", "state": "Disable"}')
        ext.publish(cmd + "enable_disable", "{broken")  # logged and ignored
        ext.publish(cmd + "pause_charging", "")
        ext.publish(cmd + "set_limit_amps", "sixteen")  # logged and ignored
        ext.publish(cmd + "set_limit_amps", "16")
        ext.publish(cmd + "set_limit_amps_phases", '{"amps": 10, "phases": 1}')
        ext.publish(cmd + "force_unlock", "1")
        ext.publish(cmd + "uk_random_delay", "enable")
        ext.publish(cmd + "uk_random_delay_set_max_duration_s", "120")
        ext.publish(cmd + "stop_charging", "")
        await wait_for(calls, 9)
        names = [name for name, _ in calls]
        assert names == [
            "enable_disable",
            "pause_charging",
            "set_external_limits",
            "set_external_limits",
            "stop_transaction",
            "force_unlock",
            "delay.enable",
            "delay.set_duration_s",
            "stop_transaction",
        ]
        assert calls[0][1] == {
            "connector_id": 1,
            "cmd_source": {"enable_source": "MobileApp", "enable_state": "Disable", "enable_priority": 100},
        }
        limits = calls[2][1]["value"]
        assert limits["schedule_import"][0]["limits_to_leaves"] == {
            "ac_max_current_A": {"value": 16.0, "source": "API_module"}
        }
        assert calls[3][1]["value"]["schedule_import"][0]["limits_to_leaves"]["ac_max_phase_count"]["value"] == 1
        assert calls[4][1] == {"request": {"reason": "UnlockCommand"}}
        assert calls[5][1] == {"connector_id": 1}
        assert calls[7][1] == {"value": 120}
        assert calls[8][1] == {"request": {"reason": "Local"}}

        probe.publish_var(
            "delay",
            "countdown",
            {"countdown_s": 30, "current_limit_after_delay_A": 16.0, "current_limit_during_delay_A": 0.0},
        )
        info = await ext.json(base + "session_info", lambda v: "uk_random_delay" in v)
        assert info["uk_random_delay"]["remaining_s"] == 30

        probe.publish_var("evse", "session_event", transaction_finished(1500.0, "Local"))
        info = await ext.json(base + "session_info", lambda v: v["state"] == "FinishedEVSE")
        assert info["charged_energy_wh"] == 500

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0
    log = stack.log()
    assert log.count("payload '{broken' ignored") == 1, log
    assert log.count("payload 'sixteen' ignored") == 1, log
    assert "charger_information_file" in log
    assert "did not send the module mappings" not in log, log
    assert "have no evse mapping" not in log, log
    assert "Traceback" not in log


def test_no_sink_no_delay_and_bad_values_only_log(make_stack, run_probe, tmp_path: Path) -> None:
    config = {
        "active_modules": {
            "api": {
                "module": "API",
                "connections": {"evse_manager": [{"module_id": "probe", "implementation_id": "evse"}]},
            },
            "probe": {"module": "ProbeModule"},
        }
    }
    stack, prefix = make_stack(config, validate_schema=False)  # malformed values reach the module
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    calls: list[str] = []

    def setup(probe: Probe) -> None:
        probe.implement("evse", "pause_charging", lambda: calls.append("pause") is None)

    async def scenario(probe: Probe) -> None:
        ext = External(probe, f"ext_{prefix}/")
        probe.publish_var("evse", "powermeter", {"timestamp": "now"})  # no energy_Wh_import
        probe.publish_var("evse", "ready", True)
        ext.publish("everest_api/probe/cmd/set_limit_watts", "11000")
        ext.publish("everest_api/probe/cmd/uk_random_delay", "cancel")
        ext.publish("everest_api/probe/cmd/set_limit_watts", "7000")
        ext.publish("everest_api/probe/cmd/pause_charging", "now")
        await wait_for(calls, 1)
        assert calls == ["pause"]
        assert await ext.wait("everest_api/ocpp/var/connection_status") == "unknown"
        assert "everest_api/info/var/info" not in ext.messages
        assert "everest_api/errors/var/active_errors" not in ext.messages

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0
    log = stack.log()
    assert log.count("no evse_energy_sink for this EVSE") == 1, log
    assert log.count("no uk_random_delay connection") == 1, log
    assert "probe powermeter: unusable value ignored (KeyError" in log, log
