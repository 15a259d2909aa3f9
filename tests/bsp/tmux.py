# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Driving a terminal UI in tmux: run a command, send keys, read the screen."""

from __future__ import annotations

import subprocess
import time


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def screen_shows(session: str, *texts: str, timeout_s: float = 15.0) -> str:
    """The screen once every text is on it, or as it is when the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        screen = tmux("capture-pane", "-p", "-t", session)
        if all(t in screen for t in texts) or time.monotonic() > deadline:
            return screen
        time.sleep(0.05)
