# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The control-pilot core of the Tarragon (native/cp.c) as a Python object with typed events.

The C thread samples the pilot, classifies and debounces it, checks the errors and switches the
relays off by itself when the pilot no longer allows power; Python commands the pilot output and
the relays through this wrapper and reads what happened as events.  ``fileno()`` is an eventfd that
is readable while events are queued (``loop.add_reader``).  The line requests whose ``native()``
refs are in the config must stay held until ``close()``.
"""

from __future__ import annotations

import enum
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from everest_bsp._native import ffi, lib
from everest_bsp.hal.gpio import LineRequest
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.tarragon.cp_logic import CpError, CpState
from everest_py.errors import HardwareError

_BATCH = 64


class OffReason(enum.IntEnum):
    """Why the core switched the relays off by itself."""

    STATE = 1  # the pilot left C/D
    FAULT = 2  # CP short, diode fault or pilot fault
    OUTPUT = 3  # the EVSE side disabled the pilot or drove E/F
    TRIP = 4  # trip input (RCM)
    IO = 5  # a source failed (see IoSource): the pilot or a relay line is unknown


class IoSource(enum.IntEnum):
    """What an ``IoChanged`` is about; one bit per source in ``CpStats.io_faults`` (``mask``)."""

    ADC_POS = 1  # read of the CP+ peak ADC
    ADC_NEG = 2  # read of the CP- peak ADC
    PWM = 3  # write of the PWM duty_cycle or enable
    RESET = 4  # write of a peak-detector reset line
    TRIP = 5  # read of the trip input (RCM)
    INVERT = 6  # write of CP_INVERT (drives the pilot)
    RELAY = 7  # write of a relay line; fails while a relay-off is pending (the core retries it each cycle)

    @property
    def mask(self) -> int:
        return 1 << int(self)


class Refusal(enum.IntEnum):
    """Why ``relays_on`` did not switch."""

    STATE = 1  # pilot not in C/D, or the pilot is disabled or not driven
    FAULT = 2  # a CP error is active
    TRIP = 3  # trip input active
    IO = 4  # a source fails (CpStats.io_faults): measurement, pilot output, trip input or a relay line


class Side(enum.IntEnum):
    POSITIVE = 0
    NEGATIVE = 1


# The Tarragon's line names (its device tree) for the keys of CpCoreConfig.from_hal
TARRAGON_LINES: dict[str, str | None] = {
    "rst_pos": "CP_POSITIVE_PEAK_RST",
    "rst_neg": "CP_NEGATIVE_PEAK_RST",
    "cp_invert": "CP_INVERT",
    "relay1": "RELAY_1_ENABLE",
    "relay2": "RELAY_2_ENABLE",
    "trip": "DIGITAL_IN_2",
}


@dataclass(frozen=True)
class StateChanged:
    t_ns: int  # CLOCK_MONOTONIC
    state: CpState
    previous: CpState
    u_pos_mV: int
    u_neg_mV: int


@dataclass(frozen=True)
class ErrorChanged:
    t_ns: int
    error: CpError
    active: bool
    u_pos_mV: int
    u_neg_mV: int


@dataclass(frozen=True)
class RelaysForcedOff:
    t_ns: int
    reason: OffReason
    mask: int  # the relays that were on and are open now (bit 0: relay 1); one whose off write failed
    # comes in a RelaysForcedOff of its own once the core's retry opened it (IoChanged RELAY meanwhile)


@dataclass(frozen=True)
class Glitch:
    t_ns: int
    side: Side
    suppressed: CpState  # the single measurement that was ignored


@dataclass(frozen=True)
class TripChanged:
    t_ns: int
    active: bool


@dataclass(frozen=True)
class IoChanged:
    t_ns: int
    source: IoSource
    errno: int  # 0: the source works again

    @property
    def failed(self) -> bool:
        return self.errno != 0


CpEvent = StateChanged | ErrorChanged | RelaysForcedOff | Glitch | TripChanged | IoChanged


@dataclass(frozen=True)
class CpStats:
    samples: int
    glitches: int
    forced_off: int
    cycle_ns_last: int
    cycle_ns_max: int
    events_dropped: int
    u_pos_mV: int
    u_neg_mV: int
    state: CpState
    errors: CpError
    relays_on: int
    enabled: bool
    driven: bool
    duty_x100: int
    trip: bool
    io_faults: int
    tid: int
    realtime: bool


@dataclass(frozen=True)
class CpCoreConfig:
    """What the core drives and reads: open file descriptors and ``struct ln_ref *`` (None = absent).

    ``owned_fds`` are closed by ``CpCore.close()``.
    """

    adc_pos_fd: int
    adc_neg_fd: int
    rst_pos: Any
    rst_neg: Any
    cp_invert: Any
    pwm_duty_fd: int
    pwm_enable_fd: int
    pwm_period_fd: int = -1  # -1: the period is left as it is
    period_ns: int = 1_000_000  # 1 kHz (IEC 61851-1)
    relays: tuple[Any, ...] = ()  # relay 1, relay 2 (at most two; None or missing: absent)
    trip: Any = None
    reset_us: int = 1500
    settle_us: int = 2000
    idle_poll_us: int = 10_000
    rt_priority: int = 40  # SCHED_FIFO when allowed; 0: normal scheduling
    owned_fds: tuple[int, ...] = field(default=())

    @classmethod
    def from_hal(
        cls,
        adc_pos: AdcChannel,
        adc_neg: AdcChannel,
        pwm: SysfsPwm,
        lines: LineRequest,
        names: Mapping[str, str | None],
        **options: Any,
    ) -> CpCoreConfig:
        """A config from HAL objects; ``names`` maps rst_pos, rst_neg, cp_invert, relay1, relay2, trip
        to line names in ``lines`` (None or missing relays/trip: absent).  Opens the PWM attributes."""
        fds: list[int] = []
        try:
            for path in (pwm.duty_path, pwm.enable_path, pwm.path / "period"):
                fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        except OSError as err:
            for fd in fds:
                os.close(fd)
            raise HardwareError(f"cannot open the PWM attributes of {pwm.path}: {err.strerror}") from err

        def ref(key: str) -> Any:
            name = names.get(key)
            return None if name is None else lines.native(name)

        return cls(
            adc_pos_fd=adc_pos.fileno(),
            adc_neg_fd=adc_neg.fileno(),
            rst_pos=ref("rst_pos"),
            rst_neg=ref("rst_neg"),
            cp_invert=ref("cp_invert"),
            pwm_duty_fd=fds[0],
            pwm_enable_fd=fds[1],
            pwm_period_fd=fds[2],
            relays=(ref("relay1"), ref("relay2")),
            trip=ref("trip"),
            owned_fds=tuple(fds),
            **options,
        )


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise HardwareError(f"control pilot: {what} failed: {os.strerror(-rc)}")
    return rc


def _copy_line(dst: Any, ref: Any) -> None:
    if ref is None:
        dst.kind = lib.LN_NONE
    else:
        ffi.memmove(ffi.addressof(dst), ref, ffi.sizeof("struct ln_ref"))


def _event(e: Any) -> CpEvent:
    kind, a, b, t = int(e.kind), int(e.a), int(e.b), int(e.t_ns)
    if kind == lib.CP_EV_STATE:
        return StateChanged(t, CpState(a), CpState(b), int(e.u_pos_mV), int(e.u_neg_mV))
    if kind == lib.CP_EV_ERROR:
        return ErrorChanged(t, CpError(a), bool(b), int(e.u_pos_mV), int(e.u_neg_mV))
    if kind == lib.CP_EV_RELAYS_OFF:
        return RelaysForcedOff(t, OffReason(a), b)
    if kind == lib.CP_EV_GLITCH:
        return Glitch(t, Side(a), CpState(b))
    if kind == lib.CP_EV_TRIP:
        return TripChanged(t, bool(b))
    if kind == lib.CP_EV_IO:
        return IoChanged(t, IoSource(b), -a)
    raise HardwareError(f"control pilot: unknown event kind {kind}")


class CpCore:
    """The running control-pilot thread; create, ``start()``, command, ``close()``."""

    def __init__(self, config: CpCoreConfig) -> None:
        self.config = config
        c = ffi.new("struct cp_config *")
        c.adc_pos_fd = config.adc_pos_fd
        c.adc_neg_fd = config.adc_neg_fd
        _copy_line(c.rst_pos, config.rst_pos)
        _copy_line(c.rst_neg, config.rst_neg)
        _copy_line(c.cp_invert, config.cp_invert)
        c.pwm_duty_fd = config.pwm_duty_fd
        c.pwm_enable_fd = config.pwm_enable_fd
        c.pwm_period_fd = config.pwm_period_fd
        c.period_ns = config.period_ns
        if len(config.relays) > 2:
            raise ValueError(f"the core drives at most two relays, not {len(config.relays)}")
        for i, ref in enumerate(config.relays):
            _copy_line(c.relays[i], ref)
        _copy_line(c.trip, config.trip)
        c.reset_us = config.reset_us
        c.settle_us = config.settle_us
        c.idle_poll_us = config.idle_poll_us
        c.rt_priority = config.rt_priority
        out = ffi.new("struct cp_core **")
        _check(lib.cp_create(c, out), "init")
        self._core: Any = out[0]
        self._buf = ffi.new("struct cp_event[]", _BATCH)
        # a core that is dropped without close() still stops its thread
        self._finalizer = weakref.finalize(self, lib.cp_destroy, self._core)

    def _h(self) -> Any:
        if self._core is None:
            raise HardwareError("control pilot: the core is closed")
        return self._core

    def start(self) -> None:
        _check(lib.cp_start(self._h()), "starting the thread")

    def close(self) -> None:
        """Stop the thread; relays off, pilot at F; closes the owned file descriptors."""
        if self._core is None:
            return
        self._core = None
        self._finalizer()
        for fd in self.config.owned_fds:
            os.close(fd)

    def __enter__(self) -> CpCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        """An eventfd, readable while events are queued."""
        return int(lib.cp_event_fd(self._h()))

    def events(self) -> list[CpEvent]:
        """Every queued event, oldest first (clears the eventfd)."""
        out: list[CpEvent] = []
        while True:
            n = _check(lib.cp_read_events(self._h(), self._buf, _BATCH), "reading events")
            out.extend(_event(self._buf[i]) for i in range(n))
            if n < _BATCH:
                return out

    # -- pilot output (each waits for the current sample window to end) ----------------------------
    def enable(self, on: bool) -> None:
        """On: the cached duty is applied and sampling runs; off: 0 % (state F), no sampling."""
        _check(lib.cp_enable(self._h(), int(on)), "enable" if on else "disable")

    def set_duty(self, duty_x100: int) -> None:
        """Duty in hundredths of a percent (0..10000); cached while disabled."""
        if not 0 <= duty_x100 <= 10000:
            raise ValueError(f"duty {duty_x100} outside 0..10000")
        _check(lib.cp_set_duty(self._h(), duty_x100), f"setting the duty to {duty_x100 / 100} %")

    def state_X1(self) -> None:
        """100 %: +12 V without PWM (A/B/C without a charging offer)."""
        _check(lib.cp_state_X1(self._h()), "state X1")

    def state_F(self) -> None:
        """0 %: -12 V."""
        _check(lib.cp_state_F(self._h()), "state F")

    def state_E(self) -> None:
        """100 % for 2 ms, then the pilot is released (0 V, state E)."""
        _check(lib.cp_state_E(self._h()), "state E")

    # -- relays ------------------------------------------------------------------------------------
    def relays_on(self, mask: int) -> Refusal | None:
        """Switch the relays in ``mask`` on; the refusal when the pilot does not allow it.  A failed
        line write raises HardwareError after every relay was opened (the relay source fails)."""
        rc = _check(lib.cp_relays_on(self._h(), mask), f"switching relays {mask:#x} on")
        return None if rc == 0 else Refusal(rc)

    def relays_off(self, mask: int) -> None:
        """Switch the relays in ``mask`` off.  A line that cannot be written raises HardwareError; the
        core opens the others and writes it off every cycle until that works (IoChanged RELAY)."""
        _check(lib.cp_relays_off(self._h(), mask), f"switching relays {mask:#x} off")

    def stats(self) -> CpStats:
        s = ffi.new("struct cp_stats *")
        lib.cp_get_stats(self._h(), s)
        return CpStats(
            samples=int(s.samples),
            glitches=int(s.glitches),
            forced_off=int(s.forced_off),
            cycle_ns_last=int(s.cycle_ns_last),
            cycle_ns_max=int(s.cycle_ns_max),
            events_dropped=int(s.events_dropped),
            u_pos_mV=int(s.u_pos_mV),
            u_neg_mV=int(s.u_neg_mV),
            state=CpState(s.state),
            errors=CpError(s.errors),
            relays_on=int(s.relays_on),
            enabled=bool(s.enabled),
            driven=bool(s.driven),
            duty_x100=int(s.duty_x100),
            trip=bool(s.trip),
            io_faults=int(s.io_faults),
            tid=int(s.tid),
            realtime=bool(s.realtime),
        )


__all__ = [
    "CpCore",
    "CpCoreConfig",
    "CpEvent",
    "CpStats",
    "ErrorChanged",
    "Glitch",
    "IoChanged",
    "IoSource",
    "OffReason",
    "Refusal",
    "RelaysForcedOff",
    "Side",
    "StateChanged",
    "TripChanged",
]
