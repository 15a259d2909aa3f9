# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated GPIO chip (native/simgpio.c): the consumer's request and the simulator's view.

A chip is a regular file under ``<root>/dev/gpiochipN`` shared by every process that maps it.
Drivers reach it through :func:`everest_bsp.hal.gpio.request_lines` like a real chip; the board
simulator uses :class:`SimChip` to apply levels to inputs (``set_pull``), to read and wait for what
the drivers drive (``physical``, ``output_events``), to break a line's writes (``set_fault``, an
I/O expander that stops answering) and to release the lines of dead processes.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everest_bsp._native import ffi, lib
from everest_bsp.hal.errors import LineBusyError, NotFoundError
from everest_bsp.hal.gpio import Edge, EdgeEvent, LineRequest, LineSettings
from everest_py.errors import HardwareError

_BATCH = 64
_RING = int(lib.SIMGPIO_RING)

log = logging.getLogger(__name__)


def _check(rc: int, what: str) -> int:
    if rc < 0:
        if -rc == errno.EBUSY:
            raise LineBusyError(f"{what}: line already requested")
        raise HardwareError(f"{what}: {os.strerror(-rc)}")
    return rc


@dataclass(frozen=True)
class LineInfo:
    name: str
    consumer: str
    owner_pid: int
    output: bool
    active_low: bool
    pull: bool
    driven: bool
    fault: int = 0  # errno that writes to the line fail with (SimChip.set_fault); 0: none

    @property
    def requested(self) -> bool:
        return self.owner_pid != 0


@dataclass(frozen=True)
class LevelChange:
    line: str
    offset: int
    level: bool  # physical
    timestamp_ns: int


class SimChip:
    """One mapping of a simulated chip file."""

    def __init__(self, handle: Any, path: Path) -> None:
        self._h = handle
        self.path = path
        name = ffi.new("char[32]")
        label = ffi.new("char[32]")
        lib.simgpio_chip_name(handle, name, label)
        self.name = ffi.string(name).decode()
        self.label = ffi.string(label).decode()
        self.line_names = [self.info(i).name for i in range(lib.simgpio_nlines(handle))]
        self._out_cursor = ffi.new("uint64_t *", lib.simgpio_output_head(handle))
        self.output_lost = 0  # output changes overwritten before output_events read them (ring overrun)

    @classmethod
    def create(cls, path: str | Path, label: str, line_names: Sequence[str]) -> SimChip:
        """Make a new chip file (its ``name`` is the file name, as ``gpiochipN``)."""
        p = Path(path)
        keep = [ffi.new("char[]", n.encode()) for n in line_names]
        arr = ffi.new("const char *[]", keep)
        out = ffi.new("struct simgpio_chip **")
        _check(lib.simgpio_create(str(p).encode(), p.name.encode(), label.encode(), arr, len(keep), out), str(p))
        return cls(out[0], p)

    @classmethod
    def open(cls, path: str | Path) -> SimChip:
        out = ffi.new("struct simgpio_chip **")
        rc = lib.simgpio_open(str(path).encode(), out)
        if rc < 0:
            raise NotFoundError(f"{path}: not a simulated GPIO chip ({os.strerror(-rc)})")
        return cls(out[0], Path(path))

    @property
    def handle(self) -> Any:
        return self._h

    def close(self) -> None:
        if self._h is not None:
            lib.simgpio_close(self._h)
            self._h = None

    def __enter__(self) -> SimChip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, name: str) -> int | None:
        rc = lib.simgpio_find(self._h, name.encode())
        return None if rc < 0 else int(rc)

    def offset(self, name: str) -> int:
        off = self.find(name)
        if off is None:
            raise NotFoundError(f"{self.path}: no line named '{name}'")
        return off

    def info(self, offset: int | str) -> LineInfo:
        off = self.offset(offset) if isinstance(offset, str) else offset
        i = ffi.new("struct simgpio_info *")
        _check(lib.simgpio_info(self._h, off, i), f"{self.path}: line {off}")
        return LineInfo(
            ffi.string(i.name).decode(),
            ffi.string(i.consumer).decode(),
            int(i.owner_pid),
            bool(i.flags & lib.SIMGPIO_OUTPUT),
            bool(i.flags & lib.SIMGPIO_ACTIVE_LOW),
            bool(i.pull),
            bool(i.driven),
            int(i.fault),
        )

    # -- the simulator's side --------------------------------------------------------------------
    def set_pull(self, name: str, level: bool) -> None:
        """Apply a physical level from outside (what an input reads when nothing drives it)."""
        _check(lib.simgpio_set_pull(self._h, self.offset(name), int(level)), f"{self.path}: {name}")

    def set_fault(self, name: str, errno_value: int) -> None:
        """Make every write to ``name`` fail with ``errno_value`` (its level stays), as a broken I/O
        expander does; 0 repairs the line.  Holds for every process that maps the chip."""
        if not 0 <= errno_value <= 4095:
            raise ValueError(f"errno {errno_value} outside 0..4095")
        _check(lib.simgpio_set_fault(self._h, self.offset(name), errno_value), f"{self.path}: {name}")

    def physical(self, name: str) -> bool:
        return bool(_check(lib.simgpio_physical(self._h, self.offset(name)), f"{self.path}: {name}"))

    def wait_output(self, timeout_s: float) -> bool:
        """Block until a consumer changed an output level after the last ``output_events``."""
        ms = max(0, int(timeout_s * 1000))
        return bool(_check(lib.simgpio_wait_output(self._h, self._out_cursor[0], ms), str(self.path)))

    def output_events(self) -> list[LevelChange]:
        """The output changes since the last call, oldest first.  When more than the ring holds
        (``SIMGPIO_RING``) happened meanwhile, the oldest are gone: they are counted in
        ``output_lost`` and logged, and a simulator that follows levels should re-read ``physical``."""
        buf = ffi.new("struct simgpio_event[]", _BATCH)
        out: list[LevelChange] = []
        while True:
            before = int(self._out_cursor[0])
            n = _check(lib.simgpio_read_output(self._h, self._out_cursor, buf, _BATCH), str(self.path))
            lost = int(self._out_cursor[0]) - before - n  # the cursor jumped over what was overwritten
            if lost > 0:
                self.output_lost += lost
                log.warning("%s: %d output changes lost (read too late, the ring holds %d)", self.path, lost, _RING)
            for i in range(n):
                e = buf[i]
                out.append(LevelChange(self.line_names[e.line], int(e.line), bool(e.level), int(e.ts_ns)))
            if n < _BATCH:
                return out

    def reap(self) -> int:
        """Release lines whose owner process is gone (the kernel does this when the fd closes)."""
        return _check(lib.simgpio_reap(self._h), str(self.path))


def now_ns() -> int:
    """CLOCK_MONOTONIC in ns, the clock of every timestamp of the simulated chips."""
    return int(lib.simgpio_now_ns())


class SimLineRequest(LineRequest):
    """A request on one simulated chip; edge events are debounced here as the kernel does it."""

    def __init__(self, path: Path, consumer: str, lines: Mapping[str, tuple[int, LineSettings]]) -> None:
        self.consumer = consumer
        self.names = tuple(lines)
        self._chip = SimChip.open(path)
        self._settings = {name: s for name, (_, s) in lines.items()}
        self._offsets = {name: off for name, (off, _) in lines.items()}
        self._by_offset = {off: name for name, off in self._offsets.items()}
        n = len(lines)
        offs = ffi.new("uint32_t[]", [self._offsets[x] for x in self.names])
        flags = ffi.new("uint32_t[]", [self._flags(self._settings[x]) for x in self.names])
        deb = ffi.new("uint32_t[]", [self._settings[x].debounce_us for x in self.names])
        vals = ffi.new("uint32_t[]", [int(self._settings[x].value) for x in self.names])
        self._offs = offs
        self._cursor = ffi.new("uint64_t *", lib.simgpio_input_head(self._chip.handle))
        try:
            _check(
                lib.simgpio_request(self._chip.handle, offs, flags, deb, vals, n, consumer.encode()),
                f"{path}: {', '.join(self.names)}",
            )
        except BaseException:
            self._chip.close()
            raise
        self._released = False
        self._native: dict[str, Any] = {}
        # debounce: the last raw change per line not yet reported, and the level last reported
        self._pending: dict[str, tuple[int, bool]] = {}
        self._reported = {x: self.get(x) for x in self.names if self._settings[x].edge is not Edge.NONE}
        self._ready: list[EdgeEvent] = []

    @staticmethod
    def _flags(s: LineSettings) -> int:
        f = lib.SIMGPIO_OUTPUT if s.output else lib.SIMGPIO_INPUT
        if s.active_low:
            f |= lib.SIMGPIO_ACTIVE_LOW
        if s.edge in (Edge.RISING, Edge.BOTH):
            f |= lib.SIMGPIO_EDGE_RISING
        if s.edge in (Edge.FALLING, Edge.BOTH):
            f |= lib.SIMGPIO_EDGE_FALLING
        return int(f)

    def _off(self, name: str) -> int:
        if self._released:
            raise HardwareError(f"request of {self.consumer} was released")
        try:
            return self._offsets[name]
        except KeyError:
            raise HardwareError(f"line '{name}' is not part of this request") from None

    def get(self, name: str) -> bool:
        return bool(_check(lib.simgpio_get(self._chip.handle, self._off(name)), name))

    def set(self, name: str, value: bool) -> None:
        _check(lib.simgpio_set(self._chip.handle, self._off(name), int(value)), name)

    def set_many(self, values: Mapping[str, bool]) -> None:
        names = list(values)
        offs = ffi.new("uint32_t[]", [self._off(n) for n in names])
        vals = ffi.new("int[]", [int(values[n]) for n in names])
        _check(lib.simgpio_set_many(self._chip.handle, offs, vals, len(names)), ", ".join(names))

    # -- edge events -------------------------------------------------------------------------------
    def _drain(self) -> None:
        buf = ffi.new("struct simgpio_event[]", _BATCH)
        while True:
            n = _check(lib.simgpio_read_input(self._chip.handle, self._cursor, buf, _BATCH), self.consumer)
            for i in range(n):
                name = self._by_offset.get(int(buf[i].line))
                if name is None or name not in self._reported:
                    continue
                logical = bool(buf[i].level) != self._settings[name].active_low
                if self._settings[name].debounce_us:
                    self._pending[name] = (int(buf[i].ts_ns), logical)
                else:
                    self._report(name, logical, int(buf[i].ts_ns))
            if n < _BATCH:
                break

    def _mature(self, now: int) -> int | None:
        """Move debounced changes to the ready list; the time the next one matures, if any."""
        nxt: int | None = None
        for name, (ts, level) in list(self._pending.items()):
            due = ts + self._settings[name].debounce_us * 1000
            if due > now:
                nxt = due if nxt is None else min(nxt, due)
                continue
            del self._pending[name]
            self._report(name, level, due)
        self._ready.sort(key=lambda e: e.timestamp_ns)
        return nxt

    def _report(self, name: str, level: bool, timestamp_ns: int) -> None:
        if level == self._reported[name]:
            return  # a bounce that came back within the debounce period
        self._reported[name] = level
        edge = self._settings[name].edge
        if edge is Edge.BOTH or (edge is Edge.RISING) == level:
            self._ready.append(EdgeEvent(name, level, timestamp_ns))

    def wait_edge_events(self, timeout_s: float) -> bool:
        deadline = now_ns() + int(max(0.0, timeout_s) * 1e9)
        while True:
            self._drain()
            now = now_ns()
            nxt = self._mature(now)
            if self._ready:
                return True
            if now >= deadline:
                return False
            until = deadline if nxt is None else min(nxt, deadline)
            ms = max(1, (until - now + 999_999) // 1_000_000)
            _check(lib.simgpio_wait_input(self._chip.handle, self._cursor[0], ms), self.consumer)

    def read_edge_events(self) -> list[EdgeEvent]:
        if not self._ready:
            self.wait_edge_events(0)
        out, self._ready = self._ready, []
        return out

    def native(self, name: str) -> Any:
        ref = self._native.get(name)
        if ref is None:
            ref = ffi.new("struct ln_ref *")
            ref.kind = lib.LN_SIM
            ref.fd = -1
            ref.index = self._off(name)
            ref.chip = self._chip.handle
            self._native[name] = ref
        return ref

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        lib.simgpio_release(self._chip.handle, self._offs, len(self.names))
        self._chip.close()


def wait_for(predicate: Any, timeout_s: float, poll_s: float = 0.002) -> bool:
    """Poll ``predicate()`` until it is true or the timeout passed (for simulators and tests)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
