# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Faults: malformed frames, a module killed with SIGKILL, a broker restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from everest_py.framework import wire
from everest_py.testing import Broker, Probe, Stack, write_config

from .test_roundtrip import stack_config


def test_malformed_calls_are_answered_and_the_module_lives(make_stack, broker, tmp_path):
    stack, prefix = make_stack(stack_config(str(tmp_path / "safe")))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    topics = wire.Topics(prefix)
    topic = topics.cmd("board", "board_support", "enable")
    answers: list[dict] = []

    async def scenario() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.start()
        assert probe.bus is not None
        got = asyncio.Event()

        def on_answer(_: str, payload: bytes) -> None:
            answers.append(json.loads(payload)["data"]["data"])
            got.set()

        probe.bus.subscribe(f"{topic}/response/probe", on_answer)
        frames = [
            b"not json at all",  # no origin to answer to: dropped, logged
            json.dumps({"msg_type": "Var", "data": {"id": "1", "args": {}, "origin": "probe"}}).encode(),
            json.dumps({"msg_type": "Cmd", "data": {"id": "2", "args": [1, 2], "origin": "probe"}}).encode(),
            json.dumps({"msg_type": "Cmd", "data": {"id": "3", "args": {"valu": True}, "origin": "probe"}}).encode(),
            json.dumps({"msg_type": "Cmd", "data": {"id": "4", "args": {"value": 7}, "origin": "probe"}}).encode(),
            json.dumps({"msg_type": "Cmd", "data": {"args": {"value": True}, "origin": "probe"}}).encode(),
        ]
        for frame in frames:
            probe.bus.publish(topic, frame)
        async with asyncio.timeout(5):
            while len(answers) < 5:
                got.clear()
                await got.wait()
        bad.extend(answers)
        # the module still works
        assert await probe.call("board", "enable", {"value": True}) is None
        await probe.close()

    bad: list[dict] = []
    asyncio.run(scenario())
    by_id = {a["id"]: a["error"]["__everest__error_type"] for a in bad}
    assert by_id == {
        "1": "MessageParsingError",
        "2": "MessageParsingError",
        "3": "SchemaValidationError",
        "4": "SchemaValidationError",
        None: "MessageParsingError",
    }
    assert stack.stop() == 0
    log = stack.log()
    assert log.count("payload is not JSON") == 1
    assert "Traceback" not in log


def test_kill_9_of_an_isolated_module_stops_everything(make_stack, tmp_path):
    safe = tmp_path / "safe"
    config = stack_config(str(safe))
    del config["active_modules"]["probe"]
    config["active_modules"]["user"]["isolate"] = True
    stack, _ = make_stack(config)
    stack.start()
    (child,) = stack.children()
    os.kill(child, signal.SIGKILL)
    # the manager notices at once; 5 s only guards against a hang (the time is in the note)
    assert stack.wait(timeout_s=5) == 1
    log = stack.log()
    assert "isolated module user" in log and "exited with status -9" in log
    # the in-host board went to its safe state (start, then the crash)
    assert len(safe.read_text().splitlines()) == 2


@pytest.mark.parametrize("hook", ["init", "ready"])
def test_exception_escaping_a_module_stops_everything_non_zero(make_stack, tmp_path, hook):
    safe = tmp_path / "safe"
    config = stack_config(str(safe))
    del config["active_modules"]["probe"]
    config["active_modules"]["board"]["config_module"]["fail_in"] = hook
    stack, _ = make_stack(config)
    stack.start(wait=False)
    assert stack.wait(timeout_s=15) == 1
    log = stack.log()
    assert f"{hook} fails on purpose" in log
    assert "ALL_MODULES_STARTED" not in log
    # safe_state on start, then once more on the crash
    assert len(safe.read_text().splitlines()) == 2


def test_broker_restart_reconnects(tmp_path: Path):
    broker = Broker(tmp_path / "b").start() if (tmp_path / "b").mkdir() is None else None
    assert broker is not None
    try:
        path = tmp_path / "config.yaml"
        prefix = write_config(path, stack_config(str(tmp_path / "safe")), broker)
        stack = Stack(path)
        stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

        async def scenario() -> None:
            probe = Probe(broker.unix, prefix)
            await probe.start()
            assert await probe.call("user", "exists", {"key": "events"}) is True
            broker.stop()
            await asyncio.sleep(0.5)
            broker.start()
            assert probe.bus is not None
            async with asyncio.timeout(10):
                await probe.bus.wait_connected()
            # the stack's bus reconnects and resubscribes on its own
            async with asyncio.timeout(10):
                while True:
                    try:
                        result = await probe.call(
                            "user", "store", {"key": "call_enable", "value": {"value": True}}, timeout_s=0.5
                        )
                        break
                    except TimeoutError:
                        continue
            assert result is None
            assert await probe.call("user", "load", {"key": "events"}) == ["B"]
            await probe.close()

        asyncio.run(scenario())
        assert stack.stop() == 0
        assert "reconnected to the MQTT broker" in stack.log()
    finally:
        broker.stop()


def test_no_broker_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    from everest_py.testing import free_port

    port = free_port()  # nothing listens there
    path = tmp_path / "config.yaml"
    path.write_text(
        f"settings: {{mqtt_broker_host: 127.0.0.1, mqtt_broker_port: {port}}}\n"
        "active_modules:\n  v: {module: DummyTokenValidator}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "everest_py", "run", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"no MQTT broker at 127.0.0.1:{port}" in lines[0]


def test_frames_of_the_wrong_shape_never_stop_the_stack(make_stack, broker, tmp_path):
    stack, prefix = make_stack(stack_config(str(tmp_path / "safe")), "--watch")
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    topics = wire.Topics(prefix)

    async def scenario() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.start()
        assert probe.bus is not None
        for request in (
            "bogus",
            {"type": "Value", "identifier": {"module_id": ["x"]}},
            {"type": "Value", "identifier": 7},
        ):
            answer = await probe.config_request("Get", request)  # type: ignore[arg-type]
            assert answer["status"] == "Error"
        bad = [
            (
                f"{topics.cmd('board', 'board_support', 'enable')}/response/user",
                b'{"msg_type":"CmdResult","data":{"data":"oops"}}',
            ),
            (
                f"{topics.cmd('board', 'board_support', 'enable')}/response/user",
                b'{"msg_type":"CmdResult","data":{"data":{"id":"x","error":"boom"}}}',
            ),
            (
                topics.cmd("user", "main", "store"),
                b'{"msg_type":"Cmd","data":{"id":"n","args":{"key":"k","value":NaN},"origin":"probe"}}',
            ),
            (f"{prefix}/modules/x/impl/y/error/evse_board_support/DiodeFault", b'{"msg_type":"RaiseError","data":[]}'),
        ]
        for topic, payload in bad:
            probe.bus.publish(topic, payload)
        # still alive and answering
        assert await probe.call("user", "exists", {"key": "events"}) is True
        await probe.close()

    asyncio.run(scenario())
    assert stack.stop() == 0


def test_the_private_broker_dying_stops_the_stack(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "config.yaml"
    path.write_text("active_modules:\n  v: {module: DummyTokenValidator}\n")
    stack = Stack(path, env={"EVEREST_PY_RUNTIME_DIR": str(tmp_path / "run")})
    stack.start()
    broker_pid = next(pid for pid in stack.children() if b"mosquitto" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(broker_pid, signal.SIGKILL)
    assert stack.wait(timeout_s=10) == 1
    assert "the MQTT broker (mosquitto) exited" in stack.log()
    del subprocess, sys


def test_serial_keeps_the_order_of_async_work():
    from everest_py.framework.runtime import Serial

    order: list[int] = []

    class FakeHost:
        def spawn(self, coro, name, module_id):
            return asyncio.get_running_loop().create_task(coro)

    async def work(n: int, delay: float) -> None:
        await asyncio.sleep(delay)
        order.append(n)

    async def scenario() -> None:
        serial = Serial(FakeHost(), "t", "m")  # type: ignore[arg-type]
        serial.submit(work(1, 0.05))
        serial.submit(work(2, 0.0))
        serial.submit(work(3, 0.01))
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert order == [1, 2, 3]
