# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""chargebyte's tarragon-bsp-only.yaml runs unchanged in SIL: the real driver against the simulated board."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from everest_bsp.sim.overlay import prepare
from everest_bsp.sim.tarragon_tree import CP_PWM_DEVICE, TarragonTree
from everest_py.testing import Broker, Probe, Stack, free_port

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO.parent / "shared" / "fixtures" / "configs"


def sil(tmp_path: Path, broker: Broker, name: str, probe_connections: dict[str, Any]) -> tuple[Stack, str, Path]:
    """The unchanged config with its shipped overlay, plus the test's broker and a probe."""
    if not (FIXTURES / name).is_file():
        pytest.skip(f"fixture config not found at {FIXTURES}")
    original = tmp_path / "fixtures" / name
    original.parent.mkdir()
    shutil.copy(FIXTURES / name, original)
    work = tmp_path / "work"
    config = prepare(original, REPO / "config" / "sim" / name, work, repo=REPO, RPC_PORT=str(free_port()))
    overlay_path = work / "user-config" / name
    overlay = yaml.safe_load(overlay_path.read_text())
    prefix = f"fixture_{tmp_path.name[-8:]}"
    overlay["settings"] = {
        "mqtt_broker_socket_path": str(broker.socket),
        "mqtt_everest_prefix": prefix,
        "validate_schema": True,
    }
    overlay["active_modules"]["probe"] = {"module": "ProbeModule", "connections": probe_connections}
    overlay_path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    assert (FIXTURES / name).read_bytes() == original.read_bytes() == config.read_bytes(), "unchanged"
    return Stack(config), prefix, work


def test_tarragon_bsp_only_charges_in_sil(tmp_path: Path, broker: Broker, run_probe: Any) -> None:
    stack, prefix, work = sil(
        tmp_path,
        broker,
        "tarragon-bsp-only.yaml",
        {"evse": [{"module_id": "connector", "implementation_id": "evse"}]},
    )
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    seen: list[str] = []

    async def scenario(probe: Probe) -> None:
        events = probe.subscribe_var("evse", "session_event")
        async with asyncio.timeout(30):
            while "ChargingStarted" not in seen:
                seen.append((await events.get())["event"])
        tree = TarragonTree.attach(work / "board")
        try:
            async with asyncio.timeout(10):  # the contactor closes at most every 2 s (overlay)
                while not tree.level("RELAY_1_ENABLE"):
                    await asyncio.sleep(0.01)
            assert tree.level("CP_INVERT")
            period, duty, enabled = tree.pwm(CP_PWM_DEVICE)
            assert enabled and period == 1_000_000
            assert duty == 266_700, "16 A on the pilot: 26.67 % (IEC 61851-1 Table A.7)"
            assert tree.consumer("RELAY_1_ENABLE") == "R1-S1"
        finally:
            tree.close()

    try:
        run_probe(prefix, scenario)
    except BaseException:
        print(stack.log())
        raise
    finally:
        assert stack.stop() == 0
    assert seen.index("SessionStarted") < seen.index("TransactionStarted") < seen.index("ChargingStarted")
    assert not (work / "board").exists(), "the simulator removes its tree"
