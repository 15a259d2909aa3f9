# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""C->B on the control pilot until EvseManager commands the board's power off, through the bus.

A probe plays the board (evse_board_support) and the grid-side meter of one EvseManager. For
each sample it publishes CP event C, then B, and times B until the allow_power_on(false) call
arrives. Measured side by side on an idle bus and with 1,000 meter values/s flooding the
EvseManager's process. Target: p99 <= 20 ms (IEC 61851-1 allows 100 ms in total).
Run: .venv/bin/python benchmarks/bench_cp_poweroff.py [SAMPLES]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import pct
from everest_py.framework import wire
from everest_py.framework.bus import Bus
from everest_py.testing import Broker, Probe, Stack, write_config

SAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 300
CAPS = {
    "max_current_A_import": 32.0,
    "min_current_A_import": 6.0,
    "max_phase_count_import": 3,
    "min_phase_count_import": 1,
    "max_current_A_export": 0.0,
    "min_current_A_export": 0.0,
    "max_phase_count_export": 3,
    "min_phase_count_export": 1,
    "supports_changing_phases_during_charging": False,
    "supports_cp_state_E": False,
    "connector_type": "IEC62196Type2Cable",
}


def config() -> dict[str, Any]:
    return {
        "active_modules": {
            "evse": {
                "module": "EvseManager",
                "config_module": {"connector_id": 1, "disable_authentication": True},
                "connections": {
                    "bsp": [{"module_id": "probe", "implementation_id": "board"}],
                    "powermeter_grid_side": [{"module_id": "probe", "implementation_id": "meter"}],
                },
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {"evse": [{"module_id": "evse", "implementation_id": "evse"}]},
            },
        }
    }


async def measure(broker: Broker, prefix: str, flood: bool) -> list[float]:
    probe = Probe(broker.unix, prefix)
    await probe.connect()
    off: asyncio.Queue[float] = asyncio.Queue()

    def allow_power_on(value: dict[str, Any]) -> None:
        if not value["allow_power_on"]:
            off.put_nowait(time.perf_counter())

    for cmd in (
        "enable",
        "pwm_on",
        "cp_state_X1",
        "cp_state_F",
        "cp_state_E",
        "ac_switch_three_phases_while_charging",
        "ac_set_overcurrent_limit_A",
    ):
        probe.implement("board", cmd, lambda **_: None)
    probe.implement("board", "allow_power_on", allow_power_on)
    probe.implement("meter", "start_transaction", lambda **_: {"status": "OK"})
    probe.implement("meter", "stop_transaction", lambda **_: {"status": "OK"})
    await probe.join()
    probe.ready()
    await asyncio.wait_for(probe.global_ready.wait(), 20)
    probe.publish_var("board", "capabilities", CAPS)
    noise = Bus(broker.unix)
    await noise.connect()
    meter_topic = probe.topics.var("probe", "meter", "powermeter")
    stop = asyncio.Event()

    async def flood_meter() -> None:  # 1,000 values/s in bursts of 10 every 10 ms
        wh = 0.0
        while not stop.is_set():
            for _ in range(10):
                wh += 0.01
                value = {"timestamp": wire.timestamp(), "energy_Wh_import": {"total": wh}}
                noise.publish(meter_topic, wire.envelope(wire.VAR, {"data": value}))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(flood_meter()) if flood else None
    samples = []
    event = probe.topics.var("probe", "board", "event")
    for i in range(SAMPLES + 20):
        assert probe.bus is not None
        probe.bus.publish(event, wire.envelope(wire.VAR, {"data": {"event": "C"}}))
        await asyncio.sleep(0.03)
        while not off.empty():
            off.get_nowait()
        t0 = time.perf_counter()
        probe.bus.publish(event, wire.envelope(wire.VAR, {"data": {"event": "B"}}))
        t1 = await asyncio.wait_for(off.get(), 5)
        if i >= 20:  # warm-up
            samples.append(t1 - t0)
        await asyncio.sleep(0.02)
    stop.set()
    if task is not None:
        await task
    await noise.close()
    await probe.close()
    return samples


def main() -> None:
    broker = Broker().start()
    results = {}
    try:
        for flood in (False, True):
            d = Path(tempfile.mkdtemp(prefix="bench-cp-"))
            prefix = write_config(d / "c.yaml", config(), broker, validate_schema=False)
            stack = Stack(d / "c.yaml").start(expect="WAITING_FOR_STANDALONE_MODULES")
            try:
                results[flood] = asyncio.run(measure(broker, prefix, flood))
            finally:
                stack.stop()
    finally:
        broker.stop()
    print(f"CP C->B until allow_power_on(false) reaches the board, {SAMPLES} samples each")
    print(f"{'':34} {'p50':>8} {'p99':>8} {'max':>8}")
    for flood, label in ((False, "idle bus"), (True, "1,000 meter values/s on the bus")):
        s = results[flood]
        print(f"{label:34} {statistics.median(s) * 1e3:6.2f}ms {pct(s, 99) * 1e3:6.2f}ms {max(s) * 1e3:6.2f}ms")
    ratio = pct(results[True], 99) / pct(results[False], 99)
    print(f"p99 under load / idle: {ratio:.2f}x; target p99 under load <= 20 ms")


if __name__ == "__main__":
    main()
