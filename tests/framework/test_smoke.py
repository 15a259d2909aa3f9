# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A probe joins a running stack and calls the validator."""

import asyncio

from everest_py.testing import Probe

CONFIG = {
    "active_modules": {
        "validator": {"module": "DummyTokenValidator", "config_implementation": {"main": {"sleep": 0}}},
        "probe": {
            "module": "ProbeModule",
            "connections": {"validator": [{"module_id": "validator", "implementation_id": "main"}]},
        },
    }
}


def test_probe_calls_validator(make_stack, broker):
    stack, prefix = make_stack(CONFIG)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario():
        probe = Probe(broker.unix, prefix)
        await probe.start()
        token = {"id_token": {"value": "X1", "type": "ISO14443"}, "authorization_type": "RFID"}
        result = await probe.call("validator", "validate_token", {"provided_token": token})
        await probe.close()
        return result

    result = asyncio.run(scenario())
    assert result == {"authorization_status": "Accepted", "tariff_messages": [{"content": "Token valid"}]}
    assert stack.stop() == 0
