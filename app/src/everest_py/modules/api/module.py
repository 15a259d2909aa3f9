# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""API: the bus adapter between the EVSE managers (and friends) and the ``everest_api/...`` MQTT topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from everest_py.errors import BusError, CommandError
from everest_py.framework import wire
from everest_py.framework.module import Connection, Module
from everest_py.modules.api import commands, decimals
from everest_py.modules.api.session import SessionInfo, rfc3339, utc_now

BASE = "everest_api/"
PERIOD_S = 1.0  # everything periodic is published once a second
CALL_TIMEOUT_S = 30.0  # commands made for an external client
INFO_TIMEOUT_S = 10.0  # get_charger_information at start-up
MAPPINGS_TIMEOUT_S = 5.0
MAX_QUEUED = 100  # commands of one EVSE waiting to be carried out


@dataclass(frozen=True)
class APIConfig:
    charger_information_file: str
    powermeter_energy_import_decimal_places: int
    powermeter_energy_export_decimal_places: int
    powermeter_power_decimal_places: int
    powermeter_voltage_decimal_places: int
    powermeter_VAR_decimal_places: int
    powermeter_current_decimal_places: int
    powermeter_frequency_decimal_places: int
    hw_caps_max_current_export_decimal_places: int
    hw_caps_max_current_import_decimal_places: int
    hw_caps_min_current_export_decimal_places: int
    hw_caps_min_current_import_decimal_places: int
    hw_caps_max_plug_temperature_C_decimal_places: int
    limits_max_current_decimal_places: int
    telemetry_evse_temperature_C_decimal_places: int
    telemetry_fan_rpm_decimal_places: int
    telemetry_supply_voltage_12V_decimal_places: int
    telemetry_supply_voltage_minus_12V_decimal_places: int
    telemetry_plug_temperature_C_decimal_places: int
    powermeter_energy_import_round_to: float
    powermeter_energy_export_round_to: float
    powermeter_power_round_to: float
    powermeter_voltage_round_to: float
    powermeter_VAR_round_to: float
    powermeter_current_round_to: float
    powermeter_frequency_round_to: float
    hw_caps_max_current_export_round_to: float
    hw_caps_max_current_import_round_to: float
    hw_caps_min_current_export_round_to: float
    hw_caps_min_current_import_round_to: float
    hw_caps_max_plug_temperature_C_round_to: float
    limits_max_current_round_to: float
    telemetry_evse_temperature_C_round_to: float
    telemetry_fan_rpm_round_to: float
    telemetry_supply_voltage_12V_round_to: float
    telemetry_supply_voltage_minus_12V_round_to: float
    telemetry_plug_temperature_C_round_to: float


async def connection_mappings(module: Module, timeout_s: float = MAPPINGS_TIMEOUT_S) -> dict[str, Any]:
    """Every module's 3-tier mapping ({module_id: mapping}) from the manager's config service.

    Workaround: the framework receives the mappings of a module's connections with the module config
    but does not hand them to the module (EVerest's ``get_mapping()`` of a requirement). This asks
    the config service for ``AllMappings`` on the module's own config topics. {} if there is no answer.
    """
    rt = module._rt  # private on purpose, see the docstring
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def on_response(topic: str, payload: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(payload)["data"]
            if data.get("response", {}).get("type") == "AllMappings" and not fut.done():
                fut.set_result(data["response"]["data"])

    undo = rt.bus.subscribe(rt.topics.config_response(rt.id), on_response)
    try:
        request = {"type": "Get", "origin": rt.id, "request": {"type": "AllMappings"}}
        rt.bus.publish(rt.topics.config_request, wire.envelope(wire.GET_CONFIG, request))
        async with asyncio.timeout(timeout_s):
            result = await fut
    except TimeoutError:
        module.log.warning("the config service did not send the module mappings; EVSEs are matched by position")
        return {}
    finally:
        undo()
    return result if isinstance(result, dict) else {}


def guarded(module: Module, what: str, handler: Callable[[Any], None]) -> Callable[[Any], None]:
    """``handler`` that logs and drops a value it cannot use instead of raising (which would stop the stack).

    With schema validation on, values reach handlers only if they match their interface; without it a
    peer's malformed value must not take the stack down.
    """

    def run(value: Any) -> None:
        try:
            handler(value)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            module.log.warning("%s: unusable value ignored (%s: %s)", what, type(err).__name__, err)

    return run


def tier(mappings: dict[str, Any], conn: Connection) -> dict[str, Any] | None:
    """The mapping ({evse, connector?}) of the implementation ``conn`` points to, if configured."""
    m = mappings.get(conn.module_id)
    if not isinstance(m, dict):
        return None
    found = (m.get("implementations") or {}).get(conn.impl_id) or m.get("module")
    return found if isinstance(found, dict) and "evse" in found else None


@dataclass
class _Evse:
    """One EVSE manager connection and what the API keeps about it."""

    conn: Connection
    info: SessionInfo
    random_delay: Connection | None
    queue: asyncio.Queue[tuple[str, list[commands.Call]]] = field(default_factory=asyncio.Queue)
    hw_caps: dict[str, Any] | None = None
    selected_protocol: str = ""
    ready: bool = False
    sink: Connection | None = None
    sink_known: bool = False

    @property
    def id(self) -> str:
        return self.conn.module_id

    def topic(self, kind: str, name: str) -> str:
        return f"{BASE}{self.id}/{kind}/{name}"


class API(Module):
    Config = APIConfig
    config: APIConfig

    async def init(self) -> None:
        self._p = decimals.precisions(self.config)
        self._all_ready = asyncio.Event()
        self._ocpp_status = "unknown"
        self._schedules: Any = None
        self._schedules_new = False
        self._charger_info: Any = None
        self._problems: set[str] = set()
        self._evses: list[_Evse] = []
        for conn in self.r.evse_manager:
            delay = next((d for d in self.r.random_delay if d.module_id == conn.module_id), None)
            evse = _Evse(conn, SessionInfo(utc_now), delay)
            self._evses.append(evse)
            self._subscribe_evse(evse)
        if len(self.r.ocpp) > 0:
            ocpp = self.r.ocpp[0]
            ocpp.subscribe("is_connected", guarded(self, "ocpp is_connected", self._on_ocpp_connected))
            ocpp.subscribe("charging_schedules", guarded(self, "ocpp charging_schedules", self._on_schedules))
        self._load_charger_information_file()
        self._mappings = await connection_mappings(self) if len(self.r.evse_energy_sink) > 0 else {}
        unmapped = [s.module_id for s in self.r.evse_energy_sink if tier(self._mappings, s) is None]
        if unmapped:
            self.log.warning("energy sink(s) %s have no evse mapping", ", ".join(unmapped))

    def _subscribe_evse(self, evse: _Evse) -> None:
        conn, p = evse.conn, self._p

        def hw_caps(value: Any) -> None:
            evse.hw_caps = decimals.hw_capabilities(value, p)
            self._publish_json(evse.topic("var", "hardware_capabilities"), evse.hw_caps)

        def powermeter(value: Any) -> None:
            self._publish_json(evse.topic("var", "powermeter"), decimals.powermeter(value, p))
            evse.info.meter_value(value)

        def session_event(value: Any) -> None:
            logging_path = evse.info.session_event(value)
            if logging_path is not None:
                self.mqtt.publish(evse.topic("var", "logging_path"), logging_path)
            if value.get("event") == "TransactionFinished":
                self._publish_json(evse.topic("var", "session_info"), evse.info.snapshot())

        def ready(value: Any) -> None:
            evse.ready = evse.ready or value is True
            if all(e.ready for e in self._evses):
                self._all_ready.set()

        def selected_protocol(value: Any) -> None:
            evse.selected_protocol = str(value)

        def publish(var: str, shape: Callable[[Any], Any]) -> Callable[[Any], None]:
            return lambda value: self._publish_json(evse.topic("var", var), shape(value))

        handlers: dict[str, Callable[[Any], None]] = {
            "hw_capabilities": hw_caps,
            "powermeter": powermeter,
            "session_event": session_event,
            "ready": ready,
            "selected_protocol": selected_protocol,
            "limits": publish("limits", lambda v: decimals.limits(v, p)),
            "telemetry": publish("telemetry", lambda v: decimals.telemetry(v, p)),
            "ev_info": publish("ev_info", lambda v: v),
        }
        for var, handler in handlers.items():
            conn.subscribe(var, guarded(self, f"{evse.id} {var}", handler))
        conn.subscribe_error(
            None,
            guarded(self, f"{evse.id} error", evse.info.error_raised),
            guarded(self, f"{evse.id} error", evse.info.error_cleared),
        )
        if evse.random_delay is not None:
            evse.random_delay.subscribe("countdown", guarded(self, f"{evse.id} countdown", evse.info.countdown))
        self.mqtt.subscribe(f"{BASE}{evse.id}/cmd/+", lambda topic, payload: self._on_command(evse, topic, payload))

    def _on_ocpp_connected(self, value: Any) -> None:
        self._ocpp_status = "connected" if value is True else "disconnected"

    def _on_schedules(self, value: Any) -> None:
        self._schedules, self._schedules_new = value, True

    def _load_charger_information_file(self) -> None:
        path = self.config.charger_information_file
        if not path:
            return
        if len(self.r.charger_information) > 0:
            self.log.warning(
                "charger_information_file %s is not read: the charger_information connection is used", path
            )
            return
        try:
            self._charger_info = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            self.log.error("cannot read the charger information file %s: %s", path, err)

    # -- commands -------------------------------------------------------------------------------------
    def _on_command(self, evse: _Evse, topic: str, payload: str) -> None:
        name = topic.rsplit("/", 1)[-1]
        if name not in commands.COMMANDS:
            self.log.warning("%s: unknown command, ignored", topic)
            return
        try:
            calls = commands.plan(name, payload, utc_now())
        except ValueError as err:
            self.log.warning("%s: payload %r ignored: %s", topic, payload[:200], err)
            return
        if evse.queue.qsize() >= MAX_QUEUED:
            self.log.warning("%s: %d commands are waiting already; ignored", topic, MAX_QUEUED)
            return
        evse.queue.put_nowait((name, calls))

    async def _run_commands(self, evse: _Evse) -> None:
        """Make the calls of ``evse``'s commands one after the other, once every EVSE manager is ready."""
        await self._all_ready.wait()
        while True:
            name, calls = await evse.queue.get()
            for call in calls:
                target = await self._target(evse, call)
                if target is None:
                    continue
                try:
                    await target.call_cmd(call.cmd, call.args, timeout_s=CALL_TIMEOUT_S)
                except BusError as err:
                    self.log.warning(
                        "%s: %s on %s failed: %s", evse.topic("cmd", name), call.cmd, target.module_id, err
                    )

    async def _target(self, evse: _Evse, call: commands.Call) -> Connection | None:
        if call.target == "evse":
            return evse.conn
        if call.target == "random_delay":
            if evse.random_delay is None:
                self._problem(
                    f"{evse.id}: no uk_random_delay connection of this module id; random delay commands ignored"
                )
            return evse.random_delay
        if not evse.sink_known:
            evse.sink = await self._find_sink(evse)
            evse.sink_known = True
        if evse.sink is None:
            self._problem(f"{evse.id}: no evse_energy_sink for this EVSE; set_limit_* commands ignored")
        return evse.sink

    async def _find_sink(self, evse: _Evse) -> Connection | None:
        """The energy sink whose mapping names this EVSE's id; by position if no sink has a mapping."""
        sinks = list(self.r.evse_energy_sink)
        if not sinks:
            return None
        evse_id: int | None = None
        try:
            reply = await evse.conn.call_cmd("get_evse", {}, timeout_s=CALL_TIMEOUT_S)
            evse_id = int(reply["id"])
        except (BusError, KeyError, TypeError, ValueError) as err:
            own = tier(self._mappings, evse.conn)
            self.log.warning("%s: get_evse failed (%s); using its mapping %s", evse.id, err, own)
            evse_id = int(own["evse"]) if own is not None else None
        mapped = [(s, tier(self._mappings, s)) for s in sinks]
        if evse_id is not None:
            for sink, t in mapped:
                if t is not None and t.get("evse") == evse_id:
                    return sink
        if all(t is None for _, t in mapped) and len(sinks) == len(self._evses):
            return sinks[self._evses.index(evse)]
        return None

    def _problem(self, text: str) -> None:
        """Log a lasting configuration problem once."""
        if text not in self._problems:
            self._problems.add(text)
            self.log.warning("%s", text)

    # -- periodic -------------------------------------------------------------------------------------
    async def ready(self) -> None:
        if len(self.r.charger_information) > 0:
            try:
                self._charger_info = await self.r.charger_information[0].call_cmd(
                    "get_charger_information", {}, timeout_s=INFO_TIMEOUT_S
                )
            except CommandError as err:
                self.log.error("get_charger_information failed: %s", err)
        for evse in self._evses:
            self.spawn(self._run_commands(evse), f"commands {evse.id}")
        self.spawn(self._tick(), "publish")
        if len(self.r.error_history) > 0:
            self.spawn(self._poll_errors(), "active errors")

    def _publish_json(self, topic: str, value: Any) -> None:
        self.mqtt.publish(topic, json.dumps(value, separators=(",", ":"), default=str))

    def publish_periodic(self) -> None:
        """One round of the values published every second."""
        self._publish_json(f"{BASE}connectors", [e.id for e in self._evses])
        if self._charger_info is not None:
            self._publish_json(f"{BASE}info/var/info", self._charger_info)
        self.mqtt.publish(f"{BASE}ocpp/var/connection_status", self._ocpp_status)
        if self._schedules_new:
            self._schedules_new = False
            self._publish_json(f"{BASE}ocpp/var/charging_schedules", self._schedules)
        now = rfc3339(utc_now())
        for evse in self._evses:
            self.mqtt.publish(evse.topic("var", "datetime"), now)
            self._publish_json(evse.topic("var", "session_info"), evse.info.snapshot())
            if evse.hw_caps is not None:
                self._publish_json(evse.topic("var", "hardware_capabilities"), evse.hw_caps)
            self.mqtt.publish(evse.topic("var", "selected_protocol"), evse.selected_protocol)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            self.publish_periodic()
            next_tick += PERIOD_S
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    async def _poll_errors(self) -> None:
        history = self.r.error_history[0]
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            try:
                active = await history.call_cmd(
                    "get_errors", {"filters": {"state_filter": "Active"}}, timeout_s=CALL_TIMEOUT_S
                )
            except BusError as err:
                self._problem(f"get_errors failed: {err}")
            else:
                self._publish_json(f"{BASE}errors/var/active_errors", active)
            next_tick += PERIOD_S
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
