# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Config service, retained definitions, telemetry, external MQTT and the command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from everest_py.testing import Probe

from .test_roundtrip import stack_config


def probe_with(access: dict[str, Any] | None = None) -> dict[str, Any]:
    config = stack_config("")
    if access is not None:
        config["active_modules"]["probe"]["access"] = {"config": access}
    return config


def ident(param: str, module: str = "board", impl: str | None = None) -> dict[str, Any]:
    out = {"module_id": module, "configuration_parameter_name": param}
    if impl:
        out["module_implementation_id"] = impl
    return {"type": "Value", "identifier": out}


def test_config_reads_need_grants(make_stack, broker):
    stack, prefix = make_stack(probe_with())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.start()
        everything = await probe.config_request("Get", {"type": "All"})
        assert everything["status"] == "Ok"
        assert set(everything["response"]["data"]) == {"probe"}  # only itself without grants
        denied = await probe.config_request("Get", ident("label"))
        assert denied["status"] == "AccessDenied"
        mappings = await probe.config_request("Get", {"type": "AllMappings"})
        assert mappings["response"]["data"] == {"board": None, "user": None, "probe": None}
        unknown = await probe.config_request("Get", {"type": "Whatever"})
        assert unknown["status"] == "Error"
        await probe.close()

    asyncio.run(scenario())
    assert stack.stop() == 0


def test_config_set_goes_to_the_overlay_and_applies_after_restart(make_stack, broker, tmp_path):
    config = probe_with({"allow_global_read": True, "allow_global_write": True})
    stack, prefix = make_stack(config)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def change() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.start()
        everything = await probe.config_request("Get", {"type": "All"})
        assert set(everything["response"]["data"]) == {"board", "user", "probe"}
        value = await probe.config_request("Get", ident("label"))
        assert value["response"]["data"] == {
            "name": "label",
            "value": "board",
            "characteristics": {"datatype": "string", "mutability": "ReadWrite"},
        }
        done = await probe.config_request("Set", {**ident("label"), "value": "left board"})
        assert done["status"] == "Ok"
        assert done["response"]["status"] == "RebootRequired"
        read_only = await probe.config_request("Set", {**ident("safe_state_file"), "value": "/tmp/x"})
        assert read_only["response"]["status"] == "Rejected"
        await probe.close()

    asyncio.run(change())
    assert stack.stop() == 0
    overlay = yaml.safe_load((tmp_path / "user-config" / "config.yaml").read_text())
    assert overlay == {"active_modules": {"board": {"config_module": {"label": "left board"}}}}

    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def check() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.start()
        value = await probe.config_request("Get", ident("label"))
        assert value["response"]["data"]["value"] == "left board"
        await probe.close()

    asyncio.run(check())
    assert stack.stop() == 0


async def retained(probe: Probe, topic: str) -> Any:
    """The retained value on ``topic`` (None if there is none)."""
    assert probe.bus is not None
    got: asyncio.Queue[bytes] = asyncio.Queue()
    undo = probe.bus.subscribe(topic, lambda t, p: got.put_nowait(p))
    try:
        payload = await asyncio.wait_for(got.get(), 0.5)
    except TimeoutError:
        return None
    finally:
        undo()
    return json.loads(payload)["data"] if payload else None


@pytest.mark.parametrize("retain", [False, True], ids=["cleared", "--retain-topics"])
def test_definitions_are_retained_until_global_ready(make_stack, broker, retain):
    stack, prefix = make_stack(probe_with(), *(["--retain-topics"] if retain else []))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    p = prefix + "/"

    async def scenario() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.connect()
        assert await retained(probe, f"{p}interfaces") == ["empty", "evse_board_support", "kvs"]
        board = await retained(probe, f"{p}interface_definitions/evse_board_support")
        assert board["cmds"]["enable"] == {
            "arguments": {"value": {"type": "boolean"}},
            "result": {"type": "null"},
        }
        assert set(board["errors"]["evse_board_support"]) >= {"DiodeFault", "MREC2GroundFailure"}
        assert "description" not in json.dumps(board["vars"])
        assert await retained(probe, f"{p}module_names") == {
            "board": "FakeBoard",
            "user": "BoardUser",
            "probe": "ProbeModule",
        }
        manifest = await retained(probe, f"{p}manifests/FakeBoard")
        assert "config" not in manifest
        assert manifest["provides"]["board_support"]["interface"] == "evse_board_support"
        assert (await retained(probe, f"{p}settings"))["validate_schema"] is True
        types = await retained(probe, f"{p}types")
        assert "/board_support_common" in types
        await probe.join()
        probe.ready()
        async with asyncio.timeout(5):
            await probe.global_ready.wait()
        await asyncio.sleep(0.2)
        after = await retained(probe, f"{p}interfaces")
        assert after == (["empty", "evse_board_support", "kvs"] if retain else None)
        await probe.close()

    asyncio.run(scenario())
    assert stack.stop() == 0


def test_telemetry_and_external_mqtt(make_stack, broker):
    config = probe_with()
    config["active_modules"]["board"]["telemetry"] = {"id": 7}
    config["settings"] = {"telemetry_enabled": True, "telemetry_prefix": "tele_test"}
    stack, prefix = make_stack(config)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    ext = f"ext_{prefix}/"

    async def scenario() -> None:
        probe = Probe(broker.unix, prefix)
        await probe.start()
        assert probe.bus is not None
        seen: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        probe.bus.subscribe("tele_test/#", lambda t, p: seen.put_nowait((t, p)))
        probe.bus.subscribe(f"{ext}fakeboard/limit", lambda t, p: seen.put_nowait((t, p)))
        await asyncio.sleep(0.1)
        await probe.call("board", "ac_set_overcurrent_limit_A", {"value": 16.5})
        got = dict([await asyncio.wait_for(seen.get(), 5), await asyncio.wait_for(seen.get(), 5)])
        telemetry = json.loads(got["tele_test/livedata/7/limits"])
        assert telemetry["connector_id"] == 7 and telemetry["type"] == "Limit" and telemetry["value"] == 16.5
        assert "timestamp" in telemetry
        assert got[f"{ext}fakeboard/limit"] == b"16.50000"  # EVerest's fixed five decimals
        # raw external MQTT in: the board reacts as to a command
        events = probe.subscribe_var("board", "event")
        await asyncio.sleep(0.1)
        probe.bus.publish(f"{ext}fakeboard/cmd/enable", "true")
        assert await asyncio.wait_for(events.get(), 5) == {"event": "B"}
        await probe.close()

    asyncio.run(scenario())
    assert stack.stop() == 0


def test_cli_call_watch_and_modules(make_stack, broker, tmp_path):
    stack, prefix = make_stack(stack_config(""))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    base = [sys.executable, "-m", "everest_py"]
    where = ["--socket", str(broker.socket), "--prefix", prefix]
    watch = subprocess.Popen([*base, "watch", *where], stdout=subprocess.PIPE, text=True)
    assert watch.stdout is not None
    try:
        # retained definitions come first (the stack waits for its probe), then the header
        while not (line := watch.stdout.readline()).startswith("# watching"):
            assert line, "watch ended early"
        assert line.startswith(f"# watching {prefix}/#")
        ok = subprocess.run(
            [*base, "call", "user.main", "store", '{"key": "k", "value": [1, 2]}', *where],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (ok.returncode, ok.stdout.strip()) == (0, "null")
        back = subprocess.run(
            [*base, "call", "user.main", "load", '{"key": "k"}', *where], capture_output=True, text=True, check=False
        )
        assert json.loads(back.stdout) == [1, 2]
        bad = subprocess.run(
            [*base, "call", "user.main", "load", '{"kee": "k"}', *where], capture_output=True, text=True, check=False
        )
        assert bad.returncode == 1
        assert bad.stderr.startswith("everest-py: SchemaValidationError: arguments do not match kvs.load")
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    assert any(
        line.endswith('user.main.store({"key":"k","value":[1,2]}) from ' + line.rsplit(" ", 1)[-1])
        for line in out.splitlines()
    )
    assert any("res< user.main.load" in line and "[1,2]" in line for line in out.splitlines())
    assert stack.stop() == 0
    listing = subprocess.run([*base, "modules", "--json"], capture_output=True, text=True, check=True)
    names = {m["name"]: m for m in json.loads(listing.stdout)}
    assert names["DummyTokenValidator"]["provides"] == {"main": "auth_token_validator"}
    assert names["ChargerInfo"]["requires"]["kvs"] == {"interface": "kvs", "min": 1, "max": 10}
