# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated chip's simulator side: broken lines (fault injection) and refusing corrupt chip files."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from everest_bsp._native import ffi, lib
from everest_bsp.hal.errors import NotFoundError
from everest_bsp.hal.gpio import LineSettings, request_lines
from everest_bsp.hal.simchip import SimChip
from everest_bsp.sim.tarragon_tree import TarragonTree
from everest_py.errors import HardwareError

OUT = LineSettings(output=True)
LINES = ["L0", "L1", "L2"]


def test_a_faulted_line_fails_writes_with_its_errno_and_keeps_its_level(tree: TarragonTree) -> None:
    chip = tree.chip("RELAY_1_ENABLE")
    with request_lines(tree.root, "relays", {"RELAY_1_ENABLE": OUT, "RELAY_2_ENABLE": OUT}) as req:
        req.set("RELAY_1_ENABLE", True)
        chip.set_fault("RELAY_1_ENABLE", errno.EIO)
        assert chip.info("RELAY_1_ENABLE").fault == errno.EIO
        with pytest.raises(HardwareError, match=os.strerror(errno.EIO)):
            req.set("RELAY_1_ENABLE", False)
        assert tree.level("RELAY_1_ENABLE") is True, "a failed write leaves the level"
        assert req.get("RELAY_1_ENABLE") is True
        req.set("RELAY_2_ENABLE", True)  # the other line of the same chip still works
        assert tree.level("RELAY_2_ENABLE") is True
        # the C side (ln_set, what the CP core uses) sees the same errno
        assert lib.ln_set(req.native("RELAY_1_ENABLE"), 0) == -errno.EIO
        chip.set_fault("RELAY_1_ENABLE", 0)
        assert chip.info("RELAY_1_ENABLE").fault == 0
        req.set("RELAY_1_ENABLE", False)
        assert tree.level("RELAY_1_ENABLE") is False


def test_a_faulted_line_fails_a_whole_set_many(tree: TarragonTree) -> None:
    chip = tree.chip("RELAY_2_ENABLE")
    with request_lines(tree.root, "relays", {"RELAY_1_ENABLE": OUT, "RELAY_2_ENABLE": OUT}) as req:
        chip.set_fault("RELAY_2_ENABLE", errno.ENXIO)
        with pytest.raises(HardwareError, match=os.strerror(errno.ENXIO)):
            req.set_many({"RELAY_1_ENABLE": True, "RELAY_2_ENABLE": True})
        assert (tree.level("RELAY_1_ENABLE"), tree.level("RELAY_2_ENABLE")) == (False, False), "nothing changed"
        assert not tree.output_events(), "no level change was made"
        chip.set_fault("RELAY_2_ENABLE", 0)
        req.set_many({"RELAY_1_ENABLE": True, "RELAY_2_ENABLE": True})
        assert (tree.level("RELAY_1_ENABLE"), tree.level("RELAY_2_ENABLE")) == (True, True)


def test_a_fault_is_seen_through_every_mapping_and_checked(tree: TarragonTree) -> None:
    with SimChip.open(tree.chip("CP_INVERT").path) as other:
        other.set_fault("CP_INVERT", errno.ETIMEDOUT)
        with (
            request_lines(tree.root, "cp", {"CP_INVERT": OUT}) as req,
            pytest.raises(HardwareError, match=os.strerror(errno.ETIMEDOUT)),
        ):
            req.set("CP_INVERT", True)
        with pytest.raises(ValueError):
            other.set_fault("CP_INVERT", -1)
        with pytest.raises(NotFoundError):
            other.set_fault("NO_SUCH_LINE", errno.EIO)


def test_an_overrun_output_ring_is_counted_not_silent(tree: TarragonTree, caplog: pytest.LogCaptureFixture) -> None:
    chip = tree.chip("RELAY_1_ENABLE")
    ring = int(lib.SIMGPIO_RING)
    changes = ring + 300
    chip.output_events()
    with request_lines(tree.root, "relays", {"RELAY_1_ENABLE": OUT}) as req:
        for i in range(changes):
            req.set("RELAY_1_ENABLE", i % 2 == 0)
        events = chip.output_events()
        assert len(events) == ring, "the ring keeps the newest changes"
        assert chip.output_lost == changes - ring
        assert [e.level for e in events[-2:]] == [(changes - 2) % 2 == 0, (changes - 1) % 2 == 0], "newest last"
        assert "output changes lost" in caplog.text
        req.set("RELAY_1_ENABLE", True)  # read in time: nothing more lost
        assert [e.level for e in chip.output_events()] == [True]
        assert chip.output_lost == changes - ring


# -- corrupt chip files -----------------------------------------------------------------------------

MAGIC_AT, NLINES_AT, SIZE_AT = 0, 4, 8  # the first words of struct simgpio_shm


@pytest.fixture
def chip_bytes(tmp_path: Path) -> Iterator[bytes]:
    path = tmp_path / "gpiochip7"
    with SimChip.create(path, "test", LINES):
        pass
    yield path.read_bytes()


def open_rc(path: Path) -> int:
    out = ffi.new("struct simgpio_chip **")
    rc = int(lib.simgpio_open(str(path).encode(), out))
    if rc == 0:
        lib.simgpio_close(out[0])
    return rc


def patched(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def test_an_intact_copy_opens(tmp_path: Path, chip_bytes: bytes) -> None:
    path = tmp_path / "gpiochip0"
    path.write_bytes(chip_bytes)
    with SimChip.open(path) as chip:
        assert chip.line_names == LINES


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: patched(d, MAGIC_AT, 0x31504753), id="older-layout-magic"),
        pytest.param(lambda d: patched(d, MAGIC_AT, 0), id="no-magic"),
        pytest.param(lambda d: patched(d, NLINES_AT, 65), id="too-many-lines"),
        pytest.param(lambda d: patched(d, NLINES_AT, 0xFFFFFFFF), id="huge-line-count"),
        pytest.param(lambda d: patched(d, SIZE_AT, 1234), id="size-field"),
        pytest.param(lambda d: d[:-4096], id="truncated"),
        pytest.param(lambda d: d + b"\0" * 4096, id="too-long"),
        pytest.param(lambda d: b"not a chip", id="foreign"),
    ],
)
def test_a_corrupt_chip_file_is_refused(tmp_path: Path, chip_bytes: bytes, corrupt: object) -> None:
    path = tmp_path / "gpiochip0"
    path.write_bytes(corrupt(chip_bytes))  # type: ignore[operator]
    assert open_rc(path) == -errno.EINVAL
    with pytest.raises(NotFoundError, match=os.strerror(errno.EINVAL)):
        SimChip.open(path)
