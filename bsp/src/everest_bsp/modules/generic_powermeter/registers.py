# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""From a meter model to reads on the wire, and from the registers read to a Powermeter value.

Addresses follow EVerest's GenericPowermeter, so that its model files mean the same here:
input registers (function code 4) are given by their datasheet numbers and sent as
``number - modbus_base_address`` (30001 -> 0 with the default base); holding registers
(function code 3) are sent as written in the file.

A poll reads each run of adjacent registers of one table in one request (at most 125 registers),
never registers between two values: some meters answer reads of unmapped registers with an
exception. An Eastron SDM630 model needs 6 requests instead of 24.

Values: ``raw * multiplier * 10^exponent``, the exponent a signed 16-bit register. Floats are
IEEE 754 single precision; their decimal value is cut to the 7 significant digits a float32
carries, so 230.1 V reads 230.1 and not 230.10000610351562.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from everest_bsp.modules.generic_powermeter.model import FIRST_LEVEL, MeterModel, Source
from everest_py.errors import ConfigError

MAX_REGISTERS_PER_READ = 125  # Modbus Application Protocol v1.1b3 §6.3, §6.4

_FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f", "uint64": "Q", "int64": "q"}

# model quantity -> (key in types/powermeter.yaml#/Powermeter, slot of the first level)
SLOTS = {
    "energy_Wh_import": ("energy_Wh_import", "total"),
    "energy_Wh_export": ("energy_Wh_export", "total"),
    "power_W": ("power_W", "total"),
    "voltage_V": ("voltage_V", "DC"),
    "reactive_power_VAR": ("VAR", "total"),
    "current_A": ("current_A", "DC"),
    "frequency_Hz": ("frequency_Hz", "L1"),
}
# units.yaml types that require `total`: the sum of the phases stands in when the meter has none
NEEDS_TOTAL = ("energy_Wh_import", "energy_Wh_export", "power_W", "VAR")


@dataclass(frozen=True)
class Field:
    """One value of the model with the wire addresses of its registers."""

    source: Source
    address: int
    exponent_address: int | None  # None: no exponent register


@dataclass(frozen=True)
class Read:
    """One request: ``count`` registers from ``address`` with ``function_code``."""

    function_code: int
    address: int
    count: int


@dataclass(frozen=True)
class Plan:
    fields: tuple[Field, ...]
    reads: tuple[Read, ...]

    @property
    def registers(self) -> int:
        return sum(r.count for r in self.reads)


Words = Mapping[tuple[int, int], int]  # (function code, wire address) -> register


def wire_address(number: int, function_code: int, base: int) -> int:
    return number - base if function_code == 4 else number


def plan(model: MeterModel, modbus_base_address: int) -> Plan:
    """The fields of ``model`` and the reads of one poll; ConfigError for addresses off the wire."""
    issues = []
    fields = []
    for s in model.sources:
        address = wire_address(s.start_register, s.function_code, modbus_base_address)
        exp_address = None
        if s.exponent_register:
            exp_address = wire_address(s.exponent_register, s.exponent_function_code, modbus_base_address)
        for key, a, count in (("start_register", address, s.num_registers), ("exponent_register", exp_address, 1)):
            if a is not None and not (a >= 0 and a + count - 1 <= 0xFFFF):
                issues.append(
                    f"{model.path}: {s.key}.{key}: register {a + modbus_base_address} is not on the wire with "
                    f"modbus_base_address {modbus_base_address} (input registers are sent as number - base)"
                )
        fields.append(Field(s, address, exp_address))
    if issues:
        raise ConfigError(issues)
    wanted: set[tuple[int, int]] = set()
    for f in fields:
        wanted.update((f.source.function_code, f.address + i) for i in range(f.source.num_registers))
        if f.exponent_address is not None:
            wanted.add((f.source.exponent_function_code, f.exponent_address))
    return Plan(tuple(fields), tuple(_runs(wanted)))


def _runs(wanted: set[tuple[int, int]]) -> list[Read]:
    reads: list[Read] = []
    for fc, address in sorted(wanted):
        last = reads[-1] if reads else None
        if (
            last is not None
            and last.function_code == fc
            and last.address + last.count == address
            and last.count < MAX_REGISTERS_PER_READ
        ):
            reads[-1] = Read(fc, last.address, last.count + 1)
        else:
            reads.append(Read(fc, address, 1))
    return reads


def decode(words: list[int], data_type: str, word_order: str = "big") -> float:
    """The number in ``words`` (16-bit registers)."""
    if word_order == "little":
        words = list(reversed(words))
    raw = struct.pack(f">{len(words)}H", *words)
    (value,) = struct.unpack(f">{_FORMATS[data_type]}", raw)
    if data_type == "float32":
        return float(f"{value:.7g}")
    return float(value)


def to_int16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def value_of(field: Field, words: Words) -> float:
    s = field.source
    registers = [words[(s.function_code, field.address + i)] for i in range(s.num_registers)]
    value = decode(registers, s.data_type, s.word_order) * s.multiplier
    if field.exponent_address is not None:
        value *= 10.0 ** to_int16(words[(s.exponent_function_code, field.exponent_address)])
    # cut the noise of the binary multiplication (1234.567 * 1000 -> 1234567.0000000002)
    return float(f"{value:.12g}")


def reading(plan_: Plan, words: Words, meter_id: str, timestamp: str) -> dict[str, Any]:
    """A types/powermeter.yaml#/Powermeter value from the registers of one poll."""
    out: dict[str, Any] = {"timestamp": timestamp, "meter_id": meter_id}
    for f in plan_.fields:
        key, first = SLOTS[f.source.quantity]
        slot = first if f.source.level == FIRST_LEVEL else f.source.level
        out.setdefault(key, {})[slot] = value_of(f, words)
    for key in NEEDS_TOTAL:
        part = out.get(key)
        if part is not None and "total" not in part:
            part["total"] = float(f"{sum(part.values()):.12g}")
    return out
