# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Plain rules of a Modbus RTU transfer: frame sizes, how a long request is split, parity letters.

Sizes follow the Modbus Application Protocol v1.1b3 and the serial line guide (Modbus over Serial
Line v1.02 §2.5.1): an RTU frame is address (1) + PDU + CRC (2), at most 256 bytes, so a read
answers at most 125 registers or 2000 coils and a write multiple carries at most 123 registers.
"""

from __future__ import annotations

from dataclasses import dataclass

# Modbus Application Protocol v1.1b3 §6.3, §6.4, §6.12, §6.1
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_READ_COILS = 2000

# RTU frame overhead: address + function code + CRC
_RTU_OVERHEAD = 1 + 1 + 2

PARITY = {0: "N", 1: "O", 2: "E"}


@dataclass(frozen=True)
class Chunk:
    """One request on the wire: ``count`` items from ``address``; ``offset`` indexes the caller's data."""

    address: int
    count: int
    offset: int


def read_registers_per_frame(max_packet_size: int) -> int:
    """Registers one read may ask for, so that its answer (+ byte count) fits ``max_packet_size``."""
    return max(1, min(MAX_READ_REGISTERS, (max_packet_size - _RTU_OVERHEAD - 1) // 2))


def write_registers_per_frame(max_packet_size: int) -> int:
    """Registers one write multiple may carry (address, quantity and byte count precede the data)."""
    return max(1, min(MAX_WRITE_REGISTERS, (max_packet_size - _RTU_OVERHEAD - 5) // 2))


def read_coils_per_frame(max_packet_size: int) -> int:
    """Coils one read may ask for (8 per data byte of the answer)."""
    return max(1, min(MAX_READ_COILS, (max_packet_size - _RTU_OVERHEAD - 1) * 8))


def split(address: int, count: int, per_frame: int) -> list[Chunk]:
    """``count`` consecutive items from ``address`` in requests of at most ``per_frame`` items.

    The address space of Modbus is 16 bits; a request that would run past 0xFFFF is refused.
    """
    if count < 1:
        raise ValueError(f"a transfer needs at least one item, not {count}")
    if per_frame < 1:
        raise ValueError(f"at least one item must fit into a frame, not {per_frame}")
    if not 0 <= address <= 0xFFFF or address + count - 1 > 0xFFFF:
        raise ValueError(f"addresses {address}..{address + count - 1} leave the 16-bit address space")
    return [Chunk(address + offset, min(per_frame, count - offset), offset) for offset in range(0, count, per_frame)]


def parity_letter(parity: int) -> str:
    """The manifest's parity number as pyserial's letter."""
    try:
        return PARITY[parity]
    except KeyError:
        raise ValueError(f"parity must be 0 (none), 1 (odd) or 2 (even), not {parity}") from None


def bits_per_character(parity: int) -> int:
    """Start bit, 8 data bits, the parity bit if any, one stop bit.

    Modbus over Serial Line §2.5.1 asks for two stop bits without parity; one is common practice
    and what the port is opened with.
    """
    return 10 if parity == 0 else 11


def response_timeout_s(
    initial_timeout_ms: int, within_message_timeout_ms: int, baudrate: int, parity: int, max_packet_size: int
) -> float:
    """How long one attempt waits for a whole answer.

    pymodbus collects an answer until it is complete or one deadline passes; it has no separate
    timer for gaps inside a frame. The deadline therefore covers the first byte
    (``initial_timeout_ms``), the time the longest possible answer takes on the line, and one
    pause inside it (``within_message_timeout_ms``). Only an attempt that fails waits that long.
    """
    frame = min(max_packet_size, 256)
    on_line_s = frame * bits_per_character(parity) / baudrate if baudrate > 0 else 0.0
    return max(1, initial_timeout_ms + within_message_timeout_ms) / 1000.0 + on_line_s
