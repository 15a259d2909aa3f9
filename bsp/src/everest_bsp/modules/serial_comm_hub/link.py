# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The serial line as a Modbus RTU master: pymodbus's client on one worker thread, one transfer at a time.

Every transfer runs as one job on a single worker thread, so two transfers never share the line,
whatever the callers do, and the port is only ever touched by that thread. A job tries each request
``1 + retries`` times; a Modbus exception answer is final and not repeated. A transfer that fails
closes the port, and the next one opens it again: a USB adapter that was unplugged and plugged in,
or a port that vanished and came back, is used again without a restart.

Failures become :class:`Outcome` values (``Error`` or ``Timeout``), never exceptions, because the
hub answers every command with the interface's status values.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from everest_bsp.modules.serial_comm_hub import transfer

# Modbus Application Protocol v1.1b3 §7
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

FC_READ_HOLDING = 3
FC_READ_INPUT = 4


class Status(enum.StrEnum):
    """serial_comm_hub_requests#/StatusCodeEnum."""

    SUCCESS = "Success"
    ERROR = "Error"
    TIMEOUT = "Timeout"


@dataclass(frozen=True)
class LinkSettings:
    port: str
    baudrate: int
    parity: int  # 0 none, 1 odd, 2 even
    rtscts: bool
    ignore_echo: bool
    max_packet_size: int
    timeout_s: float  # one attempt, see transfer.response_timeout_s
    retries: int


@dataclass(frozen=True)
class Outcome:
    """What a transfer gave: a status, the values read (registers or coils) and why it failed."""

    status: Status
    values: Sequence[int] | Sequence[bool] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS


class _Failed(Exception):
    def __init__(self, status: Status, detail: str, final: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.final = final  # an answer that a repetition would not change


Request = Callable[[ModbusSerialClient], ModbusPDU | None]


class _QuietPymodbus(logging.Filter):
    """pymodbus logs every timeout at ERROR; the hub reports link changes itself, once each.

    pymodbus's lines are kept as DEBUG and shown only when the root logger shows debug lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def quiet_pymodbus() -> None:
    logger = logging.getLogger("pymodbus.logging")
    if not any(isinstance(f, _QuietPymodbus) for f in logger.filters):
        logger.addFilter(_QuietPymodbus())


class ModbusLink:
    """One serial port and its Modbus RTU master."""

    def __init__(self, settings: LinkSettings, log: logging.LoggerAdapter[logging.Logger] | logging.Logger) -> None:
        self.settings = settings
        self.log = log
        self._parity = transfer.parity_letter(settings.parity)
        self._client: ModbusSerialClient | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serial-comm-hub")
        self._answering: dict[int, bool] = {}  # device id -> did its last transfer succeed

    # -- the async side: one job per transfer --------------------------------------------------------
    async def _run(self, device: int, what: str, job: Callable[[], Outcome]) -> Outcome:
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self._worker, job)
        except Exception as err:  # noqa: BLE001 - the caller gets an Error status, not an exception
            self.log.error("%s on device %d failed unexpectedly: %r", what, device, err)
            outcome = Outcome(Status.ERROR, detail=repr(err))
        self._report(device, what, outcome)
        return outcome

    def _report(self, device: int, what: str, outcome: Outcome) -> None:
        """Log when a device stops or starts answering, not on every transfer."""
        before = self._answering.get(device)
        self._answering[device] = outcome.ok
        if outcome.ok and before is False:
            self.log.info("device %d on %s answers again", device, self.settings.port)
        elif not outcome.ok and before is not False:
            self.log.warning(
                "device %d on %s: %s failed (%s: %s)",
                device,
                self.settings.port,
                what,
                outcome.status,
                outcome.detail,
            )
        elif not outcome.ok:
            self.log.debug("device %d: %s failed (%s: %s)", device, what, outcome.status, outcome.detail)

    async def read_registers(self, function_code: int, device: int, address: int, count: int) -> Outcome:
        """Read holding (3) or input (4) registers, split into frames that fit ``max_packet_size``."""
        what = f"reading {count} {'input' if function_code == FC_READ_INPUT else 'holding'} register(s) at {address}"
        per_frame = transfer.read_registers_per_frame(self.settings.max_packet_size)

        def job() -> Outcome:
            chunks = _chunks(address, count, per_frame)
            if isinstance(chunks, Outcome):
                return chunks
            if device == 0:
                return Outcome(Status.ERROR, detail="device 0 is the broadcast address; nobody answers a read")
            values: list[int] = []
            for c in chunks:

                def request(client: ModbusSerialClient, c: transfer.Chunk = c) -> ModbusPDU:
                    if function_code == FC_READ_INPUT:
                        return client.read_input_registers(c.address, count=c.count, device_id=device)
                    return client.read_holding_registers(c.address, count=c.count, device_id=device)

                try:
                    response = self._request(request)
                except _Failed as f:
                    return Outcome(f.status, detail=f.detail)
                registers = list(response.registers) if response is not None else []
                if len(registers) != c.count:
                    return Outcome(Status.ERROR, detail=f"asked for {c.count} registers, got {len(registers)}")
                values += registers
            return Outcome(Status.SUCCESS, values)

        return await self._run(device, what, job)

    async def read_coils(self, device: int, address: int, count: int) -> Outcome:
        what = f"reading {count} coil(s) at {address}"
        per_frame = transfer.read_coils_per_frame(self.settings.max_packet_size)

        def job() -> Outcome:
            chunks = _chunks(address, count, per_frame)
            if isinstance(chunks, Outcome):
                return chunks
            if device == 0:
                return Outcome(Status.ERROR, detail="device 0 is the broadcast address; nobody answers a read")
            values: list[bool] = []
            for c in chunks:

                def request(client: ModbusSerialClient, c: transfer.Chunk = c) -> ModbusPDU:
                    return client.read_coils(c.address, count=c.count, device_id=device)

                try:
                    response = self._request(request)
                except _Failed as f:
                    return Outcome(f.status, detail=f.detail)
                bits = list(response.bits) if response is not None else []
                if len(bits) < c.count:  # answers are padded to whole bytes
                    return Outcome(Status.ERROR, detail=f"asked for {c.count} coils, got {len(bits)}")
                values += [bool(b) for b in bits[: c.count]]
            return Outcome(Status.SUCCESS, values)

        return await self._run(device, what, job)

    async def write_registers(self, device: int, address: int, values: Sequence[int]) -> Outcome:
        """Write multiple registers (function code 16), split by ``max_packet_size``; device 0 broadcasts."""
        what = f"writing {len(values)} register(s) at {address}"
        per_frame = transfer.write_registers_per_frame(self.settings.max_packet_size)
        data = list(values)

        def job() -> Outcome:
            chunks = _chunks(address, len(data), per_frame)
            if isinstance(chunks, Outcome):
                return chunks
            for c in chunks:
                part = data[c.offset : c.offset + c.count]

                def request(client: ModbusSerialClient, c: transfer.Chunk = c, part: list[int] = part) -> ModbusPDU:
                    return client.write_registers(c.address, part, device_id=device, no_response_expected=device == 0)

                try:
                    self._request(request)
                except _Failed as f:
                    return Outcome(f.status, detail=f.detail)
            return Outcome(Status.SUCCESS)

        return await self._run(device, what, job)

    async def write_register(self, device: int, address: int, value: int) -> Outcome:
        """Write single register (function code 6)."""

        def request(client: ModbusSerialClient) -> ModbusPDU:
            return client.write_register(address, value, device_id=device, no_response_expected=device == 0)

        return await self._run(device, f"writing register {address}", lambda: self._single(request))

    async def write_coil(self, device: int, address: int, value: bool) -> Outcome:
        """Write single coil (function code 5)."""

        def request(client: ModbusSerialClient) -> ModbusPDU:
            return client.write_coil(address, value, device_id=device, no_response_expected=device == 0)

        return await self._run(device, f"writing coil {address}", lambda: self._single(request))

    async def check(self) -> str:
        """Open the port now; the reason it cannot be opened, or "" (transfers retry it anyway)."""

        def job() -> str:
            try:
                self._open()
            except _Failed as f:
                return f.detail
            return ""

        return await asyncio.get_running_loop().run_in_executor(self._worker, job)

    async def close(self) -> None:
        """Close the port after the transfer in progress; no transfer runs afterwards."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._worker, self._close)
        finally:
            self._worker.shutdown(wait=False, cancel_futures=True)

    # -- the worker thread -----------------------------------------------------------------------------
    def _single(self, request: Request) -> Outcome:
        try:
            self._request(request)
        except _Failed as f:
            return Outcome(f.status, detail=f.detail)
        return Outcome(Status.SUCCESS)

    def _request(self, request: Request) -> ModbusPDU | None:
        """One request frame, repeated up to ``retries`` times; raises _Failed with the last reason."""
        failure = _Failed(Status.ERROR, "not tried")
        for _ in range(1 + self.settings.retries):
            try:
                client = self._open()
                response = request(client)
            except _Failed as f:
                failure = f
                continue
            except ModbusIOException as err:
                # pymodbus raises this for a request nobody answered within the timeout, and for
                # answers of the wrong device or transaction
                if "no response" in str(err).lower():
                    failure = _Failed(Status.TIMEOUT, f"no answer within {self.settings.timeout_s * 1000:.0f} ms")
                else:
                    failure = _Failed(Status.ERROR, _text(err))
                continue
            except (ConnectionException, OSError) as err:  # pyserial's SerialException is an OSError
                self._close()
                failure = _Failed(Status.ERROR, _text(err))
                continue
            except ModbusException as err:
                failure = _Failed(Status.ERROR, _text(err))
                continue
            if response is not None and response.isError():
                code = response.exception_code
                raise _Failed(Status.ERROR, f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})", final=True)
            return response
        # reopen the port for the next transfer: it may have been replaced meanwhile
        self._close()
        raise failure

    def _open(self) -> ModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        s = self.settings
        if s.port.startswith("/") and not os.path.exists(s.port):
            raise _Failed(Status.ERROR, f"{s.port} does not exist")
        client = ModbusSerialClient(
            s.port,
            framer=FramerType.RTU,
            baudrate=s.baudrate,
            parity=self._parity,
            handle_local_echo=s.ignore_echo,
            timeout=s.timeout_s,
            retries=0,  # repetitions are ours: a Modbus exception answer is not repeated
            name="serial_comm_hub",
        )
        if not client.connect():
            raise _Failed(Status.ERROR, f"cannot open {s.port} (busy, or no permission?)")
        if s.rtscts and client.socket is not None:
            client.socket.rtscts = True
        self._client = client
        return client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None


def _chunks(address: int, count: int, per_frame: int) -> list[transfer.Chunk] | Outcome:
    try:
        return transfer.split(address, count, per_frame)
    except ValueError as err:
        return Outcome(Status.ERROR, detail=str(err))


def _text(err: BaseException) -> str:
    return str(err) or type(err).__name__


def settings_from(config: Any) -> LinkSettings:
    """LinkSettings from the hub's implementation config (the manifest's keys)."""
    return LinkSettings(
        port=config.serial_port,
        baudrate=config.baudrate,
        parity=config.parity,
        rtscts=config.rtscts,
        ignore_echo=config.ignore_echo,
        max_packet_size=config.max_packet_size,
        timeout_s=transfer.response_timeout_s(
            config.initial_timeout_ms,
            config.within_message_timeout_ms,
            config.baudrate,
            config.parity,
            config.max_packet_size,
        ),
        retries=config.retries,
    )
