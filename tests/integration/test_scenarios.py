# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The whole simulated AC station through the scenarios in scenarios.yaml."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from .station import Station, check, run_step

SCENARIOS: list[dict[str, Any]] = yaml.safe_load((Path(__file__).with_name("scenarios.yaml")).read_text())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(scenario, broker, tmp_path):
    async def run() -> None:
        station = Station(tmp_path, broker, scenario.get("config"))
        await station.start()
        try:
            for step in scenario.get("steps", []):
                await run_step(station, step)
            check(station, scenario.get("expect", {}))
        finally:
            code = await station.stop()
        assert code == 0, station.stack.log()[-3000:]

    asyncio.run(run())
