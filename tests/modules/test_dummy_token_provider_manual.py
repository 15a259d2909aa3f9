# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenProviderManual: tokens from external MQTT, bad messages dropped, alone and over the wire."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from everest_py.modules.dummy_token_provider_manual.token import parse_token, topic
from everest_py.testing import Probe

TOKEN = {"id_token": {"value": "04A2B3C4", "type": "ISO14443"}, "authorization_type": "RFID", "connectors": [1]}


def test_topic() -> None:
    assert topic("", "tokens") == "everest_api/tokens/cmd/provide"
    assert topic("everest_api/dummy_token_provider/cmd/provide", "tokens") == (
        "everest_api/dummy_token_provider/cmd/provide"
    )


def test_parse_token() -> None:
    assert parse_token('{"id_token":{"value":"04A2B3C4","type":"ISO14443"},"authorization_type":"RFID"}') == {
        "id_token": {"value": "04A2B3C4", "type": "ISO14443"},
        "authorization_type": "RFID",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("swipe", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"authorization_type": "RFID"}', "id_token"),
        ('{"id_token": {"value": 7, "type": "ISO14443"}, "authorization_type": "RFID"}', "id_token.value"),
        ('{"id_token": {"value": "A"}, "authorization_type": "RFID"}', "id_token.type"),
        ('{"id_token": {"value": "A", "type": "ISO14443"}}', "authorization_type"),
    ],
)
def test_bad_messages(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_token(text)


def stack_config() -> dict[str, Any]:
    return {
        "active_modules": {
            "tokens": {"module": "DummyTokenProviderManual"},
            "swipe": {
                "module": "DummyTokenProviderManual",
                "config_implementation": {"main": {"mqtt_topic": "everest_api/dummy_token_provider/cmd/provide"}},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {
                    "tokens": [{"module_id": "tokens", "implementation_id": "main"}],
                    "swipe": [{"module_id": "swipe", "implementation_id": "main"}],
                },
            },
        }
    }


def test_tokens_from_external_mqtt(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    external = f"ext_{prefix}/"

    async def scenario(probe: Probe) -> tuple[Any, Any]:
        assert probe.bus is not None
        by_default = probe.subscribe_var("tokens", "provided_token")
        by_config = probe.subscribe_var("swipe", "provided_token")
        bus = probe.bus
        bus.publish(external + "everest_api/tokens/cmd/provide", "not a token")
        bus.publish(external + "everest_api/tokens/cmd/provide", '{"id_token": {"value": "X", "type": "Card"}}')
        bus.publish(external + "everest_api/tokens/cmd/provide", '{"id_token": 1, "authorization_type": "RFID"}')
        # the right shape, but no such id token type: refused by the ProvidedIdToken schema
        bad_type = {**TOKEN, "id_token": {"value": "X", "type": "Card"}}
        bus.publish(external + "everest_api/tokens/cmd/provide", json.dumps(bad_type))
        bus.publish(external + "everest_api/tokens/cmd/provide", json.dumps(TOKEN))
        bus.publish(external + "everest_api/dummy_token_provider/cmd/provide", json.dumps({**TOKEN, "connectors": [2]}))
        first = await asyncio.wait_for(by_default.get(), 5)
        second = await asyncio.wait_for(by_config.get(), 5)
        assert by_default.empty() and by_config.empty()
        return first, second

    first, second = run_probe(prefix, scenario)
    assert first == TOKEN, "the bad messages before it were dropped"
    assert second == {**TOKEN, "connectors": [2]}
    assert stack.stop() == 0
    dropped = [line for line in stack.log().splitlines() if "ignored a message" in line]
    assert len(dropped) == 4, stack.log()
