# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""SerialCommHub: frame arithmetic, and every command over a pty pair against pymodbus's RTU server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from everest_bsp.modules.serial_comm_hub import transfer
from everest_bsp.modules.serial_comm_hub.module import HubConfig
from everest_py.testing import Probe

from .modbus_peer import HOLDING, INPUT, ModbusPeer, PtyPair

MODULE_DIR = Path(__file__).resolve().parents[3] / "bsp" / "src" / "everest_bsp" / "modules" / "serial_comm_hub"


# -- the plain rules ---------------------------------------------------------------------------------------


def test_config_dataclass_matches_the_manifest() -> None:
    keys = yaml.safe_load((MODULE_DIR / "manifest.yaml").read_text())["provides"]["main"]["config"]
    assert [f.name for f in dataclasses.fields(HubConfig)] == list(keys)


@pytest.mark.parametrize(
    ("max_packet_size", "read", "write", "coils"),
    [(256, 125, 123, 2000), (7, 1, 1, 16), (15, 5, 3, 80), (25, 10, 8, 160), (65536, 125, 123, 2000)],
)
def test_items_per_frame(max_packet_size: int, read: int, write: int, coils: int) -> None:
    assert transfer.read_registers_per_frame(max_packet_size) == read
    assert transfer.write_registers_per_frame(max_packet_size) == write
    assert transfer.read_coils_per_frame(max_packet_size) == coils


def test_split() -> None:
    assert transfer.split(100, 12, 5) == [
        transfer.Chunk(100, 5, 0),
        transfer.Chunk(105, 5, 5),
        transfer.Chunk(110, 2, 10),
    ]
    assert transfer.split(0xFFFF, 1, 125) == [transfer.Chunk(0xFFFF, 1, 0)]
    for address, count in ((0xFFFF, 2), (-1, 1), (0, 0)):
        with pytest.raises(ValueError):
            transfer.split(address, count, 10)


def test_parity_and_timeout() -> None:
    assert [transfer.parity_letter(p) for p in (0, 1, 2)] == ["N", "O", "E"]
    with pytest.raises(ValueError):
        transfer.parity_letter(3)
    # 9600 baud, even parity: 256 bytes of 11 bits take 293 ms on the line
    assert transfer.response_timeout_s(500, 100, 9600, 2, 256) == pytest.approx(0.6 + 256 * 11 / 9600)
    assert transfer.response_timeout_s(500, 100, 0, 0, 256) == pytest.approx(0.6)


# -- over the wire --------------------------------------------------------------------------------------------


def conn(module_id: str, impl_id: str = "main") -> dict[str, str]:
    return {"module_id": module_id, "implementation_id": impl_id}


def hub(port: Path, **config: Any) -> dict[str, Any]:
    main = {"serial_port": str(port), "baudrate": 115200, "retries": 2, "initial_timeout_ms": 1000, **config}
    return {"module": "SerialCommHub", "config_implementation": {"main": main}}


def serial_line(directory: Path, device_id: int) -> Iterator[tuple[PtyPair, ModbusPeer]]:
    directory.mkdir()
    pty = PtyPair(directory).start()
    peer = ModbusPeer(pty.device, device_id)
    try:
        yield pty, peer.start()
    finally:
        peer.stop()
        pty.stop()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[PtyPair, ModbusPeer]]:
    yield from serial_line(tmp_path / "line", 1)


@pytest.fixture
def small_line(tmp_path: Path) -> Iterator[tuple[PtyPair, ModbusPeer]]:
    yield from serial_line(tmp_path / "small", 7)


def read(probe: Probe, cmd: str, device: int, address: int, count: int, req: str = "hub") -> Any:
    args = {"target_device_id": device, "first_register_address": address, "num_registers_to_read": count}
    return probe.call(req, cmd, args)


def test_every_command_against_a_real_modbus_server(make_stack, run_probe, line, small_line) -> None:
    (pty, peer), (small_pty, small_peer) = line, small_line
    peer.set_words(HOLDING, 10, 0x1234, 0xABCD, 7)
    peer.set_words(INPUT, 100, *range(1, 131))  # more than one frame can carry
    small_peer.set_words(INPUT, 0, *range(500, 512))
    config = {
        "active_modules": {
            "hub": hub(pty.host),
            "small": hub(small_pty.host, max_packet_size=15, parity=0),
            "probe": {"module": "ProbeModule", "connections": {"hub": [conn("hub")], "small": [conn("small")]}},
        }
    }
    stack, prefix = make_stack(config)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        assert await read(probe, "modbus_read_holding_registers", 1, 10, 3) == {
            "status_code": "Success",
            "value": [0x1234, 0xABCD, 7],
        }
        # 130 input registers: two frames (125 + 5), one answer
        answer = await read(probe, "modbus_read_input_registers", 1, 100, 130)
        assert answer == {"status_code": "Success", "value": list(range(1, 131))}
        assert peer.requests[-2:] == [(4, 100, 125), (4, 225, 5)]

        written = {"target_device_id": 1, "first_register_address": 200, "data_raw": {"data": [1, 2, 65535]}}
        assert await probe.call("hub", "modbus_write_multiple_registers", written) == "Success"
        assert peer.get_words(HOLDING, 200, 3) == [1, 2, 65535]
        single = {"target_device_id": 1, "register_address": 201, "data": 4711}
        assert await probe.call("hub", "modbus_write_single_register", single) == "Success"
        assert peer.get_words(HOLDING, 200, 3) == [1, 4711, 65535]

        coil = {"target_device_id": 1, "coil_address": 5, "data": True}
        assert await probe.call("hub", "modbus_write_single_coil", coil) == "Success"
        coils = {"target_device_id": 1, "first_coil_address": 3, "num_coils_to_read": 4}
        assert await probe.call("hub", "modbus_read_coils", coils) == {
            "status_code": "Success",
            "value": [False, False, True, False],
        }

        # the server answers "illegal data address": an error, sent once (not repeated)
        before = len(peer.requests)
        assert await read(probe, "modbus_read_holding_registers", 1, 5000, 2) == {"status_code": "Error"}
        assert peer.requests_since(before) == [(3, 5000, 2)]
        # nobody answers a read from the broadcast address
        assert await read(probe, "modbus_read_input_registers", 0, 0, 1) == {"status_code": "Error"}
        # the non-standard commands of one isolation monitor are not carried out (as in EVerest)
        assert await read(probe, "nonstd_read", 1, 0, 1) == {"status_code": "Error"}
        assert await read(probe, "nonstd_write", 1, 0, 1) is None

        # max_packet_size 15: 5 registers per read, 3 per write
        before = len(small_peer.requests)
        answer = await read(probe, "modbus_read_input_registers", 7, 0, 12, req="small")
        assert answer == {"status_code": "Success", "value": list(range(500, 512))}
        written = {"target_device_id": 7, "first_register_address": 50, "data_raw": {"data": list(range(8))}}
        assert await probe.call("small", "modbus_write_multiple_registers", written) == "Success"
        assert small_peer.get_words(HOLDING, 50, 8) == list(range(8))
        assert small_peer.requests_since(before) == [
            (4, 0, 5),
            (4, 5, 5),
            (4, 10, 2),
            (16, 50, 3),
            (16, 53, 3),
            (16, 56, 2),
        ]

        # many callers at once: one transfer at a time, every caller gets its own registers
        answers = await asyncio.gather(*(read(probe, "modbus_read_input_registers", 1, 100 + i, 3) for i in range(30)))
        assert [a["value"] for a in answers] == [[i + 1, i + 2, i + 3] for i in range(30)]

    run_probe(prefix, scenario)
    assert stack.stop() == 0, stack.log()


def test_timeouts_and_a_port_that_vanishes_and_returns(make_stack, run_probe, line) -> None:
    pty, peer = line
    peer.set_words(INPUT, 0, 42)
    config = {
        "active_modules": {
            "hub": hub(pty.host, retries=2, initial_timeout_ms=100),
            "probe": {"module": "ProbeModule", "connections": {"hub": [conn("hub")]}},
        }
    }
    stack, prefix = make_stack(config)
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        ok = {"status_code": "Success", "value": [42]}
        assert await read(probe, "modbus_read_input_registers", 1, 0, 1) == ok
        # the device is silent: each of the 1 + 2 attempts times out
        peer.stop()
        assert await read(probe, "modbus_read_input_registers", 1, 0, 1) == {"status_code": "Timeout"}
        # the port goes away and comes back (a USB adapter unplugged and plugged in)
        pty.stop()
        assert await read(probe, "modbus_read_input_registers", 1, 0, 1) == {"status_code": "Error"}
        pty.start()
        peer.start()
        assert await read(probe, "modbus_read_input_registers", 1, 0, 1) == ok

    run_probe(prefix, scenario)
    assert stack.stop() == 0, stack.log()
    log = stack.log()
    assert log.count("device 1 on") == 2, log  # one line when it stopped answering, one when it came back
    assert "answers again" in log
