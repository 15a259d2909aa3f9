# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BUEvseBoardSupport: a terminal console for bringing up a board, through its requirements only."""

from __future__ import annotations

import asyncio
import curses
import signal
from collections.abc import Callable
from typing import Any

from everest_bsp.modules.bu_evse_board_support import console
from everest_bsp.modules.bu_evse_board_support.view import BSP, LOCK, QUIT, RCD, BoardView, Command
from everest_py.errors import BusError
from everest_py.framework.module import Connection, Module

TICK_S = 0.05  # keys are read and the screen redrawn this often
COMMAND_TIMEOUT_S = 30.0  # a board that does not answer must not hold up the keys behind it for minutes
BSP_VARS = ("event", "capabilities", "ac_pp_ampacity", "ac_nr_of_phases_available", "telemetry")


def _name(conn: Connection) -> str:
    return f"{conn.module_id}.{conn.impl_id}"


class BUEvseBoardSupport(Module):
    _console: console.Console | None = None

    async def init(self) -> None:
        lock = self.r.lock_motor[0] if len(self.r.lock_motor) else None
        rcd = self.r.ac_rcd[0] if len(self.r.ac_rcd) else None
        self.view = BoardView(
            bsp=_name(self.r.bsp[0]),
            lock=None if lock is None else _name(lock),
            rcd=None if rcd is None else _name(rcd),
        )
        self._commands: asyncio.Queue[Command] = asyncio.Queue()
        bsp = self.r.bsp
        bsp.subscribe("event", self.view.on_event)
        for var in BSP_VARS[1:]:
            bsp.subscribe(var, self._on_var(var))
        self._errors_of(BSP)
        if lock is not None:
            self._errors_of(LOCK)
        if rcd is not None:
            rcd.subscribe("rcd_current_mA", lambda value: self.view.on_var("rcd_current_mA", value))
            self._errors_of(RCD)

    def _on_var(self, var: str) -> Callable[[Any], None]:
        return lambda value: self.view.on_var(var, value)

    def _errors_of(self, requirement: str) -> None:
        self.r[requirement].subscribe_error(
            None,
            lambda error: self.view.on_error(requirement, error, True),
            lambda error: self.view.on_error(requirement, error, False),
        )

    async def ready(self) -> None:
        self.spawn(self._send(), "commands")
        if console.available():
            screen = console.Console(self.view)
            try:
                screen.open()
            except curses.error as err:
                self.log.warning("no console on this terminal (%s); running without one", err)
            else:
                self._console = screen
                self.spawn(self._run(screen), "console")
                return
        else:
            self.log.info("no terminal: the console stays off, board events are logged")
        self.view.echo = self.log.info

    async def shutdown(self) -> None:
        if self._console is not None:
            self._console.close()
            self._console = None

    async def _run(self, screen: console.Console) -> None:
        while True:
            for key in screen.pressed():
                for action in self.view.key(key):
                    if action is QUIT:
                        self.view.note("quitting: stopping the stack")
                        signal.raise_signal(signal.SIGINT)  # the orderly stop of the whole stack
                    elif isinstance(action, Command):
                        self._commands.put_nowait(action)
            screen.draw()
            await asyncio.sleep(TICK_S)

    async def _send(self) -> None:
        """Send commands one after the other, in the order of the keys."""
        while True:
            command = await self._commands.get()
            self.view.sent(command)
            try:
                result: Any = await self.r[command.requirement].call_cmd(command.cmd, command.args, COMMAND_TIMEOUT_S)
            except BusError as err:  # CommandError included: an error result of the board
                self.view.failed(command, str(err))
            else:
                self.view.done(command, result)
