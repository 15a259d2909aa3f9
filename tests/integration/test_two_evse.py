# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Two EVSEs behind one 16 A fuse (config/sil-ac-two-evse.yaml) share it fairly."""

from __future__ import annotations

import asyncio
import json

import yaml

from everest_py.framework.bus import Bus
from everest_py.testing import Stack, free_port, localize_paths, write_config

from .station import REPO


def test_two_cars_share_one_fuse(broker, tmp_path):
    raw = yaml.safe_load((REPO / "config" / "sil-ac-two-evse.yaml").read_text())
    localize_paths(raw, tmp_path, REPO)
    raw["active_modules"]["rpc_api"]["config_module"]["websocket_port"] = free_port()
    path = tmp_path / "two.yaml"
    prefix = write_config(path, raw, broker)
    stack = Stack(path).start()

    async def watch() -> dict[str, float]:
        bus = Bus(broker.unix)
        await bus.connect()
        latest: dict[str, float] = {}
        both = asyncio.Event()

        def on_meter(topic: str, payload: bytes) -> None:
            evse = topic.split("/")[2]
            latest[evse] = json.loads(payload)["data"]["data"]["current_A"]["L1"]
            if len(latest) == 2 and all(abs(a - 8.0) <= 0.5 for a in latest.values()):
                both.set()

        bus.subscribe(f"{prefix}/modules/+/impl/evse/var/powermeter", on_meter)
        try:
            async with asyncio.timeout(40):
                await both.wait()
        finally:
            await bus.close()
        return latest

    try:
        latest = asyncio.run(watch())
    finally:
        assert stack.stop() == 0, stack.log()[-3000:]
    # 16 A fuse, two cars asking 16 A each: 8 A each
    assert latest == {"connector_1": latest["connector_1"], "connector_2": latest["connector_2"]}
    assert sum(latest.values()) <= 16.5
