# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenProvider: the token it builds and when it offers it, alone and over the wire."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from everest_py.framework import wire
from everest_py.modules.dummy_token_provider.token import provided_token, wants_token
from everest_py.testing import Probe


def test_token_from_config() -> None:
    assert provided_token("DEADBEEF", "RFID", 0) == {
        "id_token": {"value": "DEADBEEF", "type": "ISO14443"},
        "parent_id_token": {"value": "DEADBEEF", "type": "ISO14443"},
        "authorization_type": "RFID",
    }
    assert provided_token("CAFE", "OCPP", 2)["connectors"] == [2]
    assert provided_token("CAFE", "OCPP", 2)["authorization_type"] == "OCPP"


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="Magic"):
        provided_token("CAFE", "Magic", 0)


def test_token_is_a_valid_provided_id_token(contracts) -> None:
    schema = contracts.interface("auth_token_provider").vars["provided_token"]
    check = contracts.validator(("test", "auth_token_provider", "provided_token"), schema)
    for kind in ("RFID", "OCPP", "Autocharge", "PlugAndCharge", "BankCard"):
        check(provided_token("A" * 20, kind, 3))


def event(kind: str) -> dict[str, Any]:
    return {"uuid": "s-1", "timestamp": wire.timestamp(), "event": kind}


def test_only_auth_required_asks_for_a_token() -> None:
    assert wants_token(event("AuthRequired"))
    for kind in ("SessionStarted", "Authorized", "TransactionStarted", "SessionFinished"):
        assert not wants_token(event(kind))
    assert not wants_token(None)


def stack_config() -> dict[str, Any]:
    return {
        "active_modules": {
            "provider": {
                "module": "DummyTokenProvider",
                "config_implementation": {"main": {"token": "04A2B3C4", "type": "OCPP", "connector_id": 2}},
                "connections": {"evse": [{"module_id": "probe", "implementation_id": "evse"}]},
            },
            "probe": {
                "module": "ProbeModule",
                "connections": {"provider": [{"module_id": "provider", "implementation_id": "main"}]},
            },
        }
    }


def test_offers_the_token_on_auth_required(make_stack, run_probe) -> None:
    stack, prefix = make_stack(stack_config())
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> list[Any]:
        tokens = probe.subscribe_var("provider", "provided_token")
        for kind in ("Enabled", "SessionStarted", "AuthRequired", "TransactionStarted", "AuthRequired"):
            probe.publish_var("evse", "session_event", event(kind))
        got = [await asyncio.wait_for(tokens.get(), 5), await asyncio.wait_for(tokens.get(), 5)]
        # an end marker: nothing else arrived in between
        probe.publish_var("evse", "session_event", event("AuthRequired"))
        got.append(await asyncio.wait_for(tokens.get(), 5))
        assert tokens.empty()
        return got

    got = run_probe(prefix, scenario)
    token = {
        "id_token": {"value": "04A2B3C4", "type": "ISO14443"},
        "parent_id_token": {"value": "04A2B3C4", "type": "ISO14443"},
        "authorization_type": "OCPP",
        "connectors": [2],
    }
    assert got == [token, token, token]
    assert stack.stop() == 0
