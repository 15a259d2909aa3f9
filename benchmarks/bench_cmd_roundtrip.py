# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Command round trip through the framework versus a raw paho request/response pair.

Both run against the same mosquitto (unix socket) in the same run, at QoS 0 (our default) and at
QoS 2 (EVerest's). The raw pair is two plain paho clients with their network threads, one echoing
the other. The framework is measured between two modules in one process (the default) and with
the called module in a process of its own (every frame through the broker).
Targets: framework median round trip <= 1.3x raw, and >= 5,000 commands/s.
Run: .venv/bin/python benchmarks/bench_cmd_roundtrip.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from _common import pct, use_test_modules

use_test_modules()

from everest_py.framework.config import load_run_config  # noqa: E402
from everest_py.framework.contracts import Contracts  # noqa: E402
from everest_py.framework.manager import Manager, RunOptions  # noqa: E402
from everest_py.framework.registry import Registry  # noqa: E402
from everest_py.testing import Broker, write_config  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
WINDOW = 64


def raw_pair(sock: str, qos: int) -> tuple[list[float], float]:
    """Two plain paho clients (network threads), one echoes what the other sends."""

    def client() -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, transport="unix")
        c.max_inflight_messages_set(0)
        ok = threading.Event()
        c.on_connect = lambda *a: ok.set()
        c.connect(sock, 1883)
        c.loop_start()
        assert ok.wait(5)
        return c

    responder = client()
    responder.on_message = lambda c, u, m: c.publish("raw/resp", m.payload, qos=qos)
    responder.subscribe("raw/req", qos=qos)
    requester = client()
    lock = threading.Condition()
    got: list[bytes] = []

    def on_resp(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        with lock:
            got.append(m.payload)
            lock.notify()

    requester.on_message = on_resp
    requester.subscribe("raw/resp", qos=qos)
    time.sleep(0.3)
    payload = (
        b'{"msg_type":"Cmd","data":{"id":"00000000-0000-0000-0000-000000000000","args":{"value":10},"origin":"u"}}'
    )
    rtts = []
    for _ in range(N):
        t0 = time.perf_counter()
        with lock:
            got.clear()
            requester.publish("raw/req", payload, qos=qos)
            while not got:
                lock.wait(5)
        rtts.append(time.perf_counter() - t0)
    # throughput with WINDOW requests in flight
    t0 = time.perf_counter()
    sent = 0
    with lock:
        got.clear()
        while sent < min(WINDOW, N):
            requester.publish("raw/req", payload, qos=qos)
            sent += 1
        while len(got) < N:
            lock.wait(5)
            while sent < N and sent - len(got) < WINDOW:
                requester.publish("raw/req", payload, qos=qos)
                sent += 1
    rate = N / (time.perf_counter() - t0)
    for c in (requester, responder):
        c.loop_stop()
        c.disconnect()
    return rtts, rate


async def framework(
    broker: Broker, *, validate: bool = False, protocol: str = "5", qos: int = 0, isolate_board: bool = False
) -> tuple[list[float], float]:
    """Round trips from one framework module to another; the board may run in its own process."""
    d = Path(tempfile.mkdtemp(prefix="bench-"))
    board: dict[str, object] = {"module": "FakeBoard"}
    if isolate_board:
        board["isolate"] = True
    config = {
        "active_modules": {
            "board": board,
            "user": {
                "module": "BoardUser",
                "connections": {"bsp": [{"module_id": "board", "implementation_id": "board_support"}]},
            },
        }
    }
    write_config(d / "c.yaml", config, broker, validate_schema=validate)
    cfg = load_run_config(d / "c.yaml", Registry(Contracts()))
    manager = Manager(cfg, Registry(Contracts()), RunOptions(protocol=protocol, qos=qos))
    run = asyncio.create_task(manager.run())
    await asyncio.wait_for(manager.global_ready.wait(), 20)
    assert manager.host is not None
    user = manager.host.runtimes["user"].module
    assert user is not None
    bsp = user.r.bsp[0]
    for _ in range(200):  # warm-up: subscriptions, compiled validators
        await bsp.call_cmd("pwm_on", {"value": 10})
    rtts = []
    for _ in range(N):
        t0 = time.perf_counter()
        await bsp.call_cmd("pwm_on", {"value": 10})
        rtts.append(time.perf_counter() - t0)

    async def worker() -> None:  # WINDOW callers, each waiting for its own result
        for _ in range(N // WINDOW):
            await bsp.call_cmd("pwm_on", {"value": 10})

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WINDOW)))
    rate = (N // WINDOW) * WINDOW / (time.perf_counter() - t0)
    manager.stop()
    await run
    return rtts, rate


def main() -> None:
    broker = Broker().start()
    rows = []
    try:
        for qos in (0, 2):
            rtts, rate = raw_pair(str(broker.socket), qos)
            rows.append((f"raw paho pair, QoS {qos}", qos, rtts, rate))
            for isolate in (False, True):
                where = "board isolated" if isolate else "one process"
                rtts, rate = asyncio.run(framework(broker, qos=qos, isolate_board=isolate))
                rows.append((f"framework, {where}, QoS {qos}", qos, rtts, rate))
        rtts, rate = asyncio.run(framework(broker, qos=0, validate=True))
        rows.append(("framework, one process, QoS 0, validate_schema", 0, rtts, rate))
        rtts, rate = asyncio.run(framework(broker, qos=0, protocol="3.1.1"))
        rows.append(("framework, one process, QoS 0, MQTT 3.1.1", 0, rtts, rate))
    finally:
        broker.stop()
    raw = {qos: statistics.median(rtts) for name, qos, rtts, _ in rows if name.startswith("raw")}
    print(f"command round trip over mosquitto (unix socket), N={N}, throughput with {WINDOW} callers in flight")
    print(f"{'':50} {'median':>9} {'p99':>9} {'vs raw':>7} {'cmds/s':>8}")
    for name, qos, rtts, rate in rows:
        med = statistics.median(rtts)
        print(f"{name:50} {med * 1e3:7.3f}ms {pct(rtts, 99) * 1e3:7.3f}ms {med / raw[qos]:6.2f}x {rate:8.0f}")
    print("targets: framework median <= 1.3x raw paho at the same QoS; >= 5000 commands/s")


if __name__ == "__main__":
    main()
