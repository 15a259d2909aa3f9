# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BUEvseBoardSupport: the console's model and key map, and the console in tmux against a YetiSimulator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from everest_bsp.modules.bu_evse_board_support.view import (
    BACKSPACE,
    BSP,
    ENTER,
    ESCAPE,
    HELP,
    LOCK,
    QUIT,
    RCD,
    BoardView,
    Command,
    amps_for_duty,
    duty_meaning,
)
from everest_py.testing import Broker, write_config
from tests.bsp.tmux import screen_shows, tmux


def full_view(**kw: Any) -> BoardView:
    return BoardView(bsp="yeti.board_support", lock="yeti.connector_lock", rcd="yeti.rcd", clock=lambda: 0.0, **kw)


def press(view: BoardView, *keys: str) -> list[Any]:
    actions: list[Any] = []
    for k in keys:
        actions += view.key(k)
    return actions


def pwm(duty: float) -> Command:
    return Command(BSP, "pwm_on", {"value": duty})


# -- the model ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (2, None),
        (5, None),
        (7.5, None),
        (8, 6.0),
        (9.9, 6.0),
        (10, 6.0),
        (16, 9.6),
        (50, 30.0),
        (85, 51.0),
        (90, 65.0),
        (96, 80.0),
        (97, 80.0),
        (97.5, None),
        (100, None),
    ],
)
def test_amps_for_duty(duty: float, amps: float | None) -> None:
    assert amps_for_duty(duty) == amps


def test_duty_meaning() -> None:
    assert duty_meaning(5) == "digital communication (HLC)"
    assert duty_meaning(53.3) == "32 A"
    assert duty_meaning(99) == "no charging"


def test_single_keys_map_to_commands() -> None:
    v = full_view()
    power_on = {"allow_power_on": True, "reason": "FullPowerCharging"}
    power_off = {"allow_power_on": False, "reason": "PowerOff"}
    assert press(v, "e", "d", "x", "E", "F", "p", "o", "t", "s", "l", "u", "r", "R") == [
        Command(BSP, "enable", {"value": True}),
        Command(BSP, "enable", {"value": False}),
        Command(BSP, "cp_state_X1"),
        Command(BSP, "cp_state_E"),
        Command(BSP, "cp_state_F"),
        Command(BSP, "allow_power_on", {"value": power_on}),
        Command(BSP, "allow_power_on", {"value": power_off}),
        Command(BSP, "ac_switch_three_phases_while_charging", {"value": True}),
        Command(BSP, "ac_switch_three_phases_while_charging", {"value": False}),
        Command(LOCK, "lock"),
        Command(LOCK, "unlock"),
        Command(RCD, "reset"),
        Command(RCD, "self_test"),
    ]
    assert press(v, "q") == [QUIT]
    assert press(v, "z", "?", " ") == []


def test_duty_entry() -> None:
    v = full_view()
    assert press(v, "1", "6") == []
    assert v.entry == "16"
    assert "Duty: 16_  (9.6 A)" in [text for text, _ in v.lines(120, 40)]
    assert press(v, ENTER) == [pwm(16.0)]
    assert v.entry == ""
    assert press(v, "5", "3", ".", "3", ENTER) == [pwm(53.3)]
    assert press(v, "9", BACKSPACE, "8", ENTER) == [pwm(8.0)]
    assert press(v, "4", "2", ESCAPE, ENTER) == [], "escape drops the entry"
    assert press(v, "1", "2", "0", ENTER) == []
    assert "outside 0..100 %" in v.log[-1]
    assert press(v, "1", ".", ".", ENTER) == []
    assert "not a duty cycle: 1.." in v.log[-1]
    assert press(v, *"1234567") == []
    assert v.entry == "123456", "the entry is short"


def test_plus_and_minus_step_the_duty_sent_last() -> None:
    v = full_view()
    assert press(v, "+") == [pwm(10.0)], "no duty yet: 10 % (6 A)"
    assert press(v, "-") == [pwm(10.0)]
    v.done(pwm(16.0), None)
    assert press(v, "+", "-") == [pwm(17.0), pwm(15.0)]
    v.done(pwm(99.0), None)
    assert press(v, "+") == [pwm(99.0)]
    v.done(pwm(1.0), None)
    assert press(v, "-") == [pwm(1.0)]


def test_lock_and_rcd_keys_need_their_connections() -> None:
    v = BoardView(clock=lambda: 0.0)
    assert press(v, "l") == []
    assert v.log[-1].endswith("no lock_motor connected")
    assert press(v, "r", "R") == []
    assert v.log[-1].endswith("no ac_rcd connected")
    rows = [text for text, _ in v.lines(120, 40)]
    assert not any(r.startswith("RCD current") for r in rows)
    assert not any("Lock" in r for r in rows[3:8])


def test_reports_and_results() -> None:
    v = full_view()
    v.on_event({"event": "B"})
    v.on_event({"event": "PowerOn"})
    v.on_var("ac_pp_ampacity", {"ampacity": "A_32"})
    v.on_var("ac_nr_of_phases_available", 1)
    v.on_var("rcd_current_mA", 2.5)
    v.on_var("capabilities", {"min_current_A_import": 6, "max_current_A_import": 32, "connector_type": "X"})
    assert (v.cp_state, v.relays, v.ampacity, v.phases_available, v.rcd_current_mA) == ("B", "on", "A_32", 1, 2.5)
    v.on_event({"event": "PowerOff"})
    assert (v.cp_state, v.relays) == ("B", "off")
    v.done(Command(BSP, "enable", {"value": True}), None)
    v.done(pwm(25.0), None)
    v.done(Command(BSP, "allow_power_on", {"value": {"allow_power_on": True, "reason": "FullPowerCharging"}}), None)
    v.done(Command(RCD, "reset"), False)
    assert (v.enabled, v.pilot, v.duty, v.power_allowed, v.rcd_state) == (True, "PWM", 25.0, True, "reset refused")
    assert press(v, "l") == [Command(LOCK, "lock")]
    assert v.lock_state == "locking..."
    v.failed(Command(LOCK, "lock"), "CmdTimeout: no result in time")
    assert v.lock_state == "lock failed"
    assert v.log[-1].endswith(" < lock_motor.lock failed: CmdTimeout: no result in time")
    v.done(Command(BSP, "cp_state_X1"), None)
    assert v.pilot == "X1"
    rows = [text for text, _ in v.lines(120, 40)]
    assert rows[3].startswith("CP state      B") and "Port    enabled" in rows[3]
    assert "Pilot   X1" in rows[4]
    assert "Capabilities  6-32 A" in "\n".join(rows)


def test_errors_by_source_type_and_sub_type() -> None:
    v = full_view()
    diode = {"type": "evse_board_support/DiodeFault", "sub_type": "", "severity": "High", "message": "diode"}
    short = {"type": "evse_board_support/MREC14PilotFault", "sub_type": "CPShortFault", "severity": "High"}
    v.on_error(BSP, diode, True)
    v.on_error(BSP, short, True)
    v.on_error(LOCK, {"type": "connector_lock/ConnectorLockFailedLock", "severity": "Medium", "message": "m"}, True)
    assert len(v.errors) == 3
    rows = [(text, style) for text, style in v.lines(120, 40) if style == "error"]
    assert rows == [
        ("  [High] bsp: evse_board_support/DiodeFault diode", "error"),
        ("  [High] bsp: evse_board_support/MREC14PilotFault/CPShortFault ", "error"),
        ("  [Medium] lock_motor: connector_lock/ConnectorLockFailedLock m", "error"),
    ]
    v.on_error(BSP, dict(short, state="ClearedByModule"), False)
    assert list(v.errors) == [
        (BSP, "evse_board_support/DiodeFault", ""),
        (LOCK, "connector_lock/ConnectorLockFailedLock", ""),
    ]


def test_screen_has_the_size_it_is_given() -> None:
    v = full_view()
    for n in range(100):
        v.note(f"line {n}")
    rows = v.lines(60, 30)
    assert len(rows) == 30
    assert all(len(text) <= 60 for text, _ in rows)
    assert [text for text, _ in rows[-2:]] == [HELP[0][:60], HELP[1][:60]]
    log = [text for text, _ in rows if "line " in text]
    assert log[-1].endswith("line 99") and len(log) < 30
    assert len(v.lines(120, 5)) == 5, "a tiny terminal gets the top rows"


def test_echo_of_notes_for_a_run_without_console() -> None:
    heard: list[str] = []
    v = full_view(echo=heard.append)
    v.on_event({"event": "A"})
    v.note("from the log", echo=False)
    assert heard == ["event A"]
    assert v.log[-1].endswith("from the log")


# -- the console in a terminal --------------------------------------------------------------------------


@pytest.fixture
def console_session(tmp_path: Path, broker: Broker) -> Iterator[tuple[str, Path, str]]:
    """(tmux session, file with the exit status, external MQTT prefix): everest-py with the console in tmux."""
    for tool in ("tmux", "mosquitto_pub"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    config = {
        "active_modules": {
            "yeti": {"module": "YetiSimulator", "config_module": {"connector_id": 1}},
            "bu": {
                "module": "BUEvseBoardSupport",
                "connections": {
                    "bsp": [{"module_id": "yeti", "implementation_id": "board_support"}],
                    "lock_motor": [{"module_id": "yeti", "implementation_id": "connector_lock"}],
                    "ac_rcd": [{"module_id": "yeti", "implementation_id": "rcd"}],
                },
            },
        }
    }
    prefix = write_config(tmp_path / "config.yaml", config, broker)
    status = tmp_path / "status"
    cli = Path(sys.executable).parent / "everest-py"
    command = (
        # stderr on the terminal too: the console must take the log over, or it garbles the screen
        f"cd {tmp_path} && EVEREST_PY_RUNTIME_DIR={tmp_path / 'run'} {cli} run config.yaml;"
        f" echo $? > {status}; sleep 60"
    )
    session = f"bu-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command)
    try:
        yield session, status, f"ext_{prefix}/"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)


def wait_file(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.05)
    return path.read_text().strip()


def inject(broker: Broker, topic: str, error_type: str, active: bool) -> None:
    payload = json.dumps({"error_type": error_type, "raise": active})
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-m", payload],
        check=True,
        timeout=5,
    )


def test_console_drives_the_board_from_the_keyboard(console_session: tuple[str, Path, str], broker: Broker) -> None:
    session, status, ext = console_session
    send: Callable[..., str] = lambda *keys: tmux("send-keys", "-t", session, *keys)  # noqa: E731
    screen = screen_shows(session, "Board reports", "Capabilities  6.0-32.0 A", timeout_s=20)
    assert "Capabilities  6.0-32.0 A, 1-3 phases" in screen, screen
    assert "CP state      -" in screen
    send("e")
    screen = screen_shows(session, "CP state      A", "Port    enabled", "INFO [yeti] event A")
    assert "CP state      A" in screen and "Port    enabled" in screen, screen
    assert "INFO [yeti] event A" in screen.split("\nLog\n")[1], "log records go to the log pane"
    send("1", "6", "Enter")
    screen = screen_shows(session, "Pilot   PWM 16 % = 9.6 A")
    assert "Pilot   PWM 16 % = 9.6 A" in screen, screen
    send("+")
    screen = screen_shows(session, "Pilot   PWM 17 % = 10.2 A")
    assert "Pilot   PWM 17 % = 10.2 A" in screen, screen
    send("F")
    screen = screen_shows(session, "CP state      F", "Pilot   F\n")
    assert "CP state      F" in screen and "Pilot   F\n" in screen, screen
    send("l", "t")
    screen = screen_shows(session, "Lock    locked", "Phases  three")
    assert "Lock    locked" in screen and "Phases  three" in screen, screen
    error_topic = f"{ext}everest_external/nodered/1/carsim/error"
    inject(broker, error_topic, "lock_ConnectorLockFailedLock", True)
    shown = "lock_motor: connector_lock/ConnectorLockFailedLock"
    screen = screen_shows(session, "Active errors (1)", shown)
    assert shown in screen, screen
    inject(broker, error_topic, "lock_ConnectorLockFailedLock", False)
    screen = screen_shows(session, "Active errors (0)")
    assert "Active errors (0)" in screen and shown not in screen.split("Log")[0], screen
    send("q")
    code = wait_file(status)
    screen = tmux("capture-pane", "-p", "-t", session)
    assert code == "0", screen
    # the screen is gone; its last lines and the stop are left on the terminal
    assert "quitting: stopping the stack" in screen and "INFO [manager] stopped" in screen, screen
    assert "Board reports" not in screen
