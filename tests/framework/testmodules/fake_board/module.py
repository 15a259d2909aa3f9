# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""FakeBoard: enable publishes a CP event, pwm_on > 50 raises DiodeFault, cp_state_X1 fails."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

from everest_py.framework.module import Module, command

DIODE = "evse_board_support/DiodeFault"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    safe_state_file: str
    label: str
    fail_in: str


class FakeBoard(Module):
    Config = Config

    async def init(self) -> None:
        if self.config.fail_in == "init":
            raise RuntimeError("init fails on purpose")
        self.mqtt.subscribe("fakeboard/cmd/enable", lambda topic, payload: self.enable(payload == "true"))

    async def ready(self) -> None:
        if self.config.fail_in == "ready":
            raise RuntimeError("ready fails on purpose")

    def safe_state(self) -> None:
        if self.config.safe_state_file:
            with open(self.config.safe_state_file, "a") as f:
                f.write(f"{self.info.id} {os.getpid()}\n")

    @command("board_support")
    def enable(self, value: bool) -> None:
        # a plain module-level logger: the framework still puts this module's id on the line
        log.info("enable %s", value)
        self.publish("board_support", "event", {"event": "B" if value else "A"})

    @command("board_support")
    def pwm_on(self, value: float) -> None:
        errors = self.errors("board_support")
        if value > 50:
            errors.raise_error(DIODE, message=f"duty {value}", severity="High")
        else:
            errors.clear_error(DIODE)

    @command("board_support")
    def cp_state_X1(self) -> None:
        raise RuntimeError("X1 is broken on this board")

    @command("board_support")
    def cp_state_F(self) -> None:
        pass

    @command("board_support")
    def cp_state_E(self) -> None:
        pass

    @command("board_support")
    async def allow_power_on(self, value: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        self.publish("board_support", "event", {"event": "PowerOn" if value["allow_power_on"] else "PowerOff"})

    @command("board_support")
    def ac_switch_three_phases_while_charging(self, value: bool) -> None:
        pass

    @command("board_support")
    def ac_set_overcurrent_limit_A(self, value: float) -> None:
        self.telemetry("livedata", "limits", "Limit", {"value": value})
        self.mqtt.publish("fakeboard/limit", value)
