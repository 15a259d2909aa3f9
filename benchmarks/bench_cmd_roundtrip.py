# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Command round trip through the framework versus a raw paho request/response pair.

Both run against the same mosquitto (unix socket) in the same run, at QoS 2 as EVerest uses it.
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
QOS = 2


def raw_pair(sock: str) -> tuple[list[float], float]:
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
    responder.on_message = lambda c, u, m: c.publish("raw/resp", m.payload, qos=QOS)
    responder.subscribe("raw/req", qos=QOS)
    requester = client()
    lock = threading.Condition()
    got: list[bytes] = []

    def on_resp(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        with lock:
            got.append(m.payload)
            lock.notify()

    requester.on_message = on_resp
    requester.subscribe("raw/resp", qos=QOS)
    time.sleep(0.3)
    payload = b'{"msg_type":"Cmd","data":{"id":"00000000-0000-0000-0000-000000000000","args":{"value":10},"origin":"u"}}'
    rtts = []
    for _ in range(N):
        t0 = time.perf_counter()
        with lock:
            got.clear()
            requester.publish("raw/req", payload, qos=QOS)
            while not got:
                lock.wait(5)
        rtts.append(time.perf_counter() - t0)
    # throughput with WINDOW requests in flight
    t0 = time.perf_counter()
    sent = 0
    with lock:
        got.clear()
        while sent < min(WINDOW, N):
            requester.publish("raw/req", payload, qos=QOS)
            sent += 1
        while len(got) < N:
            lock.wait(5)
            while sent < N and sent - len(got) < WINDOW:
                requester.publish("raw/req", payload, qos=QOS)
                sent += 1
    rate = N / (time.perf_counter() - t0)
    for c in (requester, responder):
        c.loop_stop()
        c.disconnect()
    return rtts, rate


async def framework(broker: Broker, validate: bool, protocol: str = "5", qos: int = QOS) -> tuple[list[float], float]:
    d = Path(tempfile.mkdtemp(prefix="bench-"))
    config = {
        "active_modules": {
            "board": {"module": "FakeBoard"},
            "user": {"module": "BoardUser", "connections": {"bsp": [{"module_id": "board", "implementation_id": "board_support"}]}},
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
    sem = asyncio.Semaphore(WINDOW)

    async def one() -> None:
        async with sem:
            await bsp.call_cmd("pwm_on", {"value": 10})

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(N)))
    rate = N / (time.perf_counter() - t0)
    manager.stop()
    await run
    return rtts, rate


def main() -> None:
    broker = Broker().start()
    try:
        raw_rtts, raw_rate = raw_pair(str(broker.socket))
        fw_rtts, fw_rate = asyncio.run(framework(broker, validate=False))
        fv_rtts, fv_rate = asyncio.run(framework(broker, validate=True))
    finally:
        broker.stop()
    raw_med = statistics.median(raw_rtts)
    print(f"command round trip, QoS {QOS}, unix socket, N={N}, window {WINDOW} for throughput")
    print(f"{'':34} {'median':>9} {'p99':>9} {'cmds/s':>9}")
    for name, rtts, rate in (
        ("raw paho pair", raw_rtts, raw_rate),
        ("framework", fw_rtts, fw_rate),
        ("framework, validate_schema on", fv_rtts, fv_rate),
    ):
        print(f"{name:34} {statistics.median(rtts) * 1e3:7.3f}ms {pct(rtts, 99) * 1e3:7.3f}ms {rate:9.0f}")
    print(f"ratio framework/raw median: {statistics.median(fw_rtts) / raw_med:.2f} (target <= 1.3)")
    print(f"ratio framework+validation/raw median: {statistics.median(fv_rtts) / raw_med:.2f}")
    print(f"framework throughput: {fw_rate:.0f} cmds/s (target >= 5000)")


if __name__ == "__main__":
    main()
