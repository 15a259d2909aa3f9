# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The terminal under curses, and the stack's log kept off it.

While the screen is up, file descriptor 2 (where the stack logs, and where anything else in the
process writes its complaints) goes to a log file, and a logging handler copies the newest lines
into the screen's log pane. Closing the screen puts stderr back, so the lines of the stack's stop
reach the terminal again.
"""

from __future__ import annotations

import contextlib
import curses
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from everest_bsp.modules.bu_powermeter.view import Line
from everest_py.framework.logs import current_module


def has_terminal() -> bool:
    """curses needs the keyboard on stdin and the screen on stdout, and a TERM it knows."""
    return sys.stdin.isatty() and sys.stdout.isatty() and bool(os.environ.get("TERM"))


class PaneHandler(logging.Handler):
    """Copies log records into the screen's log pane (any thread); ``notify`` wakes the screen."""

    def __init__(self, lines: deque[str], notify: Callable[[], None]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines
        self.notify = notify
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(module_id)s] %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        if not hasattr(record, "module_id"):
            record.module_id = current_module.get() or record.name
        try:
            self.lines.append(self.format(record))
            self.notify()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class Terminal:
    """One curses screen; ``open`` and ``close`` may be called in any order, any number of times."""

    STYLES = ("title", "normal", "good", "bad", "dim")

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.screen: curses.window | None = None
        self._saved_stderr: int | None = None
        self._attrs: dict[str, int] = {}

    @property
    def is_open(self) -> bool:
        return self.screen is not None

    @property
    def diverted(self) -> bool:
        """True while stderr goes to ``log_file``."""
        return self._saved_stderr is not None

    def open(self) -> None:
        if self.screen is not None:
            return
        self._divert_stderr()
        try:
            screen = curses.initscr()
            curses.noecho()
            curses.cbreak()  # Ctrl-C still interrupts: the stack stops in order
            screen.keypad(True)
            screen.nodelay(True)
            with contextlib.suppress(curses.error):
                curses.curs_set(0)
            self._attrs = self._make_attrs()
        except Exception:
            with contextlib.suppress(curses.error):
                curses.endwin()
            self._restore_stderr()
            raise
        self.screen = screen

    def _make_attrs(self) -> dict[str, int]:
        attrs = {"title": curses.A_BOLD, "normal": curses.A_NORMAL, "good": curses.A_NORMAL, "bad": curses.A_BOLD}
        attrs["dim"] = curses.A_DIM
        if curses.has_colors():
            with contextlib.suppress(curses.error):
                curses.start_color()
                curses.use_default_colors()
                curses.init_pair(1, curses.COLOR_GREEN, -1)
                curses.init_pair(2, curses.COLOR_RED, -1)
                attrs["good"] = curses.color_pair(1)
                attrs["bad"] = curses.color_pair(2) | curses.A_BOLD
        return attrs

    def close(self) -> None:
        if self.screen is not None:
            self.screen = None
            with contextlib.suppress(curses.error):
                curses.nocbreak()
                curses.echo()
                curses.endwin()
        self._restore_stderr()

    def size(self) -> tuple[int, int]:
        """(columns, lines) of the terminal."""
        if self.screen is None:
            return 80, 24
        lines, cols = self.screen.getmaxyx()
        return cols, lines

    def pressed(self) -> list[int]:
        """Every key pressed since the last call (never blocks)."""
        out: list[int] = []
        while self.screen is not None:
            key = self.screen.getch()
            if key == -1:
                break
            if key == curses.KEY_RESIZE:
                curses.update_lines_cols()
            out.append(key)
        return out

    def draw(self, lines: Sequence[Line]) -> None:
        if self.screen is None:
            return
        screen = self.screen
        cols, rows = self.size()
        screen.erase()
        for y, line in enumerate(lines[:rows]):
            # the last cell of the screen cannot be written without curses complaining
            text = line.text[: cols - 1 if y == rows - 1 else cols]
            with contextlib.suppress(curses.error):
                screen.addstr(y, 0, text, self._attrs.get(line.style, curses.A_NORMAL))
        screen.refresh()

    # -- stderr ------------------------------------------------------------------------------------
    def _divert_stderr(self) -> None:
        if self._saved_stderr is not None or not os.isatty(2):
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        target = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._saved_stderr = os.dup(2)
        os.dup2(target, 2)
        os.close(target)

    def _restore_stderr(self) -> None:
        if self._saved_stderr is None:
            return
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(self._saved_stderr, 2)
        os.close(self._saved_stderr)
        self._saved_stderr = None
