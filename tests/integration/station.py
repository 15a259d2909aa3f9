# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Runs a whole simulated station from a scenario: config changes, steps, expected outcomes.

A scenario is data (see scenarios.yaml):

    name: happy path
    config: {merge-patch applied to config/sil-ac.yaml}
    steps:                      # run in order
      - car: "sleep 0.5;iec_wait_pwr_ready;draw_power_regulated 16,3;sleep 2;unplug"
      - swipe: DEADBEEF         # a token presented at the manual token provider
      - wait_event: ChargingStarted
      - wait_current_A: 16      # the meter shows about this current on L1
      - call: {cmd: pause_charging}       # a command of connector_1's evse_manager
      - api: {cmd: set_limit_amps, payload: "10"}
      - rpc: {method: EVSE.SetACChargingCurrent, params: {evse_index: 1, max_current: 10}}
      - kill9_restart: true
      - sleep: 0.5
    expect:
      events: [SessionStarted, ..., SessionFinished]   # in this order (others may come between)
      absent: [ChargingStarted]
      min_energy_Wh: 1
      finished_reason: EVDisconnected                  # of the last TransactionFinished
      powerloss_finished: true                         # some TransactionFinished has reason PowerLoss
      session_logs_min: 2                              # session logs written (a killed one stays "incomplete-")
      errors: [ac_rcd/DC]                              # raised by some module during the run
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import yaml

from everest_py.framework.config import merge_patch
from everest_py.testing import Broker, Probe, Stack, free_port, localize_paths, write_config

REPO = Path(__file__).resolve().parents[2]
EVSE = "connector_1"
WAIT_S = 30.0


def station_config(tmp: Path, patch: dict[str, Any] | None, rpc_port: int) -> dict[str, Any]:
    """config/sil-ac.yaml for a test: files in ``tmp``, the car waiting for commands, a probe."""
    raw = yaml.safe_load((REPO / "config" / "sil-ac.yaml").read_text())
    localize_paths(raw, tmp, REPO)
    mods = raw["active_modules"]
    mods["ev_manager"]["config_module"]["auto_exec"] = False
    mods["rpc_api"]["config_module"]["websocket_port"] = rpc_port
    # tokens "swiped" by a test arrive where EVerest's test tooling sends them
    mods["token_provider_manual"]["config_implementation"] = {
        "main": {"mqtt_topic": "everest_api/dummy_token_provider/cmd/provide"}
    }
    mods["probe"] = {
        "module": "ProbeModule",
        "connections": {"evse": [{"module_id": EVSE, "implementation_id": "evse"}]},
    }
    merged = merge_patch(raw, patch or {})
    assert isinstance(merged, dict)
    return merged


class Station:
    """A running station with a probe on connector_1 and eyes on the bus."""

    def __init__(self, tmp: Path, broker: Broker, patch: dict[str, Any] | None = None) -> None:
        self.tmp = tmp
        self.broker = broker
        self.rpc_port = free_port()
        self.path = tmp / "station.yaml"
        self.prefix = write_config(self.path, station_config(tmp, patch, self.rpc_port), broker)
        self.ext = f"ext_{self.prefix}/"
        self.stack = Stack(self.path)
        self.events: list[dict[str, Any]] = []
        self.meter: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.changed = asyncio.Event()
        self.probe: Probe | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.stack.start, expect="WAITING_FOR_STANDALONE_MODULES")
        self.probe = Probe(self.broker.unix, self.prefix)
        await self.probe.connect()
        bus = self.probe.bus
        assert bus is not None
        base = f"{self.prefix}/modules/{EVSE}/impl/evse/var/"
        bus.subscribe(base + "session_event", lambda t, p: self._record(self.events, p))
        bus.subscribe(base + "powermeter", lambda t, p: self._record(self.meter, p))
        bus.subscribe(f"{self.prefix}/modules/+/impl/+/error/#", self._on_error)
        car_enabled = asyncio.Event()

        def on_enabled(topic: str, payload: bytes) -> None:
            if json.loads(payload)["data"]["data"] is True:
                car_enabled.set()

        bus.subscribe(f"{self.prefix}/modules/ev_manager/impl/main/var/enabled", on_enabled)
        await self.probe.join()
        self.probe.ready()
        async with asyncio.timeout(WAIT_S):
            await self.probe.global_ready.wait()
            await car_enabled.wait()  # the car takes scripts once it is enabled

    def _record(self, into: list[dict[str, Any]], payload: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            into.append(json.loads(payload)["data"]["data"])
            self.changed.set()

    def _on_error(self, topic: str, payload: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            msg = json.loads(payload)
            if msg["msg_type"] == "RaiseError":
                self.errors.append(msg["data"]["type"])
                self.changed.set()

    async def until(self, test: Any, what: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while not test():
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(), 0.5)
                except TimeoutError:
                    continue
        del what

    def event_names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events]

    def publish_ext(self, topic: str, payload: str) -> None:
        assert self.probe is not None and self.probe.bus is not None
        self.probe.bus.publish(self.ext + topic, payload, qos=0)

    async def stop(self) -> int:
        if self.probe is not None:
            await self.probe.close()
        return await asyncio.to_thread(self.stack.stop)

    async def kill9_restart(self) -> None:
        assert self.stack.proc is not None
        os.kill(self.stack.pid, signal.SIGKILL)
        await asyncio.to_thread(self.stack.wait)
        if self.probe is not None:
            await self.probe.close()
        self.probe = None
        await self.start()


async def run_step(station: Station, step: dict[str, Any]) -> None:
    ((kind, arg),) = step.items()
    if kind == "car":
        station.publish_ext("everest_external/nodered/1/carsim/cmd/execute_charging_session", arg)
    elif kind == "car_modify":
        station.publish_ext("everest_external/nodered/1/carsim/cmd/modify_charging_session", arg)
    elif kind == "swipe":
        token = {"id_token": {"value": arg, "type": "ISO14443"}, "authorization_type": "RFID", "connectors": [1]}
        station.publish_ext("everest_api/dummy_token_provider/cmd/provide", json.dumps(token))
    elif kind == "wait_event":
        await station.until(lambda: arg in station.event_names(), f"event {arg}")
    elif kind == "wait_event_count":
        name, count = arg
        await station.until(lambda: station.event_names().count(name) >= count, f"{count}x {name}")
    elif kind == "wait_current_A":
        await station.until(lambda: _current(station) is not None and abs(_current(station) - arg) <= 1.0, f"{arg} A")
    elif kind == "wait_error":
        await station.until(lambda: arg in station.errors, f"error {arg}")
    elif kind == "call":
        assert station.probe is not None
        await station.probe.call("evse", arg["cmd"], arg.get("args", {}))
    elif kind == "api":
        station.publish_ext(f"everest_api/{EVSE}/cmd/{arg['cmd']}", str(arg.get("payload", "")))
    elif kind == "rpc":
        await rpc_call(station.rpc_port, arg["method"], arg.get("params", {}))
    elif kind == "kill9_restart":
        await station.kill9_restart()
    elif kind == "sleep":
        await asyncio.sleep(float(arg))
    else:
        raise AssertionError(f"unknown step {kind}")


def _current(station: Station) -> float | None:
    if not station.meter:
        return None
    value = (station.meter[-1].get("current_A") or {}).get("L1")
    return float(value) if isinstance(value, int | float) else None


async def rpc_call(port: int, method: str, params: dict[str, Any]) -> Any:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}") as ws:
        calls = [("API.Hello", {}), (method, params)]
        result: Any = None
        for n, (name, args) in enumerate(calls, start=1):
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": n, "method": name, "params": args}))
            while True:
                answer = json.loads(await ws.recv())
                if answer.get("id") == n:
                    assert "error" not in answer, answer
                    result = answer.get("result")
                    break
        return result


def check(station: Station, expect: dict[str, Any]) -> None:
    names = station.event_names()
    wanted = list(expect.get("events", []))
    it = iter(names)
    missing = [w for w in wanted if not any(n == w for n in it)]
    assert not missing, f"events {wanted} not in order in {names}"
    for name in expect.get("absent", []):
        assert name not in names, f"{name} should not happen: {names}"
    if "min_energy_Wh" in expect:
        totals = [m["energy_Wh_import"]["total"] for m in station.meter if "energy_Wh_import" in m]
        assert totals and max(totals) - min(totals) >= expect["min_energy_Wh"], totals[-3:]
    if "finished_reason" in expect:
        finished = [e for e in station.events if e.get("event") == "TransactionFinished"]
        assert finished and finished[-1]["transaction_finished"].get("reason") == expect["finished_reason"], finished
    if expect.get("powerloss_finished"):
        reasons = [
            e["transaction_finished"].get("reason") for e in station.events if e.get("event") == "TransactionFinished"
        ]
        assert "PowerLoss" in reasons, reasons
    if "session_logs_min" in expect:
        logs = [p for p in (station.tmp / "sessions").rglob("*eventlog.jsonl") if p.stat().st_size > 0]
        assert len(logs) >= expect["session_logs_min"], logs
    for error in expect.get("errors", []):
        assert error in station.errors, f"{error} not raised; raised: {station.errors}"
