# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenValidator: the same verdict for every token, after a configurable delay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from everest_py.framework.module import Module, command


@dataclass(frozen=True)
class MainConfig:
    validation_result: str
    validation_reason: str
    sleep: float


class DummyTokenValidator(Module):
    ImplConfigs = {"main": MainConfig}

    @command("main")
    async def validate_token(self, provided_token: dict[str, Any]) -> dict[str, Any]:
        cfg: MainConfig = self.impl_config["main"]
        await asyncio.sleep(cfg.sleep)
        self.log.info("token %s: %s", provided_token.get("id_token", {}).get("value"), cfg.validation_result)
        # ValidationResult carries no reason field; EVerest puts the reason into tariff_messages.
        return {
            "authorization_status": cfg.validation_result,
            "tariff_messages": [{"content": cfg.validation_reason}],
        }
