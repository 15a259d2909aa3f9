# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""config/bringup-tarragon.yaml, unchanged, in a terminal (tmux) against the simulated board."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from everest_bsp.sim.overlay import prepare
from everest_py.testing import Broker
from tests.bsp.tmux import screen_shows, tmux

REPO = Path(__file__).resolve().parents[3]
NAME = "bringup-tarragon.yaml"


def test_bringup_console_on_the_simulated_board(tmp_path: Path, broker: Broker) -> None:
    for tool in ("tmux", "mosquitto_pub"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    work = tmp_path / "work"
    config = prepare(REPO / "config" / NAME, REPO / "config" / "sim" / NAME, work, repo=REPO)
    assert config.read_bytes() == (REPO / "config" / NAME).read_bytes()
    overlay_path = work / "user-config" / NAME
    overlay = yaml.safe_load(overlay_path.read_text())
    prefix = f"bu_{uuid.uuid4().hex[:8]}"
    overlay["settings"] = {
        "mqtt_broker_socket_path": str(broker.socket),
        "mqtt_everest_prefix": prefix,
        "mqtt_external_prefix": f"ext_{prefix}/",
    }
    overlay_path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    status = tmp_path / "status"
    cli = Path(sys.executable).parent / "everest-py"
    command = f"EVEREST_PY_RUNTIME_DIR={tmp_path / 'run'} {cli} run {config}; echo $? > {status}; sleep 60"
    session = f"bu-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "45", command)

    def send(*keys: str) -> None:
        tmux("send-keys", "-t", session, *keys)

    def car(state: str) -> None:
        payload = json.dumps({"fault": "car_state", "value": state})
        topic = f"ext_{prefix}/everest_external/tarragon_sim/board/inject"
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-m", payload], check=True
        )

    try:
        screen = screen_shows(session, "BUEvseBoardSupport", "Capabilities", timeout_s=30)
        assert "bsp: bsp" in screen, screen
        send("e")
        screen = screen_shows(session, "CP state      A", "PP ampacity   None")
        assert "CP state      A" in screen and "PP ampacity   None" in screen, "no cable yet: " + screen
        send("1", "6", "Enter")
        screen = screen_shows(session, "Pilot   PWM 16 % = 9.6 A")
        assert "Pilot   PWM 16 % = 9.6 A" in screen, screen
        car("B")
        screen = screen_shows(session, "CP state      B", "PP ampacity   A_32")
        assert "CP state      B" in screen and "PP ampacity   A_32" in screen, "cable plugged: " + screen
        car("C")
        assert "CP state      C" in screen_shows(session, "CP state      C")
        send("p")  # the driver closes the contactor (after its 10 s spacing from start-up)
        screen = screen_shows(session, "Relays        on", timeout_s=20)
        assert "Relays        on" in screen, screen
        car("B")  # the car stops: the C core opens by itself
        screen = screen_shows(session, "Relays        off", "CP state      B")
        assert "Relays        off" in screen, screen
        send("l")
        screen = screen_shows(session, "Lock    locked", timeout_s=20)
        assert "Lock    locked" in screen, screen
        send("q")
        deadline = time.monotonic() + 20
        while not (status.exists() and status.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status.read_text().strip() == "0", tmux("capture-pane", "-p", "-t", session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
