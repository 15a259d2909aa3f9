# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""RpcApi logic: JSON-RPC framing, the data model, the methods, the listen address (no bus, no sockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import yaml

from everest_py.framework.contracts import Contracts
from everest_py.modules.rpc_api import jsonrpc, model, netif
from everest_py.modules.rpc_api.jsonrpc import Auth, Client, Dispatcher, Method, Param, RpcError
from everest_py.modules.rpc_api.methods import ControlError, Methods, limits_for
from everest_py.modules.rpc_api.model import ChargerModel, EvseModel

from .test_api import HW_CAPS, T0, FakeClock, powermeter, session_event, transaction_started

REFERENCE_TYPES = (
    Path(__file__).resolve().parents[3] / "shared" / "reference" / "everest" / "modules" / "RpcApi" / "types"
)
TOKEN = "correct-horse-battery-staple"


# -- the json_rpc_api types of EVerest, as validators -----------------------------------------------------


def _rpc_types() -> dict[str, Any] | None:
    path = REFERENCE_TYPES / "json_rpc_api.yaml"
    if not path.is_file():
        return None
    types: dict[str, Any] = yaml.safe_load(path.read_text())["types"]

    def local_refs(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                node["$ref"] = "#/definitions/" + node["$ref"].split("#/")[1]
                node.pop("type", None)  # "type: object" next to enum refs: draft-07 ignores siblings of $ref
            for v in node.values():
                local_refs(v)
        elif isinstance(node, list):
            for v in node:
                local_refs(v)

    local_refs(types)
    # ErrorObj lists "state" as required but forbids it (additionalProperties: false, no such property);
    # EVerest sends no state, nor do we.
    types["ErrorObj"]["required"].remove("state")
    return types


_TYPES = _rpc_types()
_VALIDATORS: dict[str, Callable[[Any], Any]] = {}


def check_type(name: str, value: Any) -> None:
    """Raise unless ``value`` is a valid /json_rpc_api#/<name> (no-op without the reference types)."""
    if _TYPES is None:
        return
    if name not in _VALIDATORS:
        _VALIDATORS[name] = fastjsonschema.compile({"definitions": _TYPES, "$ref": f"#/definitions/{name}"})
    _VALIDATORS[name](value)


RESULT_TYPES = {
    "API.Hello": "HelloResObj",
    "ChargePoint.GetEVSEInfos": "ChargePointGetEVSEInfosResObj",
    "ChargePoint.GetActiveErrors": "ChargePointGetActiveErrorsResObj",
    "EVSE.GetInfo": "EVSEGetInfoResObj",
    "EVSE.GetStatus": "EVSEGetStatusResObj",
    "EVSE.GetHardwareCapabilities": "EVSEGetHardwareCapabilitiesResObj",
    "EVSE.GetMeterData": "EVSEGetMeterDataResObj",
}
NOTIFICATION_TYPES = {
    model.STATUS_CHANGED: "EVSEStatusChangedObj",
    model.HW_CAPS_CHANGED: "EVSEHardwareCapabilitiesChangedObj",
    model.METER_DATA_CHANGED: "EVSEMeterDataChangedObj",
    model.ERRORS_CHANGED: "ChargePointActiveErrorsChangedObj",
}


def check_result(method: str, result: Any) -> None:
    check_type(RESULT_TYPES.get(method, "ErrorResObj"), result)


def check_notification(method: str, params: Any) -> None:
    check_type(NOTIFICATION_TYPES[method], params)


# -- JSON-RPC framing -------------------------------------------------------------------------------------


async def echo(client: Client, **params: Any) -> Any:
    return {"params": params, "pi": 3.14159}


async def broken(client: Client) -> Any:
    raise RuntimeError("oops")


def dispatcher(auth: Auth | None = None, places: int = 2) -> Dispatcher:
    return Dispatcher(
        [
            Method(
                "Echo",
                (Param("n", "integer"), Param("x", "number", required=False), Param("b", "boolean", False)),
                echo,
            ),
            Method("Broken", (), broken),
            Method(jsonrpc.HELLO, (Param("token", "string", required=False),), echo, needs_auth=False),
        ],
        auth,
        places,
    )


@pytest.mark.parametrize(
    ("text", "code", "answer_id"),
    [
        ("{not json", jsonrpc.PARSE_ERROR, None),
        ('{"jsonrpc": "2.0", "method": "Echo", "id": NaN}', jsonrpc.PARSE_ERROR, None),
        ("[]", jsonrpc.INVALID_REQUEST, None),
        ("42", jsonrpc.INVALID_REQUEST, None),
        ('{"method": "Echo", "id": 1}', jsonrpc.INVALID_REQUEST, 1),
        ('{"jsonrpc": "1.0", "method": "Echo", "id": 1}', jsonrpc.INVALID_REQUEST, 1),
        ('{"jsonrpc": "2.0", "method": 5, "id": "a"}', jsonrpc.INVALID_REQUEST, "a"),
        ('{"jsonrpc": "2.0", "method": "Echo", "params": 3, "id": 2}', jsonrpc.INVALID_REQUEST, 2),
        ('{"jsonrpc": "2.0", "method": "Echo", "id": {"x": 1}}', jsonrpc.INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": "Echo", "id": true}', jsonrpc.INVALID_REQUEST, None),
    ],
)
def test_decode_errors(text: str, code: int, answer_id: Any) -> None:
    decoded = dispatcher().decode(text)
    assert decoded.requests == []
    assert decoded.answer is not None
    assert decoded.answer["error"]["code"] == code
    assert decoded.answer["id"] == answer_id
    assert decoded.answer["jsonrpc"] == "2.0"


def test_decode_batch() -> None:
    decoded = dispatcher().decode('[{"jsonrpc": "2.0", "method": "Echo", "params": [1], "id": 1}, 7, {"foo": 1}]')
    assert decoded.batch
    assert [(r.method, r.params, r.id, r.notification) for r in decoded.requests] == [("Echo", [1], 1, False)]
    assert [e["error"]["code"] for e in decoded.errors] == [jsonrpc.INVALID_REQUEST] * 2
    single = dispatcher().decode('{"jsonrpc": "2.0", "method": "Echo"}')
    assert not single.batch
    assert single.requests[0].notification


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"n": 3}, {"n": 3}),
        ({"n": 3.0, "x": 2, "b": False, "unknown": 1}, {"n": 3, "x": 2.0, "b": False}),
        ([4, 1.5], {"n": 4, "x": 1.5}),
        ({"n": 1, "x": None}, {"n": 1}),
    ],
)
def test_bind(given: Any, expected: dict[str, Any]) -> None:
    params = (Param("n", "integer"), Param("x", "number", required=False), Param("b", "boolean", required=False))
    assert jsonrpc.bind(params, given) == expected


@pytest.mark.parametrize(
    "given", [None, {}, {"n": "3"}, {"n": 3.5}, {"n": True}, {"n": 1, "b": 1}, [1, 2, 3, 4], {"n": None}, [1, "x"]]
)
def test_bind_refuses(given: Any) -> None:
    params = (Param("n", "integer"), Param("x", "number", required=False), Param("b", "boolean", required=False))
    with pytest.raises(RpcError) as err:
        jsonrpc.bind(params, given)
    assert err.value.code == jsonrpc.INVALID_PARAMS


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def call(d: Dispatcher, text: str, client: Client | None = None) -> Any:
    async def go() -> Any:
        decoded = d.decode(text)
        assert decoded.answer is None, decoded.answer
        return await d.execute(decoded.requests[0], client or Client("c"))

    return run(go())


def test_execute() -> None:
    d = dispatcher()
    assert call(d, '{"jsonrpc": "2.0", "method": "Echo", "params": {"n": 2}, "id": 9}') == {
        "jsonrpc": "2.0",
        "result": {"params": {"n": 2}, "pi": 3.14},
        "id": 9,
    }
    assert call(d, '{"jsonrpc": "2.0", "method": "Echo", "params": {"n": 2}}') is None, "a notification"
    nope = call(d, '{"jsonrpc": "2.0", "method": "Nope", "id": "q"}')
    assert (nope["error"]["code"], nope["error"]["message"], nope["id"]) == (-32601, "Method not found", "q")
    bad = call(d, '{"jsonrpc": "2.0", "method": "Echo", "params": {"n": "two"}, "id": 1}')
    assert (bad["error"]["code"], bad["error"]["data"]) == (-32602, "n must be an integer")
    boom = call(d, '{"jsonrpc": "2.0", "method": "Broken", "id": 2}')
    assert boom["error"] == {"code": -32603, "message": "Internal error", "data": "RuntimeError"}
    assert call(dispatcher(places=0), '{"jsonrpc": "2.0", "method": "Echo", "params": [1], "id": 1}')["result"][
        "pi"
    ] == pytest.approx(3.14159)


def test_token_authentication() -> None:
    d = dispatcher(Auth(required=True, token=TOKEN))
    client = Client("c")
    denied = call(d, '{"jsonrpc": "2.0", "method": "Echo", "params": {"n": 1}, "id": 1}', client)
    assert denied["error"]["code"] == jsonrpc.UNAUTHORIZED
    wrong = call(d, json.dumps({"jsonrpc": "2.0", "method": "Echo", "params": {"n": 1, "token": "guess"}, "id": 2}))
    assert wrong["error"]["code"] == jsonrpc.UNAUTHORIZED
    ok = call(d, json.dumps({"jsonrpc": "2.0", "method": "Echo", "params": {"n": 1, "token": TOKEN}, "id": 3}), client)
    assert ok["result"]["params"] == {"n": 1}, "the token is taken out of the parameters"
    assert not client.authenticated, "a token in one request authorises that request only"
    hello = call(d, '{"jsonrpc": "2.0", "method": "API.Hello", "id": 4}', client)
    assert "result" in hello, "API.Hello needs no token"
    assert not Auth(required=True, token="").check(""), "an empty token never matches"


def test_encode_never_fails() -> None:
    assert jsonrpc.encode({"a": [float("nan"), 1.5, float("inf")], "b": T0}) == (
        '{"a":[null,1.5,null],"b":"2024-05-01 10:00:00+00:00"}'
    )


def test_round_floats() -> None:
    assert jsonrpc.round_floats({"a": [1.23456, 2, True, "x"], "b": {"c": -0.005}}, 2) == {
        "a": [1.23, 2, True, "x"],
        "b": {"c": -0.01},
    }


# -- the data model --------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, method: str, params: dict[str, Any]) -> None:
        check_notification(method, params)
        self.sent.append((method, params))

    def methods(self) -> list[str]:
        return [m for m, _ in self.sent]

    def last(self, method: str) -> dict[str, Any]:
        return next(p for m, p in reversed(self.sent) if m == method)


def enforced(current: float | None = None, phases: int | None = None, power: float | None = None) -> dict[str, Any]:
    root: dict[str, Any] = {}
    if current is not None:
        root["ac_max_current_A"] = {"value": current, "source": "EnergyManager"}
    if phases is not None:
        root["ac_max_phase_count"] = {"value": phases, "source": "EnergyManager"}
    if power is not None:
        root["total_power_W"] = {"value": power, "source": "EnergyManager"}
    return {"uuid": "u", "valid_for": 10, "limits_root_side": root, "schedule": []}


def test_evse_model_status_and_notifications() -> None:
    clock = FakeClock()
    sent = Recorder()
    evse = EvseModel(1, 1, clock, sent)
    assert evse.info() is None, "no EVSE id yet"
    evse.set_evse_id("DE*EPY*E1*1")
    evse.set_connector_type("cType2")
    evse.supported_energy_transfer_modes(["AC_three_phase_core", "AC_single_phase_core"])
    assert evse.info() == {
        "index": 1,
        "id": "DE*EPY*E1*1",
        "available_connectors": [{"index": 1, "type": "cType2"}],
        "supported_energy_transfer_modes": ["AC_three_phase_core", "AC_single_phase_core"],
    }
    check_type("EVSEInfoObj", evse.info())
    assert sent.methods() == [model.STATUS_CHANGED], "the first status"
    evse.supported_energy_transfer_modes(["AC_three_phase_core", "AC_single_phase_core"])
    assert len(sent.sent) == 1, "no change, no notification"

    evse.hw_capabilities(HW_CAPS)
    assert sent.last(model.HW_CAPS_CHANGED) == {
        "evse_index": 1,
        "hardware_capabilities": {
            "max_current_A_export": 16.456,
            "max_current_A_import": 32.123,
            "max_phase_count_export": 3,
            "max_phase_count_import": 3,
            "min_current_A_export": 0.0,
            "min_current_A_import": 6.0,
            "min_phase_count_export": 1,
            "min_phase_count_import": 1,
            "phase_switch_during_charging": True,
        },
    }
    evse.session_event(
        session_event("Disabled", source={"enable_source": "CSMS", "enable_state": "Disable", "enable_priority": 1})
    )
    assert (evse.state, evse.available) == ("Disabled", False)
    evse.session_event(
        session_event("Enabled", source={"enable_source": "CSMS", "enable_state": "Enable", "enable_priority": 1})
    )
    evse.session_event(session_event("SessionStarted"))
    evse.session_event(session_event("Authorized"))
    assert evse.state == "Preparing", "Authorized keeps the state"
    evse.session_event(transaction_started(1000.0))
    evse.session_event(session_event("ChargingStarted"))
    evse.selected_protocol("ISO15118-2")
    evse.enforced_limits(enforced(current=16.0, phases=3, power=11000.0))
    clock.advance(90)
    evse.powermeter(powermeter(1500.25, power_w=11000.0))
    status = sent.last(model.STATUS_CHANGED)["evse_status"]
    assert status == {
        "charged_energy_wh": 500.25,
        "discharged_energy_wh": 0.0,
        "charging_duration_s": 90,
        "charging_allowed": True,
        "available": True,
        "active_connector_index": 1,
        "error_present": False,
        "charge_protocol": "ISO15118",
        "state": "Charging",
        "ac_charge_param": {
            "evse_max_current": 16.0,
            "evse_max_phase_count": 3,
            "evse_maximum_charge_power": 11000.0,
            "evse_minimum_charge_power": 0.0,
            "evse_nominal_frequency": 0.0,
        },
        "ac_charge_status": {"evse_active_phase_count": 3},
    }
    meter = sent.last(model.METER_DATA_CHANGED)["meter_data"]
    assert meter["energy_Wh_import"]["total"] == 1500.25
    assert meter["current_A"] == {"L1": 16.0444, "L2": 15.9, "L3": 16.1, "N": 0.2049}
    assert meter["voltage_V"] == {"L1": 230.123456, "L2": 229.987, "L3": 231.0}
    assert "VAR" not in meter, "not part of MeterDataObj"
    # a later reading without voltages keeps the last ones
    reading = powermeter(1600.0)
    del reading["voltage_V"]
    evse.powermeter(reading)
    assert evse.meter is not None
    assert (evse.meter["voltage_V"]["L1"], evse.meter["energy_Wh_import"]["total"]) == (230.123456, 1600.0)

    evse.supported_energy_transfer_modes(["DC_extended"])
    assert "ac_charge_param" not in evse.status()
    clock.advance(100)
    evse.ev_info({"soc": 41.6, "battery_capacity": 60000, "estimated_time_full": "2024-05-01T11:00:00Z"})
    assert evse.status()["display_parameters"] == {
        "present_soc": 42,
        "battery_energy_capacity": 60000.0,
        "remaining_time_to_maximum_soc": 3600 - 190,
    }
    evse.session_event(session_event("SwitchingPhases"))
    assert evse.state == "SwitchingPhases"
    evse.session_event(session_event("StoppingCharging"))
    assert evse.state == "FinishedEV"


@pytest.mark.parametrize(
    ("selected", "protocol"),
    [
        ("IEC61851-1", "IEC61851"),
        ("DIN70121", "DIN70121"),
        ("ISO15118-2", "ISO15118"),
        ("ISO15118-20:DC", "ISO15118_20"),
        ("", "Unknown"),
    ],
)
def test_charge_protocol(selected: str, protocol: str) -> None:
    assert model.charge_protocol(selected) == protocol


def wire_error(
    uuid: str, etype: str = "evse_board_support/DiodeFault", evse: int | None = 1, **kw: Any
) -> dict[str, Any]:
    origin: dict[str, Any] = {"module_id": "board", "implementation_id": "bsp"}
    if evse is not None:
        origin["mapping"] = {"evse": evse, "connector": 1}
    return {
        "type": etype,
        "sub_type": kw.get("sub_type", ""),
        "description": kw.get("description", "The diode is shorted"),
        "message": kw.get("message", "x"),
        "origin": origin,
        "severity": kw.get("severity", "High"),
        "timestamp": "2024-05-01T10:00:00.000Z",
        "uuid": uuid,
        "state": "Active",
        "vendor_id": "everest",
    }


def test_active_errors() -> None:
    sent = Recorder()
    charger = ChargerModel(sent)
    evse = EvseModel(1, 1, FakeClock(), sent)
    charger.evses.append(evse)
    charger.error_raised(wire_error("u1"))
    assert charger.errors == [
        {
            "type": "evse_board_support/DiodeFault",
            "sub_type": "",
            "description": "The diode is shorted",
            "message": '"x"',
            "severity": "High",
            "origin": {"module_id": "board", "implementation_id": "bsp", "evse_index": 1, "connector_index": 1},
            "timestamp": "2024-05-01T10:00:00.000Z",
            "uuid": "u1",
        }
    ]
    assert evse.error_present
    charger.error_raised(wire_error("u1"))
    charger.error_raised(wire_error("u2", "generic/VendorWarning", evse=None, severity="low", description=""))
    assert [e["uuid"] for e in charger.errors] == ["u1", "u2"]
    assert charger.errors[1]["origin"]["evse_index"] == 0
    assert charger.errors[1]["description"] == "(no description)"
    assert sent.methods().count(model.ERRORS_CHANGED) == 2, "the repeated raise changes nothing"
    charger.error_cleared(wire_error("other-uuid"))  # same origin, type and sub type as u1
    assert [e["uuid"] for e in charger.errors] == ["u2"]
    assert not evse.error_present
    assert sent.last(model.ERRORS_CHANGED) == {"active_errors": charger.errors}
    charger.error_cleared(wire_error("u9", "generic/CommunicationFault"))
    assert sent.methods().count(model.ERRORS_CHANGED) == 3, "clearing an unknown error changes nothing"


def test_wait_current_applied() -> None:
    async def scenario() -> None:
        evse = EvseModel(1, 1, FakeClock(), lambda m, p: None)
        assert not await evse.wait_current_applied(10.0, 0)
        waiting = asyncio.ensure_future(evse.wait_current_applied(10.0, 5))
        await asyncio.sleep(0)
        evse.enforced_limits(enforced(current=0.0))  # zero means "no energy", not a new limit
        evse.enforced_limits(enforced(current=8.0))
        await asyncio.sleep(0)
        assert not waiting.done()
        evse.enforced_limits(enforced(current=10.0))
        assert await waiting
        assert await evse.wait_current_applied(10.0, 0), "already in force"
        assert evse.active_phase_count == 3, "no phase count enforced: three phases"

    run(scenario())


# -- the methods -----------------------------------------------------------------------------------------


class FakeControl:
    def __init__(self, with_sink: bool = True) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.with_sink = with_sink
        self.result = True
        self.fail = False
        self.on_limits: Callable[[dict[str, Any]], None] | None = None

    def _record(self, name: str, arg: Any = None) -> None:
        if self.fail:
            raise ControlError(f"{name} failed")
        self.calls.append((name, arg))

    async def enable_disable(self, evse: EvseModel, connector_id: int, source: dict[str, Any]) -> bool:
        self._record("enable_disable", (connector_id, source))
        return source["enable_state"] == "Enable" if self.result else source["enable_state"] != "Enable"

    async def pause_charging(self, evse: EvseModel) -> bool:
        self._record("pause_charging")
        return self.result

    async def resume_charging(self, evse: EvseModel) -> bool:
        self._record("resume_charging")
        return self.result

    async def set_external_limits(self, evse: EvseModel, limits: dict[str, Any]) -> bool:
        if not self.with_sink:
            return False
        self._record("set_external_limits", limits)
        if self.on_limits is not None:
            self.on_limits(limits)
        return True


def setup_methods(control: FakeControl, auth: Auth | None = None) -> tuple[Methods, EvseModel]:
    charger = ChargerModel(lambda m, p: None)
    evse = EvseModel(1, 1, FakeClock(), lambda m, p: None)
    charger.evses.append(evse)
    return Methods(charger, control, FakeClock(), auth=auth, everest_version="test", apply_timeout_s=0), evse


def leaves(limits: dict[str, Any], schedule: str = "schedule_import") -> dict[str, Any]:
    result: dict[str, Any] = limits[schedule][0]["limits_to_leaves"]
    return result


def test_hello_and_queries() -> None:
    control = FakeControl()
    methods, evse = setup_methods(control, Auth(required=True, token=TOKEN))
    client = Client("c")

    async def scenario() -> None:
        hello = await methods.hello(client, token=TOKEN)
        assert hello == {
            "authentication_required": True,
            "authenticated": True,
            "api_version": "1.0.0",
            "everest_version": "test",
            "charger_info": {
                "vendor": "unknown",
                "model": "unknown",
                "serial": "unknown",
                "firmware_version": "unknown",
            },
        }
        assert (client.hello_done, client.authenticated) == (True, True)
        results = {
            "ChargePoint.GetEVSEInfos": await methods.get_evse_infos(client),
            "ChargePoint.GetActiveErrors": await methods.get_active_errors(client),
            "EVSE.GetInfo": await methods.get_info(client, 1),
            "EVSE.GetHardwareCapabilities": await methods.get_hardware_capabilities(client, 1),
            "EVSE.GetMeterData": await methods.get_meter_data(client, 1),
        }
        for name, result in results.items():
            check_result(name, result)
        assert [r["error"] for r in results.values()] == [
            "ErrorNoDataAvailable",
            "NoError",
            "ErrorNoDataAvailable",
            "ErrorNoDataAvailable",
            "ErrorNoDataAvailable",
        ]
        for name, method in [
            ("EVSE.GetInfo", methods.get_info),
            ("EVSE.GetStatus", methods.get_status),
            ("EVSE.GetHardwareCapabilities", methods.get_hardware_capabilities),
            ("EVSE.GetMeterData", methods.get_meter_data),
        ]:
            result = await method(client, 7)
            check_result(name, result)
            assert result["error"] == "ErrorInvalidEVSEIndex"
        evse.set_evse_id("E1")
        evse.hw_capabilities(HW_CAPS)
        evse.powermeter(powermeter())
        infos = await methods.get_evse_infos(client)
        assert (infos["error"], [i["id"] for i in infos["infos"]]) == ("NoError", ["E1"])
        status = await methods.get_status(client, 1)
        check_result("EVSE.GetStatus", status)
        assert (status["error"], status["status"]["state"]) == ("NoError", "Unknown")
        meter = await methods.get_meter_data(client, 1)
        check_result("EVSE.GetMeterData", meter)
        assert meter["meter_data"]["meter_id"] == "SIM"
        methods.model.set_charger_information(
            {"vendor": "V", "model": "M", "model_number": "X1", "chargebox_serial": "n"}
        )
        hello = await methods.hello(Client("d"))
        assert hello["charger_info"] == {
            "vendor": "V",
            "model": "M",
            "serial": "unknown",
            "firmware_version": "unknown",
            "model_no": "X1",
        }
        assert hello["authenticated"] is False
        check_result("API.Hello", hello)

    run(scenario())


def test_set_charging_allowed() -> None:
    control = FakeControl()
    methods, evse = setup_methods(control)
    client = Client("c")

    async def scenario() -> None:
        assert await methods.set_charging_allowed(client, 1, True) == {"error": "NoError"}
        assert control.calls == [], "already allowed"
        # not charging: a zero limit keeps charging from starting
        assert await methods.set_charging_allowed(client, 1, False) == {"error": "NoError"}
        [(name, limits)] = control.calls
        assert name == "set_external_limits"
        assert leaves(limits, "schedule_export") == {"ac_max_current_A": {"value": 0.0, "source": "RpcApi_module"}}
        assert leaves(limits) == {"total_power_W": {"value": 0.0, "source": "RpcApi_module"}}
        assert not evse.charging_allowed
        # a current set meanwhile is kept, and applied when charging is allowed again
        control.calls.clear()
        assert await methods.set_ac_charging_current(client, 1, 10.0) == {"error": "NoError"}
        assert control.calls == []
        evse.session_event(session_event("ChargingPausedEVSE"))
        evse.enforced_limits(enforced(current=6.0, phases=1))
        assert await methods.set_charging_allowed(client, 1, True) == {"error": "NoError"}
        assert [c[0] for c in control.calls] == ["set_external_limits", "resume_charging"]
        assert leaves(control.calls[0][1]) == {
            "ac_max_phase_count": {"value": 1, "source": "RpcApi_module"},
            "ac_min_phase_count": {"value": 1, "source": "RpcApi_module"},
            "ac_max_current_A": {"value": 10.0, "source": "RpcApi_module"},
        }
        # charging: pause; the EVSE manager refusing it is reported
        control.calls.clear()
        evse.session_event(session_event("ChargingStarted"))
        control.result = False
        assert await methods.set_charging_allowed(client, 1, False) == {"error": "ErrorValuesNotApplied"}
        assert control.calls == [("pause_charging", None)]
        control.fail = True
        evse.set_charging_allowed(True)
        assert await methods.set_charging_allowed(client, 1, False) == {"error": "ErrorUnknownError"}
        assert await methods.set_charging_allowed(client, 2, False) == {"error": "ErrorInvalidEVSEIndex"}

    run(scenario())


def test_set_current_phases_and_power() -> None:
    control = FakeControl()
    methods, evse = setup_methods(control)
    client = Client("c")

    async def scenario() -> None:
        assert await methods.set_ac_charging_current(client, 1, 16.0) == {"error": "ErrorValuesNotApplied"}
        assert leaves(control.calls[-1][1]) == {"ac_max_current_A": {"value": 16.0, "source": "RpcApi_module"}}
        control.on_limits = lambda limits: evse.enforced_limits(
            enforced(current=leaves(limits)["ac_max_current_A"]["value"], phases=3)
        )
        assert await methods.set_ac_charging_current(client, 1, 13.0) == {"error": "NoError"}
        control.on_limits = None
        assert await methods.set_ac_charging_phase_count(client, 1, 3) == {"error": "NoError"}, "already 3 phases"
        calls = len(control.calls)
        assert await methods.set_ac_charging_phase_count(client, 1, 2) == {"error": "ErrorInvalidParameter"}
        evse.hw_capabilities(HW_CAPS)
        assert await methods.set_ac_charging_phase_count(client, 1, 4) == {"error": "ErrorOutOfRange"}
        assert len(control.calls) == calls
        assert await methods.set_ac_charging_phase_count(client, 1, 1) == {"error": "NoError"}
        assert leaves(control.calls[-1][1]) == {
            "ac_max_phase_count": {"value": 1, "source": "RpcApi_module"},
            "ac_min_phase_count": {"value": 1, "source": "RpcApi_module"},
            "ac_max_current_A": {"value": 13.0, "source": "RpcApi_module"},
        }
        evse.hw_capabilities({**HW_CAPS, "supports_changing_phases_during_charging": False})
        assert await methods.set_ac_charging_phase_count(client, 1, 1) == {"error": "ErrorOperationNotSupported"}
        assert await methods.set_dc_charging_power(client, 1, -5000.0) == {"error": "NoError"}
        assert leaves(control.calls[-1][1], "schedule_export") == {
            "total_power_W": {"value": 5000.0, "source": "RpcApi_module"}
        }
        assert await methods.set_dc_charging(client, 1, True, 7000.0) == {"error": "NoError"}
        assert await methods.set_ac_charging(client, 1, True, 32.0) == {"error": "ErrorValuesNotApplied"}

    run(scenario())
    no_sink, _ = setup_methods(FakeControl(with_sink=False))
    assert run(no_sink.set_dc_charging_power(Client("c"), 1, 1000.0)) == {"error": "ErrorInvalidEVSEIndex"}


def test_enable_connector() -> None:
    control = FakeControl()
    methods, _ = setup_methods(control)
    client = Client("c")
    assert run(methods.enable_connector(client, 1, 1, False, 10)) == {"error": "NoError"}
    assert control.calls == [
        ("enable_disable", (1, {"enable_source": "LocalAPI", "enable_state": "Disable", "enable_priority": 10}))
    ]
    assert run(methods.enable_connector(client, 1, 0, True, 10)) == {"error": "NoError"}, "0: the whole EVSE"
    assert run(methods.enable_connector(client, 1, 2, True, 10)) == {"error": "ErrorInvalidConnectorIndex"}
    assert run(methods.enable_connector(client, 1, 1, True, 10001)) == {"error": "ErrorOutOfRange"}
    assert run(methods.enable_connector(client, 3, 1, True, 10)) == {"error": "ErrorInvalidEVSEIndex"}
    control.result = False
    assert run(methods.enable_connector(client, 1, 1, True, 10)) == {"error": "ErrorValuesNotApplied"}


def test_limits_for(contracts: Contracts) -> None:
    schema = contracts.interface("external_energy_limits").cmds["set_external_limits"].arguments["value"]
    check = contracts.validator(("test", "rpc external limits"), schema)
    cases = [
        limits_for(T0, 16.0),
        limits_for(T0, -16.0),
        limits_for(T0, 11000.0, power=True),
        limits_for(T0, phases=1),
        limits_for(T0, 10.0, phases=3),
        limits_for(T0, -10.0, power=True, phases=1),
    ]
    for limits in cases:
        check(limits)
        assert limits["schedule_setpoints"] == []
        assert limits["schedule_import"][0]["timestamp"] == "2024-05-01T10:00:00.000Z"
    assert leaves(cases[3]) == {
        "ac_max_phase_count": {"value": 1, "source": "RpcApi_module"},
        "ac_min_phase_count": {"value": 1, "source": "RpcApi_module"},
    }
    assert leaves(cases[3], "schedule_export") == {"total_power_W": {"value": 0.0, "source": "RpcApi_module"}}
    assert leaves(cases[5], "schedule_import") == {"total_power_W": {"value": 0.0, "source": "RpcApi_module"}}
    assert leaves(cases[5], "schedule_export")["total_power_W"]["value"] == 10.0


# -- the listen address ------------------------------------------------------------------------------------


def test_listen_address() -> None:
    assert netif.listen_address("lo") == "127.0.0.1"
    assert netif.listen_address("all") == "0.0.0.0"
    assert netif.listen_address("192.168.7.1") == "192.168.7.1"
    assert netif.ioctl_ipv4("lo") == "127.0.0.1", "the kernel's answer for the loopback interface"
    for name in ("nosuchif0", "", "a" * 20, "../etc"):
        with pytest.raises(ValueError, match="websocket_interface"):
            netif.listen_address(name)


# -- manifests and files -----------------------------------------------------------------------------------

MODULES = Path(__file__).resolve().parents[2] / "app" / "src" / "everest_py" / "modules"
EXTENSIONS = {"websocket_tls_certificate_file", "websocket_tls_private_key_file", "authentication_token"}


def test_manifest_matches_the_reference_plus_extensions() -> None:
    ours = yaml.safe_load((MODULES / "rpc_api" / "manifest.yaml").read_text())
    ref_file = REFERENCE_TYPES.parent / "manifest.yaml"
    if not ref_file.is_file():
        pytest.skip("no reference manifest")
    ref = yaml.safe_load(ref_file.read_text())
    keys = ("type", "default", "minimum", "minLength", "enum")

    def shape(config: dict[str, Any]) -> dict[str, Any]:
        return {k: {s: v.get(s) for s in keys} for k, v in config.items()}

    assert set(ours["config"]) - set(ref["config"]) == EXTENSIONS
    assert shape({k: v for k, v in ours["config"].items() if k not in EXTENSIONS}) == shape(ref["config"])
    assert all(ours["config"][k]["description"].startswith("everest-py extension") for k in EXTENSIONS)
    assert all(ours["config"][k]["default"] == "" for k in EXTENSIONS)
    assert ours["requires"] == ref["requires"]
    assert ours.get("provides") == ref.get("provides")
    assert ours["enable_global_errors"] is True
    assert ours["description"] != ref["description"]


@pytest.mark.parametrize("folder", ["api", "rpc_api"])
def test_metadata_and_headers(folder: str) -> None:
    import ast

    base = MODULES / folder
    manifest = yaml.safe_load((base / "manifest.yaml").read_text())
    assert manifest["metadata"] == {
        "license": "https://opensource.org/licenses/Apache-2.0",
        "authors": ["everest-py contributors"],
    }
    for name in ("__init__.py", "module.py", "manifest.yaml", "README.md"):
        assert (base / name).is_file(), name
    header = ["# SPDX-License-Identifier: Apache-2.0", "# Copyright contributors to everest-py"]
    for f in [*base.glob("*.py"), *base.glob("*.yaml")]:
        text = f.read_text()
        assert text.splitlines()[:2] == header, f
        if f.suffix == ".py":
            doc = ast.get_docstring(ast.parse(text))
            assert doc, f
            assert "\n" not in doc.split("\n\n")[0], f"{f}: the docstring starts with one line"
