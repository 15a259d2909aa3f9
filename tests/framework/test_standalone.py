# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A module in another language joins with EVerest's handshake (played by plain paho)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RAW = Path(__file__).with_name("raw_module.py")
MANIFEST = """\
description: A board written in another language, started by hand
provides:
  board_support:
    description: Board interface answered by a plain MQTT client
    interface: evse_board_support
requires:
  validator:
    interface: auth_token_validator
  user:
    interface: kvs
metadata:
  license: https://opensource.org/licenses/Apache-2.0
  authors: [everest-py contributors]
"""


def test_foreign_standalone_module_joins_calls_and_is_called(make_stack, broker, tmp_path):
    modules = tmp_path / "modules" / "RawBoard"
    modules.mkdir(parents=True)
    (modules / "manifest.yaml").write_text(MANIFEST)
    config = {
        "settings": {"modules_dir": str(tmp_path / "modules")},
        "active_modules": {
            "validator": {"module": "DummyTokenValidator", "config_implementation": {"main": {"sleep": 0}}},
            "user": {
                "module": "BoardUser",
                "connections": {"bsp": [{"module_id": "raw", "implementation_id": "board_support"}]},
            },
            "raw": {
                "module": "RawBoard",
                "standalone": True,
                "connections": {
                    "validator": [{"module_id": "validator", "implementation_id": "main"}],
                    "user": [{"module_id": "user", "implementation_id": "main"}],
                },
            },
        },
    }
    stack, prefix = make_stack(config)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    out = subprocess.run(
        [sys.executable, str(RAW), str(broker.socket), prefix, "raw"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    found = json.loads(out.stdout)
    assert found["definition_cmds"] == sorted(
        [
            "enable",
            "pwm_on",
            "cp_state_X1",
            "cp_state_F",
            "cp_state_E",
            "allow_power_on",
            "ac_switch_three_phases_while_charging",
            "ac_set_overcurrent_limit_A",
        ]
    )
    assert found["response_msg_type"] == "GetConfigResponse"
    assert found["status"] == "Ok"
    assert found["module_name"] == "RawBoard"
    assert found["standalone"] is True
    assert found["connections"] == {"validator": ["validator", "main"], "user": ["user", "main"]}
    assert found["global_ready"] == {"msg_type": "GlobalReady", "data": True}
    answer = found["validator_answer"]
    assert answer["msg_type"] == "CmdResult"
    assert answer["data"]["type"] == "result"
    assert answer["data"]["data"]["origin"] == "validator"
    assert answer["data"]["data"]["retval"] == {
        "authorization_status": "Accepted",
        "tariff_messages": [{"content": "Token valid"}],
    }
    # our BoardUser called the foreign module's command and received its var
    assert found["called"] == [["enable", "user", {"value": True}]]
    assert found["user_events"] == ["B"]
    assert stack.stop() == 0
