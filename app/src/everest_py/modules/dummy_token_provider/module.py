# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenProvider: session_event of the EVSE in, provided_token out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from everest_py.errors import ConfigError
from everest_py.framework.module import Module
from everest_py.modules.dummy_token_provider.token import provided_token, wants_token


@dataclass(frozen=True)
class MainConfig:
    token: str
    type: str
    timeout: float
    connector_id: int


class DummyTokenProvider(Module):
    ImplConfigs = {"main": MainConfig}

    _token: dict[str, Any]

    async def init(self) -> None:
        cfg: MainConfig = self.impl_config["main"]
        try:
            self._token = provided_token(cfg.token, cfg.type, cfg.connector_id)
        except ValueError as err:
            raise ConfigError([f"{self.info.id}: main.{err}"]) from None
        self.r.evse.subscribe("session_event", self._on_session_event)

    def _on_session_event(self, event: Any) -> None:
        if wants_token(event):
            self.log.info("EVSE asks for authorization: offering token %s", self._token["id_token"]["value"])
            self.publish("main", "provided_token", self._token)
