# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""RpcApi on real sockets: the WebSocket server alone, then whole stacks with a probe as EVSE manager."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from everest_py.framework import wire
from everest_py.modules.rpc_api import jsonrpc
from everest_py.modules.rpc_api.jsonrpc import Auth, Dispatcher
from everest_py.modules.rpc_api.methods import Methods
from everest_py.modules.rpc_api.model import STATUS_CHANGED, ChargerModel, EvseModel
from everest_py.modules.rpc_api.server import RpcServer
from everest_py.testing import Probe, free_port

from .test_api import HW_CAPS, FakeClock, powermeter, session_event, transaction_started
from .test_rpc_api import TOKEN, FakeControl, check_notification, check_result

T = TypeVar("T")


async def until(fetch: Callable[[], T | None], timeout_s: float = 5.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or fetch}")
        await asyncio.sleep(0.01)


class RpcClient:
    """A JSON-RPC client over one WebSocket: answers by id, everything else kept in arrival order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next = 0
        self.answers: dict[Any, dict[str, Any]] = {}
        self.others: list[Any] = []
        self.notes: list[dict[str, Any]] = []
        self.closed: asyncio.Event = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with suppress(ConnectionClosed):
            async for message in self.ws:
                data = json.loads(message)
                if isinstance(data, dict) and "method" in data:
                    check_notification(data["method"], data["params"])
                    self.notes.append(data)
                elif isinstance(data, dict) and data.get("id") is not None:
                    self.answers[data["id"]] = data
                else:
                    self.others.append(data)
        self.closed.set()

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def call(self, method: str, params: Any = None, timeout_s: float = 5.0) -> dict[str, Any]:
        self._next += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self._next}
        if params is not None:
            request["params"] = params
        await self.send(request)
        rid = self._next
        return await until(lambda: self.answers.pop(rid, None), timeout_s, f"the answer to {method}")

    async def result(self, method: str, params: Any = None) -> Any:
        answer = await self.call(method, params)
        assert "result" in answer, answer
        check_result(method, answer["result"])
        return answer["result"]

    async def poll(self, method: str, params: Any, check: Callable[[Any], bool], timeout_s: float = 5.0) -> Any:
        """Call ``method`` until its result passes ``check`` (for values still on their way over MQTT)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = await self.result(method, params)
            if check(result) or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.02)

    async def other(self, timeout_s: float = 5.0) -> Any:
        return await until(lambda: self.others.pop(0) if self.others else None, timeout_s, "an answer without id")

    async def notification(
        self, method: str, check: Callable[[dict[str, Any]], bool] = lambda _: True, timeout_s: float = 5.0
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((n["params"] for n in self.notes if n["method"] == method and check(n["params"])), None)

        return await until(find, timeout_s, f"a {method} notification")

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with suppress(BaseException):
            await self._reader


@asynccontextmanager
async def rpc_client(
    url: str, ssl_context: ssl.SSLContext | None = None, timeout_s: float = 10.0
) -> AsyncIterator[RpcClient]:
    """Connect (retrying while the server comes up) and close again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ws = await connect(url, ssl=ssl_context, open_timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    client = RpcClient(ws)
    try:
        yield client
    finally:
        await client.close()


# -- the server alone ------------------------------------------------------------------------------------


@asynccontextmanager
async def local_server(hello_timeout_s: float = 5.0) -> AsyncIterator[tuple[RpcServer, EvseModel]]:
    holder: list[RpcServer] = []

    def notify(method: str, params: dict[str, Any]) -> None:
        holder[0].notify(method, params)

    charger = ChargerModel(notify)
    evse = EvseModel(1, 1, FakeClock(), notify)
    charger.evses.append(evse)
    methods = Methods(charger, FakeControl(), FakeClock(), apply_timeout_s=0)
    srv = RpcServer(Dispatcher(methods.table(), Auth(), 2), "127.0.0.1", 0, hello_timeout_s=hello_timeout_s)
    holder.append(srv)
    await srv.start()
    try:
        yield srv, evse
    finally:
        await srv.stop()


def url_of(srv: RpcServer) -> str:
    return f"ws://127.0.0.1:{srv.bound_port}"


def test_hello_first_and_hello_timeout() -> None:
    async def scenario() -> None:
        async with local_server(hello_timeout_s=0.3) as (srv, _), rpc_client(url_of(srv)) as polite:
            await polite.send("{oops")
            error = await polite.other()
            assert (error["error"]["code"], error["id"]) == (-32700, None), "no JSON: answered, and no API.Hello"
            assert (await polite.result("API.Hello"))["api_version"] == "1.0.0"
            async with rpc_client(url_of(srv)) as silent, rpc_client(url_of(srv)) as rude:
                await rude.send({"jsonrpc": "2.0", "method": "ChargePoint.GetEVSEInfos", "id": 1})
                await asyncio.wait_for(rude.closed.wait(), 5)
                assert rude.ws.close_code == 1008
                assert rude.ws.close_reason == "Disconnected due to missing API.Hello request"
                assert rude.answers == {}
                await asyncio.wait_for(silent.closed.wait(), 5)
                assert (silent.ws.close_code, silent.ws.close_reason) == (1008, "Disconnected due to timeout")
            # the polite client connected before the silent one: its deadline has passed too
            assert (await polite.result("ChargePoint.GetActiveErrors"))["error"] == "NoError"
            assert not polite.closed.is_set()

    asyncio.run(scenario())


def test_protocol_errors_and_batches() -> None:
    async def scenario() -> None:
        async with local_server() as (srv, _), rpc_client(url_of(srv)) as client:
            await client.result("API.Hello", {})
            unknown = await client.call("EVSE.Explode", {"evse_index": 1})
            assert unknown["error"] == {"code": -32601, "message": "Method not found", "data": "EVSE.Explode"}
            bad = await client.call("EVSE.GetStatus", {"evse_index": "one"})
            assert bad["error"]["code"] == -32602
            missing = await client.call("EVSE.SetChargingAllowed", {"evse_index": 1})
            assert missing["error"] == {
                "code": -32602,
                "message": "Invalid params",
                "data": "missing parameter charging_allowed",
            }
            await client.send({"jsonrpc": "2.0", "method": 1, "id": 77})
            assert (await until(lambda: client.answers.pop(77, None)))["error"]["code"] == -32600
            await client.send("[]")
            assert (await client.other())["error"]["code"] == -32600
            await client.send(
                [
                    {"jsonrpc": "2.0", "method": "EVSE.GetStatus", "params": [1], "id": "a"},
                    {"jsonrpc": "2.0", "method": "EVSE.GetStatus", "params": {"evse_index": 1}},
                    "junk",
                    {"jsonrpc": "2.0", "method": "Nope", "id": "b"},
                ]
            )
            batch = await client.other()
            assert [a["id"] for a in batch] == [None, "a", "b"], "invalid members first, notifications unanswered"
            assert batch[1]["result"]["error"] == "NoError"
            assert [batch[0]["error"]["code"], batch[2]["error"]["code"]] == [-32600, -32601]
            await client.send([{"jsonrpc": "2.0", "method": "API.Hello"}])
            await client.result("API.Hello")  # answered after the batch would have been
            assert client.others == [], "a batch of notifications gets no answer"

    asyncio.run(scenario())


def test_slow_and_broken_clients_do_not_hurt_others() -> None:
    async def scenario() -> None:
        async with local_server() as (srv, evse):
            async with rpc_client(url_of(srv)) as good, rpc_client(url_of(srv)) as slow:
                await good.result("API.Hello")
                await slow.result("API.Hello")
                async with rpc_client(url_of(srv)) as broken:
                    await broken.result("API.Hello")
                    broken.ws.transport.abort()  # gone without a closing handshake
                    await until(lambda: True if srv.clients == 2 else None, what="the server to drop it")
                # A burst: the writer cannot run in between, so each client gets only the latest status.
                for i in range(2000):
                    evse.powermeter(powermeter(1000.0 + i))
                last = await good.notification(
                    "EVSE.MeterDataChanged", lambda p: p["meter_data"]["energy_Wh_import"]["total"] == 2999.0
                )
                assert last["evse_index"] == 1
                assert len([n for n in good.notes if n["method"] == "EVSE.MeterDataChanged"]) < 10
                await slow.notification(
                    "EVSE.MeterDataChanged", lambda p: p["meter_data"]["energy_Wh_import"]["total"] == 2999.0
                )
                assert (await good.result("EVSE.GetMeterData", {"evse_index": 1}))["meter_data"][
                    "energy_Wh_import"
                ] == {
                    "L1": 999.67,
                    "L2": 999.67,
                    "L3": 999.67,
                    "total": 2999.0,
                }, "rounded to max_decimal_places_other"
            await until(lambda: True if srv.clients == 0 else None, what="all clients to be gone")

    asyncio.run(scenario())


def test_stop_closes_clients() -> None:
    async def scenario() -> None:
        srv_ctx = local_server()
        srv, _ = await srv_ctx.__aenter__()
        url = url_of(srv)
        async with rpc_client(url) as client:
            await client.result("API.Hello")
            await srv_ctx.__aexit__(None, None, None)
            await asyncio.wait_for(client.closed.wait(), 5)
            assert client.ws.close_code == 1001
        with pytest.raises(OSError):
            await connect(url, open_timeout=1)

    asyncio.run(scenario())


# -- whole stacks ----------------------------------------------------------------------------------------

CHARGER_INFO = {"vendor": "everest-py", "model": "Probe", "chargepoint_serial": "P-1", "firmware_version": "1.2.3"}


def rpc_config(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "active_modules": {
            "rpc": {
                "module": "RpcApi",
                "config_module": {"websocket_port": port, "websocket_interface": "lo", **extra},
                "connections": {
                    "evse_manager": [{"module_id": "probe", "implementation_id": "evse"}],
                    "evse_energy_sink": [{"module_id": "probe", "implementation_id": "sink"}],
                    "charger_information": [{"module_id": "probe", "implementation_id": "info"}],
                },
            },
            "probe": {"module": "ProbeModule", "mapping": {"module": {"evse": 1, "connector": 1}}},
        }
    }


def evse_manager(probe: Probe, calls: list[tuple[str, Any]]) -> None:
    """The probe as EVSE manager and energy sink: records calls, enforces the limits it is given."""

    def enable_disable(connector_id: int, cmd_source: dict[str, Any]) -> bool:
        calls.append(("enable_disable", (connector_id, cmd_source)))
        return bool(cmd_source["enable_state"] == "Enable")

    def set_external_limits(value: dict[str, Any]) -> None:
        calls.append(("set_external_limits", value))
        leaves = value["schedule_import"][0]["limits_to_leaves"]
        root = {k: {"value": v["value"], "source": "probe"} for k, v in leaves.items() if k != "ac_min_phase_count"}
        probe.publish_var(
            "evse", "enforced_limits", {"uuid": "probe", "valid_for": 60, "limits_root_side": root, "schedule": []}
        )

    probe.implement("evse", "get_evse", lambda: {"id": 1, "connectors": [{"id": 1, "type": "cType2"}]})
    probe.implement("evse", "enable_disable", enable_disable)
    probe.implement("evse", "pause_charging", lambda: calls.append(("pause_charging", None)) is None)
    probe.implement("evse", "resume_charging", lambda: calls.append(("resume_charging", None)) is None)
    probe.implement("sink", "set_external_limits", set_external_limits)
    probe.implement("info", "get_charger_information", lambda: CHARGER_INFO)


def raise_mapped_error(probe: Probe, kind: str = wire.RAISE_ERROR, handle: str = "e-1") -> None:
    assert probe.bus is not None
    error = {
        "type": "evse_manager/MREC5OverVoltage",
        "sub_type": "",
        "description": "Overvoltage detected.",
        "message": "L1 at 280 V",
        "origin": {"module_id": "probe", "implementation_id": "evse", "mapping": {"evse": 1, "connector": 1}},
        "severity": "High",
        "timestamp": wire.timestamp(),
        "uuid": handle,
        "state": "Active" if kind == wire.RAISE_ERROR else "ClearedByModule",
        "vendor_id": "everest",
    }
    probe.bus.publish(probe.topics.error("probe", "evse", error["type"]), wire.envelope(kind, error))


def test_rpc_api_over_the_wire(make_stack, run_probe) -> None:
    port = free_port()
    stack, prefix = make_stack(rpc_config(port))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    calls: list[tuple[str, Any]] = []

    async def scenario(probe: Probe) -> None:
        probe.publish_var("evse", "evse_id", "DE*EPY*E0000001*1")
        probe.publish_var("evse", "supported_energy_transfer_modes", ["AC_single_phase_core", "AC_three_phase_core"])
        probe.publish_var("evse", "hw_capabilities", HW_CAPS)
        async with rpc_client(f"ws://127.0.0.1:{port}") as client, rpc_client(f"ws://127.0.0.1:{port}") as other:
            hello = await client.result("API.Hello")
            assert hello["charger_info"] == {
                "vendor": "everest-py",
                "model": "Probe",
                "serial": "P-1",
                "firmware_version": "1.2.3",
            }
            assert (hello["authentication_required"], hello["api_version"]) == (False, "1.0.0")
            await other.result("API.Hello")
            infos = await client.poll(
                "ChargePoint.GetEVSEInfos",
                None,
                lambda r: r["infos"] and r["infos"][0]["supported_energy_transfer_modes"],
            )
            assert infos == {
                "infos": [
                    {
                        "index": 1,
                        "id": "DE*EPY*E0000001*1",
                        "available_connectors": [{"index": 1, "type": "cType2"}],
                        "supported_energy_transfer_modes": ["AC_single_phase_core", "AC_three_phase_core"],
                    }
                ],
                "error": "NoError",
            }
            caps = await client.poll(
                "EVSE.GetHardwareCapabilities", {"evse_index": 1}, lambda r: r["error"] == "NoError"
            )
            assert (caps["error"], caps["hardware_capabilities"]["max_current_A_import"]) == ("NoError", 32.12)
            await client.send("{this is not json")
            assert (await client.other())["error"]["code"] == -32700
            assert (await client.call("EVSE.Unknown"))["error"]["code"] == -32601
            assert (await client.call("EVSE.GetStatus", {"evse_index": None}))["error"]["code"] == -32602
            assert (await client.result("EVSE.GetStatus", {"evse_index": 9}))["error"] == "ErrorInvalidEVSEIndex"

            probe.publish_var("evse", "session_event", session_event("SessionStarted"))
            probe.publish_var("evse", "session_event", transaction_started(1000.0))
            probe.publish_var("evse", "session_event", session_event("ChargingStarted"))
            probe.publish_var("evse", "selected_protocol", "IEC61851-1")
            probe.publish_var("evse", "powermeter", powermeter(1234.5678))
            status = await client.notification(
                STATUS_CHANGED,
                lambda p: (
                    p["evse_status"]["charge_protocol"] == "IEC61851" and p["evse_status"]["charged_energy_wh"] > 0
                ),
            )
            assert (status["evse_index"], status["evse_status"]["state"]) == (1, "Charging")
            assert status["evse_status"]["charged_energy_wh"] == 234.57, "rounded to max_decimal_places_other (2)"
            meter = await other.notification("EVSE.MeterDataChanged")
            assert meter["meter_data"]["energy_Wh_import"]["total"] == 1234.57
            probe.publish_var("evse", "hw_capabilities", {**HW_CAPS, "max_current_A_import": 16.0})
            changed = await other.notification(
                "EVSE.HardwareCapabilitiesChanged", lambda p: p["hardware_capabilities"]["max_current_A_import"] == 16.0
            )
            assert changed["evse_index"] == 1

            assert await client.result("EVSE.SetACChargingCurrent", {"evse_index": 1, "max_current": 10.5}) == {
                "error": "NoError"
            }
            name, limits = calls[-1]
            assert name == "set_external_limits"
            assert limits["schedule_import"][0]["limits_to_leaves"]["ac_max_current_A"] == {
                "value": 10.5,
                "source": "RpcApi_module",
            }
            status = await client.notification(
                STATUS_CHANGED, lambda p: p["evse_status"].get("ac_charge_param", {}).get("evse_max_current") == 10.5
            )
            assert await client.result("EVSE.SetChargingAllowed", {"evse_index": 1, "charging_allowed": False}) == {
                "error": "NoError"
            }
            assert calls[-1] == ("pause_charging", None)
            assert await client.result("EVSE.EnableConnector", [1, 1, False, 50]) == {"error": "NoError"}
            assert calls[-1] == (
                "enable_disable",
                (1, {"enable_source": "LocalAPI", "enable_state": "Disable", "enable_priority": 50}),
            )

            raise_mapped_error(probe)
            errors = await client.notification(
                "ChargePoint.ActiveErrorsChanged", lambda p: len(p["active_errors"]) == 1
            )
            assert errors["active_errors"][0]["origin"] == {
                "module_id": "probe",
                "implementation_id": "evse",
                "evse_index": 1,
                "connector_index": 1,
            }
            assert (await client.result("ChargePoint.GetActiveErrors"))["active_errors"] == errors["active_errors"]
            assert (await client.result("EVSE.GetStatus", {"evse_index": 1}))["status"]["error_present"] is True
            await other.close()  # one client leaves; the other carries on
            raise_mapped_error(probe, wire.CLEAR_ERROR)
            await client.notification("ChargePoint.ActiveErrorsChanged", lambda p: p["active_errors"] == [])
            assert (await client.result("EVSE.GetStatus", {"evse_index": 1}))["status"]["error_present"] is False

    run_probe(prefix, scenario, lambda probe: evse_manager(probe, calls))
    assert stack.stop() == 0
    assert "Traceback" not in stack.log()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_tls_and_token(make_stack, run_probe, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = rpc_config(
        port,
        websocket_tls_enabled=True,
        websocket_tls_certificate_file=str(cert),
        websocket_tls_private_key_file=str(key),
        authentication_required=True,
        authentication_token=TOKEN,
    )
    stack, prefix = make_stack(config)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    trust = ssl.create_default_context(cafile=str(cert))
    url = f"wss://127.0.0.1:{port}"

    async def scenario(probe: Probe) -> None:
        probe.publish_var("evse", "evse_id", "E1")
        async with rpc_client(url, trust) as anonymous, rpc_client(url, trust) as member:
            hello = await anonymous.result("API.Hello")
            assert (hello["authentication_required"], hello["authenticated"]) == (True, False)
            denied = await anonymous.call("ChargePoint.GetEVSEInfos")
            assert denied["error"]["code"] == jsonrpc.UNAUTHORIZED
            assert (await anonymous.call("API.Hello", {"token": "wrong"}))["result"]["authenticated"] is False
            once = await anonymous.poll("ChargePoint.GetEVSEInfos", {"token": TOKEN}, lambda r: r["infos"] != [])
            assert [i["id"] for i in once["infos"]] == ["E1"]
            assert (await member.result("API.Hello", {"token": TOKEN}))["authenticated"] is True
            probe.publish_var("evse", "session_event", session_event("ChargingStarted"))
            await member.notification(STATUS_CHANGED, lambda p: p["evse_status"]["state"] == "Charging")
            assert (await member.result("EVSE.GetStatus", {"evse_index": 1}))["status"]["state"] == "Charging"
            assert anonymous.notes == [], "no notifications without authentication"
        with pytest.raises(Exception):  # noqa: B017 - a plain ws:// client cannot talk to wss://
            await connect(f"ws://127.0.0.1:{port}", open_timeout=2)

    run_probe(prefix, scenario, lambda probe: evse_manager(probe, []))
    assert stack.stop() == 0


def test_unusable_config_stops_the_stack(make_stack) -> None:
    config = rpc_config(free_port(), authentication_required=True, websocket_interface="nosuchif0")
    stack, _ = make_stack(config)
    stack.start(wait=False)
    assert stack.wait(30) != 0
    log = stack.log()
    assert "authentication_required needs an authentication_token of 16+ characters" in log, log
    assert "websocket_interface 'nosuchif0': no IPv4 address on that interface" in log, log


def test_port_in_use_stops_the_stack(make_stack, run_probe) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack, prefix = make_stack(rpc_config(port))
        stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

        async def scenario(probe: Probe) -> None:
            await until(lambda: True if stack.proc is not None and stack.proc.poll() is not None else None, 10)

        run_probe(prefix, scenario, lambda probe: evse_manager(probe, []))
    assert stack.wait() != 0
    assert f"cannot listen on 127.0.0.1:{port}" in stack.log(), stack.log()
