# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The simulated Charge Control C around the SoC: pilot, car, relays, PP, RCM, power flow and plug lock.

Everything the drivers see goes through the :class:`TarragonTree` only: the board reads what they
drive (GPIO output events with their timestamps, the CP PWM files) and answers with input levels
and ADC counts, as the real board's analogue parts would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everest_bsp.hal.simchip import SimChip
from everest_bsp.sim import physics
from everest_bsp.sim.lock import LockMotorSim
from everest_bsp.sim.physics import CarPilot, PilotDrive, RelayContact
from everest_bsp.sim.stepper import Stepper
from everest_bsp.sim.tarragon_tree import CP_PWM_DEVICE, TarragonTree

log = logging.getLogger(__name__)

CP_INVERT = "CP_INVERT"
RST_POS, RST_NEG = "CP_POSITIVE_PEAK_RST", "CP_NEGATIVE_PEAK_RST"
RELAY_COILS = ("RELAY_1_ENABLE", "RELAY_2_ENABLE")
RELAY_SENSES = ("RELAY_1_SENSE", "RELAY_2_SENSE")
ADC_CP_POS, ADC_CP_NEG, ADC_PP = "voltage2", "voltage3", "voltage5"
REAP_NS = 1_000_000_000  # how often lines of dead driver processes are released
LOCK_STEP_NS = 10_000_000  # the lock is stepped this often, and on each change of its motor lines


class InjectionError(ValueError):
    """An injection with an unknown name or a value of the wrong kind."""


@dataclass(frozen=True)
class BoardConfig:
    """How this board is built and wired; times in ms, currents in A, residual currents in mA."""

    relay_feedback: tuple[str, str] = ("none", "none")  # per relay: none, no or nc
    relay_pull_in_ms: float = 15.0
    relay_drop_out_ms: float = 20.0
    switch_3ph1ph_wiring: str = "none"  # none, serial, simultaneous, mutual (chargebyte-hw.md §2.6)
    rcm_line: str = "DIGITAL_IN_2"
    rcm_active_low: bool = False
    rcm_trip_mA: float = 6.0  # residual current at which the external RCM signals a fault
    grid_phase_count_line: str = ""  # "" = not wired
    grid_phase_count_active_low: bool = False
    grid_phases: int = 3
    grid_voltage_V: float = 230.0
    grid_frequency_Hz: float = 50.0
    pp_ampacity_A: int | None = 32  # rating of the car's cable (None: the cable has no coding resistor)
    noise_counts: int = 3  # peak-to-peak/2 of the uniform noise on CP and PP counts
    seed: int = 0


@dataclass
class CarSide:
    """The car as the board sees it: pilot state, diode, how much it draws and on how many phases."""

    enabled: bool = True  # a disabled car side is no car (state A)
    state: str = "A"
    diode_fault: bool = False
    max_current_A: float = 0.0
    three_phases: bool = True
    power_allowed: bool = True
    residual_mA: float = 0.0


@dataclass(frozen=True)
class MeterValues:
    """What an energy meter on the charger's supply measures (per phase L1..L3)."""

    voltage_V: tuple[float, float, float] = (0.0, 0.0, 0.0)
    current_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    power_W: tuple[float, float, float] = (0.0, 0.0, 0.0)
    energy_import_Wh: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frequency_Hz: float = 0.0

    @property
    def power_total_W(self) -> float:
        return sum(self.power_W)

    @property
    def energy_import_total_Wh(self) -> float:
        return sum(self.energy_import_Wh)


@dataclass(frozen=True)
class BoardState:
    """A consistent snapshot of the board for its owner (the module, tests)."""

    drive: PilotDrive
    peaks_V: tuple[float, float]
    car_view: str  # CP state A..F on the car's end of the pilot
    car_duty_percent: float  # the PWM duty cycle the car measures
    live_phases: int  # phases that reach the car (0: no power at the inlet)
    contacts: tuple[bool, bool]
    pp_ampacity: int | str | None  # A, None (no cable) or "fault"
    rcm_tripped: bool
    residual_mA: float
    meter: MeterValues


class _PwmFiles:
    """The CP PWM's period, duty_cycle and enable files, kept open and re-read from offset 0."""

    def __init__(self, directory: Path) -> None:
        self._fds = {a: os.open(directory / a, os.O_RDONLY | os.O_CLOEXEC) for a in ("period", "duty_cycle", "enable")}
        self._values = dict.fromkeys(self._fds, 0)

    def read(self) -> tuple[int, int, bool]:
        for attr, fd in self._fds.items():
            text = os.pread(fd, 32, 0).split(b"\n", 1)[0].strip()
            # an empty file was caught between the truncation and the write of a new value: keep the old one
            with contextlib.suppress(ValueError):
                self._values[attr] = int(text)
        return self._values["period"], self._values["duty_cycle"], self._values["enable"] == 1

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InjectionError(f"{name} takes true or false, not {value!r}")
    return value


def _number(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise InjectionError(f"{name} takes a number >= {minimum:g}, not {value!r}")
    return float(value)


class TarragonBoardSim(Stepper):
    """The physics around the SoC of a simulated Tarragon, on a :class:`TarragonTree`.

    Run it with :meth:`start`/:meth:`stop` (an own thread that wakes on the drivers' output
    changes or every ``period_s``) or step it by hand with :meth:`step` (``now_ns`` on
    CLOCK_MONOTONIC, the clock of the output events). The board consumes the tree's output events:
    nobody else may read them.

    **Control pilot.** The EVSE side is CP_INVERT (physical 1 = driven; 0 = the pilot floats and
    both peaks read ~0 V) and the PWM ``20fc000.pwm`` (duty = duty_cycle/period while enabled; a
    disabled PWM holds the output low = duty 0). The car side is its state A..E, its diode and the
    wiring faults. The peaks (:func:`physics.cp_peaks`) go to ``voltage2`` (CP+) and ``voltage3``
    (CP-) as raw counts plus uniform noise; a fresh sample is written after each release of
    ``CP_POSITIVE_PEAK_RST`` / ``CP_NEGATIVE_PEAK_RST`` and whenever the physics changes.

    **Relays.** ``RELAY_n_ENABLE`` (active-high coils) move the contacts after the pull-in and
    drop-out times, counted from the coil's edge; ``RELAY_n_SENSE`` follows per feedback type
    (none: not driven; no: 1 while closed; nc: 0 while closed — physical levels).

    **PP** (``voltage5``): the car's cable is in the socket while a car is present (state B..E)
    unless ``cable_plugged`` says otherwise; the count is the middle of the cable's band.

    **RCM** on ``rcm_line``: active while the residual current reaches ``rcm_trip_mA`` or a trip is
    injected; **grid phase count** on ``grid_phase_count_line`` if wired.

    **Power.** With the car in C or D, power allowed by the car and phases live at its inlet, it
    draws min(its maximum, what the duty cycle allows: :func:`physics.pwm_current_A`) on 1 or 3
    phases; the board integrates the energy for the meter (:meth:`meter_values`).

    **Plug lock.** A :class:`LockMotorSim` given as ``lock`` is stepped with the board.

    **Injections** (:meth:`inject`, name → value):

    ============================ ====================================================================
    ``car_enabled``              bool; false resets the car side (no car, nothing drawn)
    ``car_state``                "A".."E" (A: no car; B/C/D: resistor; E: CP shorted to PE by the car)
    ``diode_fault``              bool: the car's diode is shorted
    ``car_max_current_A``        number: the most the car draws per phase
    ``car_phases``               1 or 3: phases the car draws on
    ``car_power_allowed``        bool: the car's own switch (false: it draws nothing)
    ``rcm_current_mA``           number: residual current (trips the RCM at ``rcm_trip_mA``)
    ``rcm``                      bool: force the RCM's fault output
    ``cp_short``                 bool: CP shorted to PE in the cable (both peaks ~0 V)
    ``cp_open``                  bool: CP wire broken (the EVSE sees no car)
    ``relay_welded``             bool, relay 1 (``relay_2_welded`` for relay 2): never opens
    ``relay_stuck_open``         bool, relay 1 (``relay_2_stuck_open``): never closes
    ``relay_sense_broken``       bool, relay 1 (``relay_2_sense_broken``): sense input stuck low
    ``pp_ampacity``              13, 20, 32, 63, null/0 (cable without coding) or "fault"
    ``cable_plugged``            bool, or null to follow the car again
    ``grid_phases``              1 or 3
    ``noise_counts``             integer >= 0
    ``lock_jammed``              bool (needs a lock): the motor turns, the lock does not move
    ``lock_cap_fault``           bool: the lock's storage capacitors do not charge
    ``lock_motor_fault``         bool: DRV8872 nFAULT
    ``lock_position``            "locked" or "unlocked": move the lock by hand
    ============================ ====================================================================
    """

    def __init__(self, tree: TarragonTree, config: BoardConfig | None = None, lock: LockMotorSim | None = None) -> None:
        self.tree = tree
        self.config = cfg = config or BoardConfig()
        if cfg.switch_3ph1ph_wiring not in physics.WIRINGS:
            raise ValueError(f"switch_3ph1ph_wiring must be one of {', '.join(physics.WIRINGS)}")
        if len(cfg.relay_feedback) != len(RELAY_COILS):
            raise ValueError("relay_feedback names the feedback type of each of the two relays")
        if cfg.grid_phases not in (1, 3):
            raise ValueError("grid_phases must be 1 or 3")
        self.lock = lock
        self.car = CarSide()
        self.cp_short = False
        self.cp_open = False
        self.rcm_forced = False
        self.cable_plugged: bool | None = None
        self.pp_ampacity: int | str | None = cfg.pp_ampacity_A
        self.grid_phases = cfg.grid_phases
        self.noise_counts = cfg.noise_counts
        ms = 1_000_000
        self.relays = [
            RelayContact(kind, round(cfg.relay_pull_in_ms * ms), round(cfg.relay_drop_out_ms * ms))
            for kind in cfg.relay_feedback
        ]
        self.energy_Wh = [0.0, 0.0, 0.0]
        self.currents_A = (0.0, 0.0, 0.0)
        self.error: BaseException | None = None  # what ended the thread, if anything did
        self._rng = random.Random(cfg.seed)  # noqa: S311 - noise, not secrets
        self._mutex = threading.RLock()
        self._pwm = _PwmFiles(tree.pwm_dir(CP_PWM_DEVICE))
        self._drive = PilotDrive()
        self._peaks: tuple[float, float] | None = None
        self._written: dict[str, object] = {}
        self._last_ns: int | None = None
        self._lock_ns = 0
        self._dirty = True  # an injection since the last step: the inputs need writing
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        watched = [RST_POS, RST_NEG, CP_INVERT, *RELAY_COILS]
        if lock is not None:
            watched += [lock.in1_line, lock.in2_line]
        self._watch: list[SimChip] = []
        for line in watched:
            chip = tree.chip(line)
            if chip not in self._watch:
                self._watch.append(chip)  # the reset lines' chip first: its wait is the blocking one
        for i, relay in enumerate(self.relays):
            relay.coil = relay.closed = tree.level(RELAY_COILS[i])
        with self._mutex:
            self._drive = self._read_drive()
            self._apply(refresh=(True, True))

    # -- running ----------------------------------------------------------------------------------
    def start(self, period_s: float = 0.001) -> TarragonBoardSim:
        self._start_thread(period_s, "tarragon-board-sim")
        return self

    def close(self) -> None:
        """Stop and let go of the tree's files (the tree itself stays)."""
        self.stop()
        self._pwm.close()

    def _loop(self, period_s: float) -> None:
        next_reap = time.monotonic_ns() + REAP_NS
        try:
            while not self._stop.is_set():
                # block on the reset lines' chip only: a peak reset is the one moment the drivers
                # read what the board answers, and each step re-reads every level and the PWM
                self._watch[0].wait_output(self._timeout_s(period_s))
                now = time.monotonic_ns()
                self.step(now)
                if now >= next_reap:
                    next_reap = now + REAP_NS
                    if self.tree.reap():
                        log.info("released the lines of a driver process that is gone")
        except Exception as err:  # the owner reads .error
            log.exception("the board simulation stopped")
            self.error = err

    def _timeout_s(self, period_s: float) -> float:
        """How long the thread may sleep: a period, or less when a relay contact is about to move."""
        dues = [r.due_ns for r in self.relays if r.due_ns is not None]
        if not dues:
            return period_s
        return min(period_s, max(0.0, (min(dues) - time.monotonic_ns()) / 1e9))

    # -- the clock --------------------------------------------------------------------------------
    def step(self, now_ns: int) -> None:
        """Advance to ``now_ns``: take the drivers' outputs, move the relays, write the inputs."""
        with self._mutex:
            refresh = [False, False]
            lock_moved = False
            events = [ev for chip in self._watch for ev in chip.output_events()]
            if events and all(ev.line in (RST_POS, RST_NEG) and ev.level for ev in events) and not self._due(now_ns):
                return  # woken by a peak reset being asserted: nothing to answer until its release
            for ev in events:
                if ev.line in RELAY_COILS:
                    self.relays[RELAY_COILS.index(ev.line)].coil_change(ev.level, ev.timestamp_ns)
                elif ev.line == RST_POS and not ev.level:
                    refresh[0] = True  # released: the detector holds the new peak
                elif ev.line == RST_NEG and not ev.level:
                    refresh[1] = True
                elif self.lock is not None and ev.line in (self.lock.in1_line, self.lock.in2_line):
                    lock_moved = True
            drive = self._read_drive()
            changed = self._dirty or drive != self._drive
            self._drive = drive
            for relay in self.relays:
                changed |= relay.advance(now_ns)
            if self._last_ns is not None and now_ns > self._last_ns:
                hours = (now_ns - self._last_ns) / 3.6e12
                for i, amps in enumerate(self.currents_A):
                    self.energy_Wh[i] += self._phase_voltage(i) * amps * hours
            if self._last_ns is None or now_ns > self._last_ns:
                self._last_ns = now_ns
            if changed or refresh[0] or refresh[1]:
                self._dirty = False
                self._apply(refresh=(refresh[0], refresh[1]))
            if self.lock is not None and (lock_moved or now_ns - self._lock_ns >= LOCK_STEP_NS):
                self._lock_ns = now_ns
                self.lock.step(now_ns)

    def _due(self, now_ns: int) -> bool:
        """Work that cannot wait for the next wake-up: an injection, a relay contact moving, the lock."""
        if self._dirty or any(r.due_ns is not None and r.due_ns <= now_ns for r in self.relays):
            return True
        return self.lock is not None and now_ns - self._lock_ns >= LOCK_STEP_NS

    def _read_drive(self) -> PilotDrive:
        if not self.tree.level(CP_INVERT):
            return PilotDrive(False, self._drive.duty)  # a floating pilot: the duty does not reach CP
        period, duty, enabled = self._pwm.read()
        fraction = min(1.0, max(0.0, duty / period)) if enabled and period > 0 else 0.0
        return PilotDrive(driven=True, duty=fraction)

    # -- what the board answers ---------------------------------------------------------------------
    def _car_pilot(self) -> CarPilot:
        state = self.car.state if self.car.enabled else "A"
        return CarPilot(state, self.car.diode_fault, self.cp_short, self.cp_open)

    def _live_phases(self) -> int:
        closed = [r.closed for r in self.relays]
        return physics.live_phases(self.config.switch_3ph1ph_wiring, closed[0], closed[1], self.grid_phases)

    def _phase_voltage(self, phase: int) -> float:
        return self.config.grid_voltage_V if phase < self.grid_phases else 0.0

    def _car_duty(self) -> float:
        car = self._car_pilot()
        if car.cp_short or car.cp_open or car.state == "E":
            return 0.0
        return self._drive.percent

    def _draw(self) -> tuple[float, float, float]:
        car = self._car_pilot()
        live = self._live_phases()
        if car.state not in ("C", "D") or not self.car.power_allowed or live == 0:
            return 0.0, 0.0, 0.0
        amps = max(0.0, min(self.car.max_current_A, physics.pwm_current_A(self._car_duty())))
        three = self.car.three_phases and live == 3
        return amps, amps if three else 0.0, amps if three else 0.0

    @property
    def cable_in_socket(self) -> bool:
        if self.cable_plugged is not None:
            return self.cable_plugged
        return self._car_pilot().state != "A"

    @property
    def rcm_tripped(self) -> bool:
        return self.rcm_forced or self.car.residual_mA >= self.config.rcm_trip_mA

    def _noise(self) -> int:
        n = self.noise_counts
        return self._rng.randint(-n, n) if n > 0 else 0

    def _set_line(self, line: str, level: bool) -> None:
        if self._written.get(line) != level:
            self.tree.set_input(line, level)
            self._written[line] = level

    def _apply(self, refresh: tuple[bool, bool]) -> None:
        """Write every input whose physics changed (and fresh peak samples after a reset)."""
        peaks = physics.cp_peaks(self._drive, self._car_pilot())
        changed = peaks != self._peaks
        self._peaks = peaks
        for channel, volts, fresh in ((ADC_CP_POS, peaks[0], refresh[0]), (ADC_CP_NEG, peaks[1], refresh[1])):
            if changed or fresh:
                self.tree.write_adc(channel, physics.cp_raw(volts) + self._noise())
        for i, relay in enumerate(self.relays):
            sense = relay.sense
            if sense is not None:
                self._set_line(RELAY_SENSES[i], sense)
        pp: int | str | None = self.pp_ampacity if self.cable_in_socket else None
        if ADC_PP not in self._written or self._written[ADC_PP] != pp:
            amps = None if isinstance(pp, str) else pp
            self.tree.write_adc(ADC_PP, physics.pp_raw(amps, fault=pp == "fault") + self._noise())
            self._written[ADC_PP] = pp
        cfg = self.config
        self._set_line(cfg.rcm_line, self.rcm_tripped != cfg.rcm_active_low)
        if cfg.grid_phase_count_line:
            self._set_line(cfg.grid_phase_count_line, (self.grid_phases == 3) != cfg.grid_phase_count_active_low)
        self.currents_A = self._draw()

    # -- what the owner reads ---------------------------------------------------------------------
    def meter_values(self) -> MeterValues:
        with self._mutex:
            volts = tuple(self._phase_voltage(i) for i in range(3))
            amps = self.currents_A
            return MeterValues(
                voltage_V=(volts[0], volts[1], volts[2]),
                current_A=amps,
                power_W=(volts[0] * amps[0], volts[1] * amps[1], volts[2] * amps[2]),
                energy_import_Wh=(self.energy_Wh[0], self.energy_Wh[1], self.energy_Wh[2]),
                frequency_Hz=self.config.grid_frequency_Hz,
            )

    def state(self) -> BoardState:
        with self._mutex:
            peaks = self._peaks or (0.0, 0.0)
            return BoardState(
                drive=self._drive,
                peaks_V=peaks,
                car_view=physics.car_view(self._drive, self._car_pilot()),
                car_duty_percent=self._car_duty(),
                live_phases=self._live_phases(),
                contacts=(self.relays[0].closed, self.relays[1].closed),
                pp_ampacity=self.pp_ampacity if self.cable_in_socket else None,
                rcm_tripped=self.rcm_tripped,
                residual_mA=self.car.residual_mA,
                meter=self.meter_values(),
            )

    # -- injections ---------------------------------------------------------------------------------
    def inject(self, name: str, value: Any) -> None:
        """Apply one injection (see the class docstring); raises InjectionError for a bad one.

        The effect reaches the tree at the next :meth:`step` (within a period while the thread runs);
        the current the car draws changes at once (energy up to the last step is counted at the old one).
        """
        with self._mutex:
            self._inject(name, value)
            self._dirty = True
            self.currents_A = self._draw()

    def _inject(self, name: str, value: Any) -> None:
        car = self.car
        if name == "car_enabled":
            if _bool(name, value):
                car.enabled = True
            else:
                self.car = CarSide(enabled=False)
        elif name == "car_state":
            if value not in physics.CAR_STATES:
                raise InjectionError(f"car_state takes one of {', '.join(physics.CAR_STATES)}, not {value!r}")
            car.state = value
        elif name == "diode_fault":
            car.diode_fault = _bool(name, value)
        elif name == "car_max_current_A":
            car.max_current_A = _number(name, value)
        elif name == "car_phases":
            if value not in (1, 3) or isinstance(value, bool):
                raise InjectionError(f"car_phases takes 1 or 3, not {value!r}")
            car.three_phases = value == 3
        elif name == "car_power_allowed":
            car.power_allowed = _bool(name, value)
        elif name == "rcm_current_mA":
            car.residual_mA = _number(name, value)
        elif name == "rcm":
            self.rcm_forced = _bool(name, value)
        elif name == "cp_short":
            self.cp_short = _bool(name, value)
        elif name == "cp_open":
            self.cp_open = _bool(name, value)
        elif name.startswith("relay_"):
            self._inject_relay(name, value)
        elif name == "pp_ampacity":
            if value in (None, 0) and not isinstance(value, bool):
                self.pp_ampacity = None
            elif value == "fault":
                self.pp_ampacity = "fault"
            elif value in physics.PP_AMPACITIES and not isinstance(value, bool):
                self.pp_ampacity = int(value)
            else:
                raise InjectionError(f'pp_ampacity takes 13, 20, 32, 63, null or "fault", not {value!r}')
        elif name == "cable_plugged":
            self.cable_plugged = None if value is None else _bool(name, value)
        elif name == "grid_phases":
            if value not in (1, 3) or isinstance(value, bool):
                raise InjectionError(f"grid_phases takes 1 or 3, not {value!r}")
            self.grid_phases = value
        elif name == "noise_counts":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InjectionError(f"noise_counts takes an integer >= 0, not {value!r}")
            self.noise_counts = value
        elif name.startswith("lock_"):
            self._inject_lock(name, value)
        else:
            raise InjectionError(f"unknown injection {name!r}")

    def _inject_relay(self, name: str, value: Any) -> None:
        rest = name.removeprefix("relay_")
        index = 0
        if rest[:2] in ("1_", "2_"):
            index, rest = int(rest[0]) - 1, rest[2:]
        relay = self.relays[index]
        if rest == "welded":
            relay.welded = _bool(name, value)
        elif rest == "stuck_open":
            relay.stuck_open = _bool(name, value)
        elif rest == "sense_broken":
            relay.sense_broken = _bool(name, value)
        else:
            raise InjectionError(f"unknown injection {name!r}")

    def _inject_lock(self, name: str, value: Any) -> None:
        lock = self.lock
        if lock is None:
            raise InjectionError(f"{name}: this board has no plug lock")
        if name == "lock_jammed":
            lock.jammed = _bool(name, value)
        elif name == "lock_cap_fault":
            lock.cap_fault = _bool(name, value)
        elif name == "lock_motor_fault":
            lock.set_motor_fault(_bool(name, value))
        elif name == "lock_position":
            if value not in ("locked", "unlocked"):
                raise InjectionError(f'lock_position takes "locked" or "unlocked", not {value!r}')
            lock.move_to(value == "locked")
        else:
            raise InjectionError(f"unknown injection {name!r}")


__all__ = ["BoardConfig", "BoardState", "CarSide", "InjectionError", "MeterValues", "TarragonBoardSim"]
