# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Test peers for Modbus RTU: a socat pty pair and a pymodbus RTU server with a register bank.

The server is pymodbus's own (an implementation independent of the hub's request code) and runs
on a loop in a thread of its own, so tests drive it with plain calls while a stack talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

HOLDING, INPUT = 3, 4
BLOCK_SIZE = 2000  # registers 0..1999 of both tables exist; others answer "illegal data address"


def float_words(value: float) -> tuple[int, int]:
    """IEEE 754 single precision, high word first (Eastron's order)."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return hi, lo


def wait_until(cond: Any, timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class PtyPair:
    """``socat`` joining two ptys: ``device`` for the simulated meter, ``host`` for the hub."""

    def __init__(self, directory: Path) -> None:
        self.device = directory / "ttyDEV"
        self.host = directory / "ttyHOST"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PtyPair:
        exe = shutil.which("socat")
        if exe is None:
            raise RuntimeError("socat is not installed (apt-get install socat)")
        self._proc = subprocess.Popen(
            [exe, f"pty,raw,echo=0,link={self.device}", f"pty,raw,echo=0,link={self.host}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self.device.exists() and self.host.exists(), what="the pty links of socat")
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        wait_until(lambda: not self.device.exists() and not self.host.exists(), what="the pty links to go")


class ModbusPeer:
    """A Modbus RTU device (pymodbus server) whose registers tests set with plain calls.

    ``words[(table, address)]`` holds the registers of the holding (3) and input (4) tables;
    ``requests`` records every (function code, address, count) the device was asked for, and
    ``exception`` makes it answer every request with that Modbus exception code.
    """

    def __init__(self, port: Path, device_id: int = 1) -> None:
        self.port = port
        self.device_id = device_id
        self.words: dict[tuple[int, int], int] = {}
        self.requests: list[tuple[int, int, int]] = []
        self.exception: ExcCodes | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ModbusSerialServer | None = None

    # -- the bank --------------------------------------------------------------------------------
    def set_words(self, table: int, address: int, *values: int) -> None:
        with self._lock:
            for i, v in enumerate(values):
                self.words[(table, address + i)] = v & 0xFFFF

    def set_float(self, table: int, address: int, value: float) -> None:
        self.set_words(table, address, *float_words(value))

    def get_words(self, table: int, address: int, count: int) -> list[int]:
        with self._lock:
            return [self.words.get((table, address + i), 0) for i in range(count)]

    def requests_since(self, index: int) -> list[tuple[int, int, int]]:
        with self._lock:
            return list(self.requests[index:])

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        with self._lock:
            if self.exception is not None:
                return self.exception
            table = {3: HOLDING, 4: INPUT, 6: HOLDING, 16: HOLDING}.get(function_code)
            if table is None:  # coils live in the simulator's own bit block
                return None
            if set_values:
                for i, v in enumerate(set_values):
                    self.words[(table, address + i)] = int(v)
            else:
                for i in range(count):
                    registers[address - start_address + i] = self.words.get((table, address + i), 0)
        return None

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """Every request that reaches the device, also those it refuses."""
        if not sending:
            with self._lock:
                self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    # -- the server ------------------------------------------------------------------------------
    def start(self) -> ModbusPeer:
        device = SimDevice(
            id=self.device_id,
            simdata=(
                [SimData(0, count=256, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=BLOCK_SIZE, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=BLOCK_SIZE, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="modbus-peer", daemon=True)
        self._thread.start()

        async def serve() -> ModbusSerialServer:
            server = ModbusSerialServer(
                device, framer=FramerType.RTU, port=str(self.port), baudrate=115200, trace_pdu=self._trace
            )
            await server.serve_forever(background=True)
            return server

        self._server = self._call(serve())
        return self

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._call(self._server.shutdown())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(5)
        self._loop.close()
        self._loop = None

    @contextlib.contextmanager
    def running(self) -> Iterator[ModbusPeer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


class SilentDevice:
    """The device end of the line held open by a device that never answers; counts what it hears."""

    def __init__(self, port: Path) -> None:
        self._fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.heard = b""

    def requests(self) -> int:
        """Read requests heard so far (8 bytes each: device, function, address, count, CRC)."""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fd, 4096):
                self.heard += chunk
        return len(self.heard) // 8

    def close(self) -> None:
        os.close(self._fd)


def sdm630_bank(peer: ModbusPeer, values: dict[int, float]) -> None:
    """Set input registers by their datasheet numbers (30001 = address 0) as Eastron floats."""
    for number, value in values.items():
        peer.set_float(INPUT, number - 30001, value)


# A three-phase charge at about 16 A (datasheet register -> value in the meter's units)
SDM630 = {
    30001: 230.1,  # V
    30003: 231.2,
    30005: 229.9,
    30007: 16.02,  # A
    30009: 15.98,
    30011: 0.25,
    30013: 3686.1,  # W
    30015: 3694.6,
    30017: -57.5,
    30025: 10.0,  # var
    30027: -20.0,
    30029: 30.5,
    30053: 7323.2,  # W total
    30061: 20.5,  # var total
    30071: 50.02,  # Hz
    30073: 12345.67,  # kWh import
    30075: 1.5,  # kWh export
    30347: 4000.1,
    30349: 4000.25,
    30351: 4345.32,
    30353: 0.5,
    30355: 0.25,
    30357: 0.75,
}


def _conn(module_id: str) -> dict[str, str]:
    return {"module_id": module_id, "implementation_id": "main"}


def meter_stack(port: Path, model: str = "Eastron_SDM630-V2") -> dict[str, Any]:
    """A run config: SerialCommHub on ``port``, GenericPowermeter, and a probe connected to the meter."""
    hub = {"serial_port": str(port), "baudrate": 115200, "retries": 0, "initial_timeout_ms": 100}
    return {
        "active_modules": {
            "hub": {"module": "SerialCommHub", "config_implementation": {"main": hub}},
            "meter": {
                "module": "GenericPowermeter",
                "config_implementation": {"main": {"model": model}},
                "connections": {"serial_comm_hub": [_conn("hub")]},
            },
            "probe": {"module": "ProbeModule", "connections": {"powermeter": [_conn("meter")]}},
        }
    }
