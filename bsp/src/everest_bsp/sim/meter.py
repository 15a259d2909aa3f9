# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A simulated Eastron SDM630-V2 on RS-485: a Modbus RTU server on one end of a socat pty pair.

The meter answers input-register reads (function code 4) with 32-bit IEEE floats, high word
first, taken from the board's power model at the moment of the read.  Register 30001 is address
0 (GenericPowermeter's ``modbus_base_address`` 30001); the addresses are those of the
``Eastron_SDM630-V2`` model of GenericPowermeter.  The client end is the link path a
SerialCommHub's ``serial_port`` points at; the server end is a link in a private directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from everest_bsp.sim.board import MeterValues
from everest_py.errors import HardwareError
from everest_py.framework.broker import set_pdeathsig

log = logging.getLogger(__name__)

BASE_REGISTER = 30001
REGISTERS = 400  # 30001..30400: every value of the SDM630 model lies inside
START_TIMEOUT_S = 5.0

# register → what it holds (units as the model expects: V, A, W, VAr, Hz, kWh)
VOLTAGE = (30001, 30003, 30005)
CURRENT = (30007, 30009, 30011)
POWER = (30013, 30015, 30017)
REACTIVE_POWER = (30025, 30027, 30029)
POWER_TOTAL = 30053
REACTIVE_POWER_TOTAL = 30061
FREQUENCY = 30071
IMPORT_TOTAL = 30073
EXPORT_TOTAL = 30075
IMPORT = (30347, 30349, 30351)
EXPORT = (30353, 30355, 30357)


def register_values(v: MeterValues) -> dict[int, float]:
    """Register number → float value of the SDM630 bank for a board reading."""
    regs: dict[int, float] = {}
    for i in range(3):
        regs[VOLTAGE[i]] = v.voltage_V[i]
        regs[CURRENT[i]] = v.current_A[i]
        regs[POWER[i]] = v.power_W[i]
        regs[REACTIVE_POWER[i]] = 0.0
        regs[IMPORT[i]] = v.energy_import_Wh[i] / 1000.0
        regs[EXPORT[i]] = 0.0
    regs[POWER_TOTAL] = v.power_total_W
    regs[REACTIVE_POWER_TOTAL] = 0.0
    regs[FREQUENCY] = v.frequency_Hz
    regs[IMPORT_TOTAL] = v.energy_import_total_Wh / 1000.0
    regs[EXPORT_TOTAL] = 0.0
    return regs


def encode(values: dict[int, float]) -> list[int]:
    """The whole bank as 16-bit words (address 0 = register 30001); unused words read 0."""
    words = [0] * REGISTERS
    for register, value in values.items():
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        address = register - BASE_REGISTER
        words[address], words[address + 1] = hi, lo
    return words


def decode(words: list[int]) -> float:
    """Two registers (high word first) back to a float; for clients and tests."""
    value: float = struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0]
    return value


class SimMeter:
    """The meter on a pty pair: ``start()`` makes ``client_link`` usable, ``stop()`` removes it."""

    def __init__(self, values: Callable[[], MeterValues], client_link: str | Path, device_id: int = 1) -> None:
        self.values = values
        self.client_link = Path(client_link)
        self.device_id = device_id
        self.reads = 0  # input-register reads answered
        self._dir: Path | None = None
        self._socat: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def server_link(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the meter is not started")
        return self._dir / "meter"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> SimMeter:
        """Start socat and the Modbus server; returns when the server listens on the pty.

        socat dies with the thread that started it (PR_SET_PDEATHSIG), so nothing outlives a
        killed stack: call this from a thread that lives as long as the meter (not a worker thread).
        """
        exe = shutil.which("socat")
        if exe is None:
            raise HardwareError("the simulated meter needs socat (apt-get install socat)")
        if self.client_link.is_symlink() or self.client_link.exists():
            self.client_link.unlink()  # a link left by a run that was killed
        self.client_link.parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="evpy-meter-"))
        self._socat = subprocess.Popen(
            [
                exe,
                "pty,raw,echo=0,link=" + str(self.server_link),
                "pty,raw,echo=0,link=" + str(self.client_link),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=set_pdeathsig,  # noqa: PLW1509 - no locks are taken between fork and exec
        )
        try:
            deadline = time.monotonic() + timeout_s
            while not (self.server_link.exists() and self.client_link.exists()):
                if self._socat.poll() is not None:
                    err = self._socat.stderr.read().decode(errors="replace") if self._socat.stderr else ""
                    raise HardwareError(f"socat for the simulated meter exited: {err.strip()}")
                if time.monotonic() > deadline:
                    raise HardwareError("socat did not make the meter's pty pair in time")
                time.sleep(0.01)
            self._thread = threading.Thread(target=self._serve, name="sim-meter", daemon=True)
            self._thread.start()
            if not self._started.wait(timeout_s) or self._error is not None:
                raise HardwareError(f"the simulated meter did not start: {self._error}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended already
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._socat is not None:
            self._socat.terminate()
            try:
                self._socat.wait(3)
            except subprocess.TimeoutExpired:
                self._socat.kill()
                self._socat.wait()
            if self._socat.stderr is not None:
                self._socat.stderr.close()
            self._socat = None
        with contextlib.suppress(FileNotFoundError):
            if self.client_link.is_symlink():
                self.client_link.unlink()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- the server's thread ------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as err:  # reported by start(), or logged when it ends later
            self._error = err
            log.exception("the simulated meter stopped")
        finally:
            self._started.set()

    async def _main(self) -> None:
        from pymodbus import FramerType
        from pymodbus.constants import ExcCodes
        from pymodbus.exceptions import NoSuchIdException
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        async def on_access(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if function_code != 4 or set_values is not None:
                return ExcCodes.ILLEGAL_FUNCTION
            registers[:] = encode(register_values(self.values()))
            self.reads += 1
            return None

        async def elsewhere(*_: object) -> ExcCodes | None:
            raise NoSuchIdException  # another device on the bus: stay silent, as a real meter does

        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()

        def bank() -> list[SimData]:
            return [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]

        # id 0 catches every other id (pymodbus answers those itself otherwise)
        devices = [SimDevice(id=self.device_id, simdata=bank(), action=on_access)]
        devices.append(SimDevice(id=0, simdata=bank(), action=elsewhere))
        server = ModbusSerialServer(
            devices, framer=FramerType.RTU, port=str(self.server_link), baudrate=9600, ignore_missing_devices=True
        )
        await server.serve_forever(background=True)
        self._started.set()
        try:
            await self._stopped.wait()
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
