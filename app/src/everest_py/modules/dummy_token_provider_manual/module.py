# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenProviderManual: JSON tokens from external MQTT in, provided_token out."""

from __future__ import annotations

from dataclasses import dataclass

from everest_py.framework.module import Module
from everest_py.modules.dummy_token_provider_manual.token import parse_token, topic


@dataclass(frozen=True)
class MainConfig:
    mqtt_topic: str


class DummyTokenProviderManual(Module):
    ImplConfigs = {"main": MainConfig}

    async def init(self) -> None:
        cfg: MainConfig = self.impl_config["main"]
        listen = topic(cfg.mqtt_topic, self.info.id)
        self.log.info("offering tokens received on external MQTT topic %s", listen)
        self.mqtt.subscribe(listen, self._on_message)

    def _on_message(self, topic_: str, payload: str) -> None:
        try:
            token = parse_token(payload)
            self.publish("main", "provided_token", token)
        except ValueError as err:
            self.log.error("ignored a message on %s: %s", topic_, err)
            return
        self.log.info("offered token %s", token["id_token"]["value"])
