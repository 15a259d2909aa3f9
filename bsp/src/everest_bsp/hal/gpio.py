# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""GPIO lines by name, as libgpiod v2 requests them: real chips through ``gpiod``, simulated ones natively.

A request names its lines and their settings, holds them exclusively under a consumer name, reads
and drives them with logical values (active-low applied) and reports edge events of its inputs with
CLOCK_MONOTONIC timestamps, after the configured debounce.  ``native(name)`` gives the C helpers a
``struct ln_ref`` for the same line, so a C thread can switch it without Python.
"""

from __future__ import annotations

import contextlib
import enum
import stat
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from everest_bsp.hal.errors import LineBusyError, LineNotFoundError, NotFoundError
from everest_py.errors import HardwareError


class Edge(enum.Enum):
    NONE = "none"
    RISING = "rising"
    FALLING = "falling"
    BOTH = "both"


@dataclass(frozen=True)
class LineSettings:
    """How one line is requested; ``value`` is the initial logical output level."""

    output: bool = False
    active_low: bool = False
    edge: Edge = Edge.NONE
    debounce_us: int = 0
    value: bool = False


@dataclass(frozen=True)
class EdgeEvent:
    line: str
    rising: bool  # logical edge: with active-low, a physical falling edge is rising
    timestamp_ns: int  # CLOCK_MONOTONIC


def chip_paths(root: str | Path) -> list[Path]:
    def number(p: Path) -> int:
        digits = p.name.removeprefix("gpiochip")
        return int(digits) if digits.isdigit() else 1 << 30

    return sorted((Path(root) / "dev").glob("gpiochip*"), key=number)


def _is_simulated(path: Path) -> bool:
    return stat.S_ISREG(path.stat().st_mode)


def find_line(root: str | Path, name: str) -> tuple[Path, int]:
    """The chip and offset of the line called ``name`` (the first chip that has one wins)."""
    for path in chip_paths(root):
        try:
            if _is_simulated(path):
                from everest_bsp.hal.simchip import SimChip

                with SimChip.open(path) as chip:
                    offset = chip.find(name)
            else:
                import gpiod

                with gpiod.Chip(str(path)) as rchip:
                    offset = rchip.line_offset_from_id(name)
        except (OSError, NotFoundError):
            continue
        if offset is not None:
            return path, offset
    raise LineNotFoundError(f"no GPIO line named '{name}' on the chips under {Path(root) / 'dev'}")


class LineRequest(ABC):
    """Lines held by one consumer; single-chip requests are the unit the backends implement."""

    consumer: str
    names: tuple[str, ...]

    @abstractmethod
    def get(self, name: str) -> bool: ...

    @abstractmethod
    def set(self, name: str, value: bool) -> None: ...

    @abstractmethod
    def set_many(self, values: Mapping[str, bool]) -> None:
        """Drive several outputs at once (one ioctl per chip)."""

    @abstractmethod
    def wait_edge_events(self, timeout_s: float) -> bool:
        """Block until an edge event is ready (True) or the timeout passed; run it in a thread."""

    @abstractmethod
    def read_edge_events(self) -> list[EdgeEvent]: ...

    @abstractmethod
    def native(self, name: str) -> Any:
        """A ``struct ln_ref *`` (cffi) for the C helpers; valid while this request is held."""

    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> LineRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def request_lines(root: str | Path, consumer: str, lines: Mapping[str, LineSettings]) -> LineRequest:
    """Request ``lines`` (by name) for ``consumer``; raises LineNotFoundError or LineBusyError."""
    by_chip: dict[Path, dict[str, tuple[int, LineSettings]]] = {}
    for name, settings in lines.items():
        path, offset = find_line(root, name)
        by_chip.setdefault(path, {})[name] = (offset, settings)
    parts: list[LineRequest] = []
    try:
        for path, chip_lines in by_chip.items():
            if _is_simulated(path):
                from everest_bsp.hal.simchip import SimLineRequest

                parts.append(SimLineRequest(path, consumer, chip_lines))
            else:
                parts.append(_GpiodRequest(path, consumer, chip_lines))
    except BaseException:
        for p in parts:
            p.release()
        raise
    return parts[0] if len(parts) == 1 else _MultiChipRequest(consumer, parts)


class _MultiChipRequest(LineRequest):
    """Lines spread over several chips; edge waits poll the chips in turn."""

    POLL_S = 0.005

    def __init__(self, consumer: str, parts: Iterable[LineRequest]) -> None:
        self.consumer = consumer
        self._parts = list(parts)
        self._owner = {n: p for p in self._parts for n in p.names}
        self.names = tuple(self._owner)

    def _part(self, name: str) -> LineRequest:
        try:
            return self._owner[name]
        except KeyError:
            raise HardwareError(f"line '{name}' is not part of this request") from None

    def get(self, name: str) -> bool:
        return self._part(name).get(name)

    def set(self, name: str, value: bool) -> None:
        self._part(name).set(name, value)

    def set_many(self, values: Mapping[str, bool]) -> None:
        for part in self._parts:
            mine = {n: v for n, v in values.items() if self._part(n) is part}
            if mine:
                part.set_many(mine)

    def wait_edge_events(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            for part in self._parts:
                if part.wait_edge_events(0):
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.POLL_S, left))

    def read_edge_events(self) -> list[EdgeEvent]:
        events = [e for part in self._parts for e in part.read_edge_events()]
        return sorted(events, key=lambda e: e.timestamp_ns)

    def native(self, name: str) -> Any:
        return self._part(name).native(name)

    def release(self) -> None:
        for part in self._parts:
            part.release()


class _GpiodRequest(LineRequest):
    """A request on a real chip through the libgpiod v2 Python bindings."""

    def __init__(self, path: Path, consumer: str, lines: Mapping[str, tuple[int, LineSettings]]) -> None:
        import gpiod
        from gpiod.line import Direction, Value
        from gpiod.line import Edge as GEdge

        edges = {Edge.NONE: GEdge.NONE, Edge.RISING: GEdge.RISING, Edge.FALLING: GEdge.FALLING, Edge.BOTH: GEdge.BOTH}
        self.consumer = consumer
        self.names = tuple(lines)
        self._offsets = {name: off for name, (off, _) in lines.items()}
        self._by_offset = {off: name for name, off in self._offsets.items()}
        config: dict[Iterable[int | str] | int | str, gpiod.LineSettings | None] = {}
        for _name, (off, s) in lines.items():
            config[off] = gpiod.LineSettings(
                direction=Direction.OUTPUT if s.output else Direction.INPUT,
                active_low=s.active_low,
                edge_detection=edges[s.edge],
                debounce_period=timedelta(microseconds=s.debounce_us),
                output_value=Value.ACTIVE if s.value else Value.INACTIVE,
            )
        try:
            self._req = gpiod.request_lines(str(path), consumer=consumer, config=config)
        except OSError as err:
            if err.errno == 16:  # EBUSY
                raise LineBusyError(f"{', '.join(lines)} on {path}: already requested") from err
            raise HardwareError(f"requesting {', '.join(lines)} on {path} failed: {err}") from err
        self._value = Value
        self._native: dict[str, Any] = {}

    def get(self, name: str) -> bool:
        return bool(self._req.get_value(self._offsets[name]) == self._value.ACTIVE)

    def set(self, name: str, value: bool) -> None:
        self._req.set_value(self._offsets[name], self._value.ACTIVE if value else self._value.INACTIVE)

    def set_many(self, values: Mapping[str, bool]) -> None:
        v = self._value
        self._req.set_values({self._offsets[n]: v.ACTIVE if on else v.INACTIVE for n, on in values.items()})

    def wait_edge_events(self, timeout_s: float) -> bool:
        return bool(self._req.wait_edge_events(timedelta(seconds=max(0.0, timeout_s))))

    def read_edge_events(self) -> list[EdgeEvent]:
        import gpiod

        return [
            EdgeEvent(
                self._by_offset[e.line_offset],
                e.event_type == gpiod.EdgeEvent.Type.RISING_EDGE,
                int(e.timestamp_ns),
            )
            for e in self._req.read_edge_events()
        ]

    def native(self, name: str) -> Any:
        from everest_bsp._native import ffi, lib

        ref = self._native.get(name)
        if ref is None:
            ref = ffi.new("struct ln_ref *")
            ref.kind = lib.LN_UAPI
            ref.fd = self._req.fd
            ref.index = list(self._req.offsets).index(self._offsets[name])
            self._native[name] = ref
        return ref

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self._req.release()


__all__ = [
    "Edge",
    "EdgeEvent",
    "LineBusyError",
    "LineNotFoundError",
    "LineRequest",
    "LineSettings",
    "NotFoundError",
    "chip_paths",
    "find_line",
    "request_lines",
]
