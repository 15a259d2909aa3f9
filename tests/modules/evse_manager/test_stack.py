# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EvseManager in a real stack over mosquitto: a probe plays the board, the meter, the lock, the store and Auth."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from everest_py.framework import wire
from everest_py.testing import Probe

from .fakes import CAPS, TOKEN

ACCEPTED = {"authorization_status": "Accepted", "tariff_messages": []}
DUTY_16A = 16 / 0.6
STORE_KEY = "EvseManager_evse_session"


def stack_config(**evse_config: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            "evse": {
                "module": "EvseManager",
                "config_module": {"connector_id": 1, "evse_id": "DE*EPY*E1*1", **evse_config},
                "connections": {
                    "bsp": [{"module_id": "probe", "implementation_id": "board"}],
                    "powermeter_grid_side": [{"module_id": "probe", "implementation_id": "meter"}],
                    "connector_lock": [{"module_id": "probe", "implementation_id": "lock"}],
                    "store": [{"module_id": "probe", "implementation_id": "kvs"}],
                },
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "evse": [{"module_id": "evse", "implementation_id": "evse"}],
                    "energy": [{"module_id": "evse", "implementation_id": "energy_grid"}],
                },
            },
        }
    }


def meter_value(wh: float) -> dict[str, Any]:
    return {"timestamp": wire.timestamp(), "energy_Wh_import": {"total": wh}, "power_W": {"total": 3680.0}}


class Rig:
    """The probe's side: recorded calls, collected vars, helpers to wait for them."""

    def __init__(self, probe: Probe, kvs: dict[str, Any] | None = None) -> None:
        self.probe = probe
        self.calls: list[tuple[str, Any]] = []
        self.kvs: dict[str, Any] = dict(kvs or {})
        self.vars: dict[str, list[Any]] = {}
        self.errors: list[tuple[str, str]] = []

    def implement(self, load: Callable[..., Any] | None = None) -> None:
        """Before the probe reports ready: its board, meter, lock and key-value store."""
        p = self.probe

        def record(name: str, result: Any = None) -> Callable[..., Any]:
            def handler(**args: Any) -> Any:
                self.calls.append((name, args.get("value", args.get("transaction_id"))))
                return result

            return handler

        for cmd in ("enable", "pwm_on", "cp_state_X1", "cp_state_F", "cp_state_E", "allow_power_on"):
            p.implement("board", cmd, record(cmd))
        p.implement("board", "ac_switch_three_phases_while_charging", record("three_phases"))
        p.implement("board", "ac_set_overcurrent_limit_A", record("overcurrent"))
        p.implement("meter", "start_transaction", record("meter_start", {"status": "OK"}))
        signed = {"signed_meter_data": "ocmf", "signing_method": "ECDSA", "encoding_method": "OCMF"}
        p.implement("meter", "stop_transaction", record("meter_stop", {"status": "OK", "signed_meter_value": signed}))
        p.implement("lock", "lock", record("lock"))
        p.implement("lock", "unlock", record("unlock"))

        def store(key: str, value: Any) -> None:
            self.calls.append(("kvs_store", value))
            self.kvs[key] = value

        def delete(key: str) -> None:
            self.calls.append(("kvs_delete", key))
            self.kvs.pop(key, None)

        p.implement("kvs", "store", store)

        def stored(key: str) -> Any:
            return self.kvs.get(key)

        p.implement("kvs", "load", load or stored)
        p.implement("kvs", "delete", delete)
        p.implement("kvs", "exists", lambda key: key in self.kvs)

    def watch(self) -> None:
        """After global ready: collect evse vars, energy requests and raised/cleared errors."""
        for req, var in [
            ("evse", "session_event"),
            ("evse", "limits"),
            ("evse", "ready"),
            ("evse", "powermeter"),
            ("evse", "hw_capabilities"),
            ("evse", "enforced_limits"),
            ("evse", "telemetry"),
            ("evse", "selected_protocol"),
            ("energy", "energy_flow_request"),
        ]:
            self._collect(var, self.probe.subscribe_var(req, var))
        bus = self.probe.bus
        assert bus is not None

        def on_error(topic: str, payload: bytes) -> None:
            msg = json.loads(payload)
            self.errors.append((msg["msg_type"], msg["data"]["type"]))

        bus.subscribe(self.probe.topics.impl("evse", "evse") + "/error/#", on_error)

    def _collect(self, var: str, queue: asyncio.Queue[Any]) -> None:
        values = self.vars.setdefault(var, [])

        async def drain() -> None:
            while True:
                values.append(await queue.get())

        task = asyncio.ensure_future(drain())
        self.probe._tasks.add(task)  # closed with the probe

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.vars.get("session_event", [])]

    def event(self, kind: str) -> dict[str, Any]:
        return next(e for e in reversed(self.vars["session_event"]) if e["event"] == kind)

    async def until(self, what: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events {self.kinds()}, calls {self.calls[-12:]}")
            await asyncio.sleep(0.01)

    async def events_until(self, kind: str, start: int = 0, timeout_s: float = 5.0) -> list[str]:
        await self.until(lambda: kind in self.kinds()[start:], timeout_s)
        return self.kinds()[start:]

    def mark(self) -> tuple[int, int]:
        return len(self.kinds()), len(self.calls)

    def calls_since(self, mark: tuple[int, int]) -> list[tuple[str, Any]]:
        return self.calls[mark[1] :]

    def event_board(self, event: str) -> None:
        self.probe.publish_var("board", "event", {"event": event})

    async def call(self, cmd: str, args: dict[str, Any] | None = None, req: str = "evse") -> Any:
        return await self.probe.call(req, cmd, args or {})


def power(calls: list[tuple[str, Any]]) -> list[bool]:
    return [c[1]["allow_power_on"] for c in calls if c[0] == "allow_power_on"]


async def start_rig(rig: Rig) -> None:
    rig.watch()
    rig.probe.publish_var("board", "capabilities", CAPS)
    rig.probe.publish_var("meter", "powermeter", meter_value(1000.0))
    await rig.until(lambda: ("enable", True) in rig.calls and rig.vars.get("ready") == [True])
    await rig.until(lambda: len(rig.vars.get("hw_capabilities", [])) > 0)


def test_charging_session_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    logs = tmp_path / "sessions"
    stack, prefix = make_stack(stack_config(session_logging=True, session_logging_path=str(logs)))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    rig: Rig

    def setup(probe: Probe) -> None:
        nonlocal rig
        rig = Rig(probe)
        rig.implement()

    async def scenario(probe: Probe) -> None:
        await start_rig(rig)
        assert rig.vars["hw_capabilities"][-1] == CAPS
        telemetry = {
            "evse_temperature_C": 31.5,
            "fan_rpm": 0.0,
            "supply_voltage_12V": 12.1,
            "supply_voltage_minus_12V": -11.9,
            "relais_on": False,
        }
        probe.publish_var("board", "telemetry", telemetry)
        await rig.until(lambda: rig.vars.get("telemetry") == [telemetry])
        assert await rig.call("get_evse") == {"id": 1, "connectors": [{"id": 1, "type": "Unknown"}]}

        limits = {
            "uuid": "evse",
            "valid_for": 60,
            "limits_root_side": {"ac_max_current_A": {"value": 16.0, "source": "test"}},
            "schedule": [],
        }
        await rig.call("enforce_limits", {"value": limits}, req="energy")
        await rig.until(lambda: any(v["max_current"] == 16.0 for v in rig.vars.get("limits", [])))
        assert rig.vars["limits"][-1] == {"uuid": "evse", "max_current": 16.0, "nr_of_phases_available": 3}
        assert rig.vars["enforced_limits"][-1] == limits
        await rig.until(lambda: len(rig.vars.get("energy_flow_request", [])) >= 2)
        request = rig.vars["energy_flow_request"][-1]
        assert (request["uuid"], request["node_type"], request["evse_state"]) == ("evse", "Evse", "Unplugged")
        assert request["schedule_import"][0]["limits_to_root"]["ac_max_current_A"]["value"] == 32.0
        assert request["energy_usage_root"]["energy_Wh_import"]["total"] == 1000.0

        # plug in
        m = rig.mark()
        rig.event_board("B")
        assert await rig.events_until("AuthRequired", m[0]) == ["SessionStarted", "AuthRequired"]
        await rig.until(lambda: rig.vars.get("selected_protocol") == ["IEC61851-1"])
        started = rig.event("SessionStarted")
        session = started["uuid"]
        assert started["session_started"]["reason"] == "EVConnected"
        assert started["session_started"]["meter_value"]["energy_Wh_import"]["total"] == 1000.0
        log_folder = Path(started["session_started"]["logging_path"])
        assert log_folder.parent == logs
        await rig.until(lambda: ("lock", None) in rig.calls)
        assert not any(c[0] == "pwm_on" for c in rig.calls_since(m)), "no PWM before authorization"

        # authorize
        m = rig.mark()
        await rig.call("authorize_response", {"provided_token": TOKEN, "validation_result": ACCEPTED})
        kinds = await rig.events_until("PrepareCharging", m[0])
        assert kinds == ["Authorized", "TransactionStarted", "PrepareCharging"]
        assert rig.event("TransactionStarted")["transaction_started"]["id_tag"] == TOKEN
        await rig.until(lambda: any(c[0] == "pwm_on" for c in rig.calls_since(m)))
        assert [c[1] for c in rig.calls_since(m) if c[0] == "pwm_on"] == [round(DUTY_16A, 4)]
        await rig.until(lambda: ("meter_start", None) in [(c[0], None) for c in rig.calls])
        start = next(c[1] for c in rig.calls if c[0] == "meter_start")
        assert start["transaction_id"] == session
        assert start["identification_type"] == "ISO14443"
        assert start["identification_data"] == "DEADBEEF"
        assert ("kvs_store", session) in rig.calls, "the open transaction is persisted"

        # the car asks for power
        m = rig.mark()
        rig.event_board("C")
        assert await rig.events_until("ChargingStarted", m[0]) == ["ChargingStarted"]
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [True])
        on = next(c[1] for c in rig.calls_since(m) if c[0] == "allow_power_on")
        assert on == {"allow_power_on": True, "reason": "FullPowerCharging"}
        rig.event_board("PowerOn")
        probe.publish_var("meter", "powermeter", meter_value(1500.0))
        await rig.until(lambda: rig.vars["powermeter"][-1]["energy_Wh_import"]["total"] == 1500.0)

        # the car pauses: C->B switches off first, PWM stays
        m = rig.mark()
        rig.event_board("B")
        assert await rig.events_until("ChargingPausedEV", m[0]) == ["ChargingPausedEV"]
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [False])
        assert rig.calls_since(m)[0][0] == "allow_power_on", "the first command after C->B"
        m = rig.mark()
        rig.event_board("C")
        await rig.events_until("ChargingStarted", m[0])
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [True])

        # the EVSE pauses and resumes
        m = rig.mark()
        assert await rig.call("pause_charging") is True
        await rig.events_until("ChargingPausedEVSE", m[0])
        assert rig.event("ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["UserPause"]}
        await rig.until(lambda: ("cp_state_X1", None) in rig.calls_since(m))
        rig.event_board("B")
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [False])
        m = rig.mark()
        assert await rig.call("resume_charging") is True
        await rig.events_until("PrepareCharging", m[0])
        rig.event_board("C")
        await rig.events_until("ChargingStarted", m[0])
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [True])

        # stop from outside: the transaction ends when the relays are open
        m = rig.mark()
        assert await rig.call("stop_transaction", {"request": {"reason": "Local"}}) is True
        await rig.events_until("StoppingCharging", m[0])
        rig.event_board("B")
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [False])
        assert "TransactionFinished" not in rig.kinds()[m[0] :], "the relays are still reported on"
        rig.event_board("PowerOff")
        kinds = await rig.events_until("TransactionFinished", m[0])
        assert kinds == ["StoppingCharging", "ChargingFinished", "TransactionFinished"]
        finished = rig.event("TransactionFinished")
        assert finished["uuid"] == session
        assert finished["transaction_finished"]["reason"] == "Local"
        await rig.until(lambda: ("meter_stop", session) in rig.calls and ("kvs_delete", STORE_KEY) in rig.calls)

        # unplug
        m = rig.mark()
        rig.event_board("A")
        assert await rig.events_until("SessionFinished", m[0]) == ["SessionFinished"]
        await rig.until(lambda: ("unlock", None) in rig.calls_since(m))
        await rig.until((log_folder / "eventlog.jsonl").is_file)
        lines = [json.loads(x) for x in (log_folder / "eventlog.jsonl").read_text().splitlines()]
        logged = [x["data"]["event"] for x in lines if x["kind"] == "session_event"]
        assert logged[0] == "SessionStarted"
        assert logged[-1] == "SessionFinished"
        assert await rig.call("stop_transaction", {"request": {"reason": "Local"}}) is False

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0


def test_errors_limits_and_enable_over_the_wire(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config(state_F_after_fault_ms=300))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    rig: Rig

    def setup(probe: Probe) -> None:
        nonlocal rig
        rig = Rig(probe)
        rig.implement()

    async def scenario(probe: Probe) -> None:
        await start_rig(rig)
        limits = {
            "uuid": "evse",
            "valid_for": 60,
            "limits_root_side": {"ac_max_current_A": {"value": 16.0, "source": "test"}},
            "schedule": [],
        }
        await rig.call("enforce_limits", {"value": limits}, req="energy")
        rig.event_board("B")
        await rig.call("authorize_response", {"provided_token": TOKEN, "validation_result": ACCEPTED})
        await rig.events_until("PrepareCharging")
        m = rig.mark()
        rig.event_board("C")
        await rig.events_until("ChargingStarted", m[0])
        await rig.until(lambda: power(rig.calls_since(m))[-1:] == [True])
        rig.event_board("PowerOn")

        # a warning does not stop anything; a fault does, with F for 300 ms first
        warning = probe.raise_error("board", "evse_board_support/VendorWarning", "", "just saying")
        m = rig.mark()
        fault = probe.raise_error("board", "evse_board_support/DiodeFault", "", "diode shorted", "High")
        await rig.until(lambda: ("RaiseError", "evse_manager/Inoperative") in rig.errors)
        await rig.events_until("ChargingPausedEVSE", m[0])
        assert rig.kinds()[m[0] :] == ["ChargingPausedEVSE"], "the warning changed nothing"
        assert rig.event("ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["Error"]}
        await rig.until(lambda: ("cp_state_X1", None) in rig.calls_since(m))
        names = [c[0] for c in rig.calls_since(m)]
        assert names[:2] == ["allow_power_on", "cp_state_F"], "power off first, then F"
        assert names.index("cp_state_F") < names.index("cp_state_X1")
        m = rig.mark()
        probe.clear_error(warning)
        probe.clear_error(fault)
        await rig.until(lambda: ("ClearError", "evse_manager/Inoperative") in rig.errors)
        await rig.events_until("ChargingStarted", m[0])
        await rig.until(lambda: any(c[0] == "pwm_on" for c in rig.calls_since(m)))

        # limits valid for 1 s run out: no energy, PWM off
        m = rig.mark()
        await rig.call("enforce_limits", {"value": {**limits, "valid_for": 1}}, req="energy")
        await rig.events_until("ChargingPausedEVSE", m[0], timeout_s=5.0)
        assert rig.event("ChargingPausedEVSE")["charging_paused_evse"] == {"reasons": ["NoEnergy"]}
        await rig.until(lambda: rig.vars["limits"][-1]["max_current"] == 0.0)
        assert rig.vars["energy_flow_request"][-1]["evse_state"] in ("PausedEVSE", "WaitForEnergy")

        # disable by priority, from the command and from external MQTT
        m = rig.mark()
        off = {"enable_source": "CSMS", "enable_state": "Disable", "enable_priority": 10}
        assert await rig.call("enable_disable", {"connector_id": 1, "cmd_source": off}) is False
        kinds = await rig.events_until("Disabled", m[0])
        assert kinds == ["ChargingFinished", "TransactionFinished", "SessionFinished", "Disabled"]
        assert rig.event("Disabled")["source"] == off
        await rig.until(lambda: ("enable", False) in rig.calls_since(m))
        on = {"enable_source": "LocalAPI", "enable_state": "Enable", "enable_priority": 100}
        assert await rig.call("enable_disable", {"connector_id": 1, "cmd_source": on}) is False
        assert await rig.call("reserve", {"reservation_id": 3}) is False, "disabled"
        m = rig.mark()
        released = {"enable_source": "CSMS", "enable_state": "Unassigned", "enable_priority": 10}
        assert await rig.call("enable_disable", {"connector_id": 1, "cmd_source": released}) is True
        await rig.events_until("Enabled", m[0])
        assert rig.event("Enabled")["source"] == on

        bus = probe.bus
        assert bus is not None
        states: list[str] = []
        ext = f"ext_{prefix}/everest_external/nodered/1/"
        bus.subscribe(ext + "state/state_string", lambda t, p: states.append(p.decode()))
        await asyncio.sleep(0.1)  # the subscription reaches the broker
        m = rig.mark()
        bus.publish(ext + "cmd/disable", "")
        await rig.events_until("Disabled", m[0])
        await rig.until(lambda: "Disabled" in states)
        m = rig.mark()
        bus.publish(ext + "cmd/enable", "")
        await rig.events_until("Enabled", m[0])
        await rig.until(lambda: states[-1:] == ["Idle"])

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0


def test_power_loss_recovery_and_reservation(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    rig: Rig

    def setup(probe: Probe) -> None:
        nonlocal rig
        rig = Rig(probe, kvs={STORE_KEY: "old-session"})
        rig.implement()

    async def scenario(probe: Probe) -> None:
        rig.watch()
        # the recovery runs in EvseManager's ready(), while we subscribe: look at the store and meter calls
        await rig.until(lambda: ("kvs_delete", STORE_KEY) in rig.calls)
        assert ("meter_stop", "old-session") in rig.calls
        assert STORE_KEY not in rig.kvs
        probe.publish_var("board", "capabilities", CAPS)
        await rig.until(lambda: ("enable", True) in rig.calls)

        m = rig.mark()
        assert await rig.call("reserve", {"reservation_id": 7}) is True
        await rig.events_until("ReservationStart", m[0])
        rig.event_board("B")
        await rig.events_until("AuthRequired", m[0])
        await rig.call("authorize_response", {"provided_token": TOKEN, "validation_result": ACCEPTED})
        reserved = {**ACCEPTED, "reservation_id": 7}
        await rig.call("authorize_response", {"provided_token": TOKEN, "validation_result": reserved})
        kinds = await rig.events_until("TransactionStarted", m[0])
        assert kinds[:6] == [
            "ReservationStart",
            "SessionStarted",
            "AuthRequired",
            "Authorized",
            "ReservationEnd",
            "TransactionStarted",
        ], "the token without the reservation id was ignored"
        assert rig.event("TransactionStarted")["transaction_started"]["reservation_id"] == 7
        assert await rig.call("force_unlock", {"connector_id": 1}) is True
        modes = {"allowed_energy_transfer_modes": ["AC_three_phase_core"]}
        assert await rig.call("update_allowed_energy_transfer_modes", modes) == "NoHlc"
        assert await rig.call("external_ready_to_start_charging") is False
        await rig.call("withdraw_authorization")  # charging has begun: ignored
        await asyncio.sleep(0.05)
        assert rig.kinds()[-1] != "Deauthorized"

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0


def test_power_loss_events(make_stack, run_probe) -> None:
    """The SessionResumed / TransactionFinished(PowerLoss) / SessionFinished events of a recovered session."""
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    seen: list[dict[str, Any]] = []

    def setup(probe: Probe) -> None:
        rig = Rig(probe, kvs={STORE_KEY: "old-session"})

        async def slow_load(key: str) -> Any:
            # answer only once the probe listens (it subscribes right after the global ready)
            await asyncio.sleep(0.3)
            return rig.kvs.get(key)

        rig.implement(load=slow_load)

    async def scenario(probe: Probe) -> None:
        queue = probe.subscribe_var("evse", "session_event")
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            try:
                seen.append(await asyncio.wait_for(queue.get(), 0.5))
            except TimeoutError:
                continue

    run_probe(prefix, scenario, setup)
    assert stack.stop() == 0
    assert [e["event"] for e in seen[:3]] == ["SessionResumed", "TransactionFinished", "SessionFinished"]
    assert {e["uuid"] for e in seen[:3]} == {"old-session"}
    finished = seen[1]["transaction_finished"]
    assert finished["reason"] == "PowerLoss"
    assert finished["signed_meter_value"]["signed_meter_data"] == "ocmf"
