# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BUPowermeter: the bus adapter and the screen loop of the power meter bring-up UI."""

from __future__ import annotations

import asyncio
import contextlib
import curses
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from everest_bsp.modules.bu_powermeter.terminal import PaneHandler, Terminal, has_terminal
from everest_bsp.modules.bu_powermeter.view import Result, View, render
from everest_py.errors import CommandError
from everest_py.framework.broker import runtime_dir
from everest_py.framework.module import Module

if TYPE_CHECKING:
    from everest_py.framework.runtime import ModuleRuntime

REFRESH_S = 0.5  # the age of the reading ticks on screen even without news
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BUConfig:
    evse_id: str
    transaction_id: str
    identification_data: str
    tariff_text: str


def transaction_request(cfg: BUConfig) -> dict[str, Any]:
    """A powermeter#/TransactionReq from the config: a user assigned by a plain RFID card."""
    return {
        "evse_id": cfg.evse_id,
        "transaction_id": cfg.transaction_id,
        "identification_status": "ASSIGNED",
        "identification_level": "HEARSAY",
        "identification_flags": ["RFID_PLAIN"],
        "identification_type": "ISO14443",
        "identification_data": cfg.identification_data,
        "tariff_text": cfg.tariff_text,
    }


def summary(response: Any) -> tuple[str, str]:
    """(status, text) of a TransactionStart/StopResponse."""
    if not isinstance(response, dict):
        return "FAILED", f"unexpected answer {response!r}"
    status = str(response.get("status", "?"))
    parts = [str(response["error"])] if response.get("error") else []
    for key in ("start_signed_meter_value", "signed_meter_value"):
        smv = response.get(key)
        if isinstance(smv, dict):
            parts.append(f"{key}: {smv.get('signing_method', '')} {smv.get('signed_meter_data', '')}")
    for key in ("transaction_min_stop_time", "transaction_max_stop_time"):
        if response.get(key):
            parts.append(f"{key} {response[key]}")
    return status, "; ".join(parts)


class BUPowermeter(Module):
    """Draws the screen when stdin and stdout are a terminal; without one it only logs."""

    Config = BUConfig
    config: BUConfig

    def __init__(self, runtime: ModuleRuntime) -> None:
        super().__init__(runtime)
        conn = self.r.powermeter[0]
        self.view = View(self.info.id, f"{conn.module_id}.{conn.impl_id}", transaction_request(self.config))
        self.terminal = Terminal(runtime_dir() / f"{self.info.id}.log")
        self._wake = asyncio.Event()
        self._pane: PaneHandler | None = None
        self._reader_fd: int | None = None

    async def ready(self) -> None:
        conn = self.r.powermeter
        conn.subscribe("powermeter", self._on_reading)
        conn.subscribe("public_key_ocmf", self._on_public_key)
        conn.subscribe_error(None, self._on_error_raised, self._on_error_cleared)
        if not has_terminal():
            self.log.info("no terminal on stdin/stdout: the UI stays off; results and errors go to the log")
            return
        self.spawn(self._screen(), "screen")

    # -- the bus ---------------------------------------------------------------------------------------
    def _on_reading(self, value: Any) -> None:
        if not isinstance(value, dict):
            return
        if self.view.reading is None and not self.terminal.is_open:
            self.log.info("first reading: %s", value)
        self.view.reading = value
        self.view.reading_at = time.monotonic()
        self.view.readings += 1
        self._wake.set()

    def _on_public_key(self, value: Any) -> None:
        self.view.public_key = str(value)
        self._wake.set()

    def _on_error_raised(self, error: dict[str, Any]) -> None:
        key = (str(error.get("type", "")), str(error.get("sub_type") or ""))
        self.view.errors[key] = str(error.get("message") or error.get("description") or "")
        self.log.warning("the meter raised %s: %s", key[0], self.view.errors[key])
        self._wake.set()

    def _on_error_cleared(self, error: dict[str, Any]) -> None:
        key = (str(error.get("type", "")), str(error.get("sub_type") or ""))
        if self.view.errors.pop(key, None) is not None:
            self.log.info("the meter cleared %s", key[0])
        self._wake.set()

    async def start_transaction(self) -> None:
        await self._call("start_transaction", {"value": transaction_request(self.config)})

    async def stop_transaction(self, transaction_id: str) -> None:
        await self._call("stop_transaction", {"transaction_id": transaction_id})

    async def _call(self, name: str, args: dict[str, Any]) -> None:
        self.view.busy = f"{name} sent"
        self._wake.set()
        try:
            response = await self.r.powermeter.call_cmd(name, args, CALL_TIMEOUT_S)
            status, text = summary(response)
        except CommandError as err:
            status, text = "FAILED", str(err)
        self.view.busy = ""
        self.view.results.append(Result(time.strftime("%H:%M:%S"), name, status, text))
        self.log.info("%s -> %s %s", name, status, text)
        self._wake.set()

    # -- the screen ----------------------------------------------------------------------------------
    async def _screen(self) -> None:
        loop = asyncio.get_running_loop()

        def wake() -> None:  # log records may come from other threads
            loop.call_soon_threadsafe(self._wake.set)

        self._pane = PaneHandler(self.view.log, wake)
        logging.getLogger().addHandler(self._pane)
        try:
            self.terminal.open()
        except curses.error as err:  # e.g. a TERM that curses does not know
            self.log.warning("cannot start the UI (%s); results and errors go to the log", err)
            logging.getLogger().removeHandler(self._pane)
            self._pane = None
            return
        self.view.log_file = str(self.terminal.log_file) if self.terminal.diverted else ""
        self._reader_fd = 0
        loop.add_reader(0, self._wake.set)
        self.log.info("bring-up UI on; the log goes to %s while it is up", self.view.log_file or "stderr")
        while True:
            for key in self.terminal.pressed():
                self._on_key(key)
            cols, rows = self.terminal.size()
            self.terminal.draw(render(self.view, time.monotonic(), cols, rows))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), REFRESH_S)

    def _on_key(self, key: int) -> None:
        ch = chr(key).lower() if 0 <= key < 256 else ""
        if ch == "s":
            self.spawn(self.start_transaction(), "start_transaction")
        elif ch == "e":
            self.spawn(self.stop_transaction(self.config.transaction_id), "stop_transaction")
        elif ch == "c":
            self.spawn(self.stop_transaction(""), "cancel transactions")
        elif ch == "q":
            # q leaves the tool: the whole stack stops in order, as on Ctrl-C
            self.log.info("q pressed: stopping the stack")
            os.kill(os.getpid(), signal.SIGINT)

    def _close_screen(self) -> None:
        if self._reader_fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader_fd = None
        self.terminal.close()
        if self._pane is not None:
            logging.getLogger().removeHandler(self._pane)
            self._pane = None

    def safe_state(self) -> None:
        # a crash must leave a usable terminal behind
        if self.terminal.is_open:
            self.terminal.close()

    async def shutdown(self) -> None:
        self._close_screen()
        if self.view.log_file:
            self.log.info("the log lines of the UI's time are in %s", self.view.log_file)
