# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BUPowermeter: the screen's content, and the UI in a real terminal (tmux) on a simulated SDM630."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from everest_bsp.modules.bu_powermeter.module import BUConfig, summary, transaction_request
from everest_bsp.modules.bu_powermeter.view import Result, View, render
from everest_py.framework.contracts import Contracts
from everest_py.testing import Broker, write_config

from .modbus_peer import SDM630, ModbusPeer, PtyPair, meter_stack, sdm630_bank

MODULE_DIR = Path(__file__).resolve().parents[3] / "bsp" / "src" / "everest_bsp" / "modules" / "bu_powermeter"
CONFIG = BUConfig("DE*PNX*E1", "tx-42", "04A1B2C3D4E5F6", "0.40 EUR/kWh")


def test_config_dataclass_matches_the_manifest() -> None:
    keys = yaml.safe_load((MODULE_DIR / "manifest.yaml").read_text())["config"]
    assert [f.name for f in dataclasses.fields(BUConfig)] == list(keys)


def test_transaction_request_is_a_valid_TransactionReq(contracts: Contracts) -> None:
    request = transaction_request(CONFIG)
    schema = contracts.interface("powermeter").cmds["start_transaction"].arguments["value"]
    contracts.validator(("test", "TransactionReq"), schema)(request)
    assert request["transaction_id"] == "tx-42"
    assert request["identification_data"] == "04A1B2C3D4E5F6"
    assert request["tariff_text"] == "0.40 EUR/kWh"


def test_summary_of_answers() -> None:
    assert summary({"status": "NOT_SUPPORTED", "error": "no signing"}) == ("NOT_SUPPORTED", "no signing")
    signed = {"signed_meter_data": "OCMF|{}", "signing_method": "ECDSA", "encoding_method": "OCMF"}
    status, text = summary({"status": "OK", "signed_meter_value": signed})
    assert (status, text) == ("OK", "signed_meter_value: ECDSA OCMF|{}")
    assert summary(None) == ("FAILED", "unexpected answer None")


def test_render() -> None:
    view = View("bu", "meter.main", transaction_request(CONFIG))
    lines = [line.text for line in render(view, 100.0, 120, 40)]
    assert lines[0] == "BUPowermeter bu  ->  meter meter.main"
    assert lines[1] == "no reading yet"
    view.reading = {
        "timestamp": "2024-05-01T10:00:00.000Z",
        "meter_id": "m1",
        "energy_Wh_import": {"total": 12345670.0, "L1": 4000100.0},
        "current_A": {"L1": 16.02, "N": 0.1},
    }
    view.reading_at, view.readings = 99.0, 7
    view.errors[("generic/CommunicationFault", "")] = "the meter does not answer"
    view.results.append(Result("10:00:01", "stop_transaction", "NOT_SUPPORTED", "x " * 100))
    view.log.extend(f"log line {i}" for i in range(50))
    screen = render(view, 100.0, 80, 30)
    texts = [line.text for line in screen]
    assert len(texts) == 30 and all(len(t) <= 80 for t in texts)
    assert (texts[1], screen[1].style) == ("reading #7  2024-05-01T10:00:00.000Z  (1.0 s ago)  meter_id m1", "good")
    assert texts[2].split() == ["total", "L1", "L2", "L3", "N"]  # N shown because the meter gives it
    assert texts[3].split() == ["Energy", "import", "Wh", "12345670.0", "4000100.0"]
    assert texts[8].split() == ["Current", "A", "16.020", "0.100"]
    assert ("ERROR generic/CommunicationFault: the meter does not answer", "bad") in [(s.text, s.style) for s in screen]
    assert sum(t.startswith("10:00:01 stop_transaction -> NOT_SUPPORTED") for t in texts) == 1
    assert texts[-1] == "log line 49"  # the newest log lines fill the rest
    assert render(view, 104.0, 80, 30)[1].style == "bad"  # 5 s old: stale


# -- without a terminal, and in a real one ---------------------------------------------------------------------


def bringup_config(port: Path) -> dict[str, Any]:
    config: dict[str, Any] = meter_stack(port)
    modules = config["active_modules"]
    del modules["probe"]
    modules["bu"] = {
        "module": "BUPowermeter",
        "config_module": dataclasses.asdict(CONFIG),
        "connections": {"powermeter": [{"module_id": "meter", "implementation_id": "main"}]},
    }
    return config


def test_without_a_terminal_the_ui_stays_off(make_stack, line: tuple[PtyPair, ModbusPeer]) -> None:
    pty, _ = line
    stack, _ = make_stack(bringup_config(pty.host))
    stack.start()
    deadline = time.monotonic() + 10
    while "first reading" not in stack.log():
        assert time.monotonic() < deadline, stack.log()
        time.sleep(0.05)
    assert stack.stop() == 0, stack.log()
    log = stack.log()
    assert "no terminal on stdin/stdout: the UI stays off" in log
    assert "'energy_Wh_import': {'total': 12345670.0" in log


# -- in a real terminal --------------------------------------------------------------------------------------


class Tmux:
    """A tmux server of our own (-L), so that no user's sessions are touched."""

    def __init__(self, width: int = 120, height: int = 40) -> None:
        self.socket = f"evpy-bu-{uuid.uuid4().hex[:8]}"
        self.session = "bu"
        self.size = (width, height)

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], check=False, capture_output=True, text=True, timeout=10
        )
        return out.stdout

    def start(self, command: str) -> None:
        w, h = self.size
        self.run("new-session", "-d", "-s", self.session, "-x", str(w), "-y", str(h), command)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self) -> list[str]:
        return self.run("capture-pane", "-p", "-t", self.session).splitlines()

    def wait_for(self, text: str, timeout_s: float = 15.0) -> list[str]:
        """Poll the screen until ``text`` shows (whitespace and line wraps ignored)."""
        deadline = time.monotonic() + timeout_s
        wanted = " ".join(text.split())
        while True:
            lines = self.screen()
            if wanted in " ".join(" ".join(lines).split()):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not show; the screen:\n" + "\n".join(lines))
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False, capture_output=True, timeout=10)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[PtyPair, ModbusPeer]]:
    pty = PtyPair(tmp_path).start()
    peer = ModbusPeer(pty.device)
    sdm630_bank(peer, SDM630)
    try:
        yield pty, peer.start()
    finally:
        peer.stop()
        pty.stop()


def wait_file(path: Path, timeout_s: float = 15.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.05)
    return path.read_text().strip()


def everest_py() -> list[str]:
    exe = Path(sys.executable).parent / "everest-py"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "everest_py"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_ui_in_a_terminal(broker: Broker, tmp_path: Path, line: tuple[PtyPair, ModbusPeer]) -> None:
    pty, peer = line
    path = tmp_path / "bringup.yaml"
    write_config(path, bringup_config(pty.host), broker)
    run_dir, exit_file = tmp_path / "run", tmp_path / "exit-status"
    command = (
        f"EVEREST_PY_RUNTIME_DIR={shlex.quote(str(run_dir))} {shlex.join([*everest_py(), 'run', str(path)])}; "
        f"echo $? > {shlex.quote(str(exit_file))}"
    )
    tmux = Tmux()
    try:
        tmux.start(command)
        screen = tmux.wait_for("Energy import Wh 12345670.0 4000100.0 4000250.0 4345320.0")
        assert screen[0] == "BUPowermeter bu  ->  meter meter.main"
        tmux.wait_for("Voltage V 230.100 231.200 229.900")

        tmux.keys("s")
        tmux.wait_for("start_transaction -> NOT_SUPPORTED this meter signs no readings; transaction tx-42 noted")
        sdm630_bank(peer, {30073: 12346.5})
        tmux.wait_for("Energy import Wh 12346500.0")
        tmux.keys("e")
        tmux.wait_for("tx-42: 12345670.0 Wh at start, 12346500.0 Wh at stop, 830.0 Wh imported")

        peer.stop()
        screen = tmux.wait_for("ERROR generic/CommunicationFault: the meter does not answer")
        # the log shows in its pane only: no log line was written over the screen
        assert screen[0] == "BUPowermeter bu  ->  meter meter.main"
        pane = next(i for i, text in enumerate(screen) if text.startswith("log (all of it in "))
        logged = [i for i, text in enumerate(screen) if "INFO [" in text or "WARNING [" in text or "ERROR [" in text]
        assert logged and min(logged) > pane, "\n".join(screen)
        assert "the meter does not answer" in (run_dir / "bu.log").read_text()

        peer.start()
        tmux.wait_for("errors: none")
        tmux.keys("q")
        assert wait_file(exit_file) == "0"
    finally:
        tmux.kill()
