# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The curses screen of the bring-up console; while it is up, log records go to its log pane.

Log records may come from any thread: a handler puts them into a queue that the console drains on
the event loop's thread when it draws, so the screen is only ever touched from one thread.
"""

from __future__ import annotations

import atexit
import contextlib
import curses
import logging
import os
import queue
import sys
from typing import Any

from everest_bsp.modules.bu_evse_board_support.view import BACKSPACE, ENTER, ESCAPE, BoardView

LOG_FORMAT = "%(levelname)s [%(module_id)s] %(message)s"
KEEP_LINES = 15  # log lines written to the terminal when the screen closes


class _QueueHandler(logging.Handler):
    def __init__(self, sink: queue.SimpleQueue[str]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if not hasattr(record, "module_id"):
            record.module_id = "-"
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a bad record must not reach the terminal behind the screen
            line = f"{record.levelname} {record.msg!r} (unformattable)"
        self.sink.put(line)


def available() -> bool:
    """A terminal on stdin and stdout (an isolated module or a systemd service has none)."""
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM", "dumb") != "dumb"


class Console:
    def __init__(self, view: BoardView) -> None:
        self.view = view
        self._screen: Any = None
        self._records: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._handler = _QueueHandler(self._records)
        self._moved: list[logging.Handler] = []
        self._styles: dict[str, int] = {}

    def open(self) -> None:
        """Take over the terminal; raises curses.error where it cannot (the caller goes without)."""
        screen = curses.initscr()
        try:
            curses.noecho()
            curses.cbreak()  # keys at once; Ctrl-C still stops the stack
            screen.keypad(True)
            screen.nodelay(True)
            with contextlib.suppress(curses.error):
                curses.curs_set(0)
            self._styles = {
                "title": curses.A_BOLD,
                "label": curses.A_NORMAL,
                "dim": curses.A_DIM,
                "normal": curses.A_NORMAL,
                "error": curses.A_BOLD,
            }
            with contextlib.suppress(curses.error):
                curses.start_color()
                curses.use_default_colors()
                curses.init_pair(1, curses.COLOR_RED, -1)
                self._styles["error"] = curses.color_pair(1) | curses.A_BOLD
        except BaseException:
            curses.endwin()
            raise
        self._screen = screen
        self._take_log()
        atexit.register(self.close)

    def _take_log(self) -> None:
        """Log handlers that write to the terminal stop; their records come to the log pane instead."""
        root = logging.getLogger()
        for h in list(root.handlers):
            stream = getattr(h, "stream", None)
            if isinstance(h, logging.StreamHandler) and stream is not None and stream.isatty():
                for f in h.filters:
                    self._handler.addFilter(f)  # e.g. the one that adds the module id
                root.removeHandler(h)
                self._moved.append(h)
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(self._handler)

    def close(self) -> None:
        if self._screen is None:
            return
        self._screen = None
        with contextlib.suppress(curses.error):
            curses.nocbreak()
            curses.echo()
            curses.endwin()
        root = logging.getLogger()
        root.removeHandler(self._handler)
        for h in self._moved:
            root.addHandler(h)
        self._moved.clear()
        atexit.unregister(self.close)
        # the screen is gone: leave its last lines (a failure, say) on the terminal
        self._drain()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("".join(f"{line}\n" for line in list(self.view.log)[-KEEP_LINES:]))
            sys.stderr.flush()

    def _drain(self) -> None:
        while True:
            try:
                line = self._records.get_nowait()
            except queue.Empty:
                return
            self.view.note(line, echo=False)

    def pressed(self) -> list[str]:
        """Keys pressed since the last call, as BoardView.key takes them."""
        out: list[str] = []
        if self._screen is None:
            return out
        while True:
            try:
                code = self._screen.getch()
            except curses.error:
                return out
            if code == -1:
                return out
            if code == curses.KEY_RESIZE:
                with contextlib.suppress(curses.error):
                    curses.update_lines_cols()
                self.view.changed = True
            elif code in (10, 13, curses.KEY_ENTER):
                out.append(ENTER)
            elif code in (8, 127, curses.KEY_BACKSPACE):
                out.append(BACKSPACE)
            elif code == 27:
                out.append(ESCAPE)
            elif 32 <= code < 127:
                out.append(chr(code))

    def draw(self) -> None:
        self._drain()
        screen = self._screen
        if screen is None or not self.view.changed:
            return
        self.view.changed = False
        height, width = screen.getmaxyx()
        screen.erase()
        for y, (text, style) in enumerate(self.view.lines(max(1, width - 1), height)):
            with contextlib.suppress(curses.error):  # a terminal shrinking under our feet
                screen.addstr(y, 0, text, self._styles.get(style, curses.A_NORMAL))
        screen.refresh()
