# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The running control-pilot thread against the simulated Tarragon: states, relay-off policy, PWM, faults."""

from __future__ import annotations

import errno
import functools
import os
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from everest_bsp._native import lib
from everest_bsp.hal.gpio import LineRequest, LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.hal.simchip import wait_for
from everest_bsp.sim.tarragon_tree import ADC_DEVICE, CP_PWM_DEVICE, TarragonTree
from everest_bsp.tarragon.cp_core import (
    TARRAGON_LINES,
    CpCore,
    CpCoreConfig,
    CpEvent,
    ErrorChanged,
    Glitch,
    IoChanged,
    IoSource,
    OffReason,
    Refusal,
    RelaysForcedOff,
    StateChanged,
    TripChanged,
)
from everest_bsp.tarragon.cp_logic import CpError, CpState, voltage_mV
from everest_py.errors import HardwareError

R1, R2 = 1, 2
NAMES = TARRAGON_LINES
POS, NEG = "voltage2", "voltage3"
# pilot voltages (positive peak, negative peak) at 5 % PWM, and at 100 % (no negative half)
PWM_B, PWM_C, PWM_D = (9000, -12000), (6000, -12000), (3000, -12000)
DC_B = (9000, 9000)
SHORT = (0, 0)
TIMEOUT_S = 3.0


@functools.cache
def raw_for(mv: int) -> int:
    return min(range(4096), key=lambda r: abs(voltage_mV(r) - mv))


@dataclass
class Rig:
    tree: TarragonTree
    core: CpCore
    lines: LineRequest
    seen: list[CpEvent] = field(default_factory=list)
    cursor: int = 0

    def pilot(self, volts: tuple[int, int]) -> None:
        """Both peaks at once (microseconds apart: at most one sample sees one side new)."""
        raw_pos, raw_neg = raw_for(volts[0]), raw_for(volts[1])
        self.tree.write_adc(POS, raw_pos)
        self.tree.write_adc(NEG, raw_neg)

    def drain(self, timeout_s: float) -> None:
        ready, _, _ = select.select([self.core.fileno()], [], [], timeout_s)
        if ready:
            self.seen.extend(self.core.events())

    def mark(self) -> None:
        """Later waits only look at events from now on."""
        self.drain(0)
        self.cursor = len(self.seen)

    def wait(self, kind: type[Any], **fields: object) -> Any:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for e in self.seen[self.cursor :]:
                if isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items()):
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__} {fields} among {self.seen[self.cursor :]}")
            self.drain(min(left, 0.05))

    def since_mark(self) -> list[CpEvent]:
        return self.seen[self.cursor :]

    def level(self, line: str) -> bool:
        return self.tree.level(line)

    def go(self, volts: tuple[int, int], state: CpState, duty_x100: int = 500) -> None:
        """Enabled at ``duty_x100`` with the pilot at ``volts``, ``state`` reported."""
        self.mark()
        self.pilot(volts)
        self.core.set_duty(duty_x100)
        self.core.enable(True)
        self.wait(StateChanged, state=state)

    def charging(self) -> None:
        self.go(PWM_C, CpState.C)
        assert self.core.relays_on(R1) is None
        assert self.level("RELAY_1_ENABLE") is True


MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig(tree: TarragonTree) -> Iterator[MakeRig]:
    made: list[tuple[CpCore, LineRequest, list[AdcChannel]]] = []

    def make(names: dict[str, str | None] | None = None, **options: Any) -> Rig:
        names = dict(NAMES if names is None else names)
        settings = {n: LineSettings(output=True) for k, n in names.items() if n is not None and k != "trip"}
        if names.get("trip"):
            settings[str(names["trip"])] = LineSettings()
        lines = request_lines(tree.root, "cp-test", settings)
        adcs = [AdcChannel.open(tree.root, ADC_DEVICE, ch) for ch in (POS, NEG)]
        pwm = SysfsPwm.open(tree.root, CP_PWM_DEVICE, 0)
        core = CpCore(CpCoreConfig.from_hal(adcs[0], adcs[1], pwm, lines, names, **options))
        made.append((core, lines, adcs))
        core.start()
        return Rig(tree, core, lines)

    yield make
    for core, lines, adcs in made:
        core.close()
        lines.release()
        for a in adcs:
            a.close()


@pytest.fixture
def rig(make_rig: MakeRig) -> Rig:
    return make_rig()


# -- output -----------------------------------------------------------------------------------------


def test_init_leaves_the_pilot_undriven_and_enable_drives_the_cached_duty(rig: Rig) -> None:
    assert rig.tree.pwm(CP_PWM_DEVICE) == (1_000_000, 0, False)
    assert [rig.level(n) for n in ("CP_INVERT", "RELAY_1_ENABLE", "RELAY_2_ENABLE")] == [False, False, False]
    rig.core.enable(True)  # 100 % cached at init
    assert rig.tree.pwm(CP_PWM_DEVICE) == (1_000_000, 1_000_000, True)
    assert rig.level("CP_INVERT") is True
    s = rig.core.stats()
    assert (s.enabled, s.driven, s.duty_x100) == (True, True, 10000)


def test_duty_is_cached_while_disabled_and_f_x1_set_it(rig: Rig) -> None:
    rig.core.set_duty(500)
    assert rig.tree.pwm(CP_PWM_DEVICE)[1:] == (0, False), "nothing written while disabled"
    rig.core.enable(True)
    assert rig.tree.pwm(CP_PWM_DEVICE) == (1_000_000, 50_000, True)
    rig.core.state_X1()
    assert rig.tree.pwm(CP_PWM_DEVICE)[1] == 1_000_000
    rig.core.state_F()
    assert rig.tree.pwm(CP_PWM_DEVICE) == (1_000_000, 0, True)
    assert rig.level("CP_INVERT") is True, "F is driven: -12 V"
    rig.core.enable(False)
    rig.core.set_duty(5300)
    rig.core.enable(True)
    assert rig.tree.pwm(CP_PWM_DEVICE)[1] == 530_000
    with pytest.raises(ValueError):
        rig.core.set_duty(10001)


def test_state_e_releases_the_pilot_and_opens_the_relays(rig: Rig) -> None:
    rig.charging()
    rig.mark()
    rig.core.state_E()
    assert rig.tree.pwm(CP_PWM_DEVICE) == (1_000_000, 1_000_000, False), "100 % pulse, then PWM off"
    assert (rig.tree.pwm_dir(CP_PWM_DEVICE) / "enable").read_bytes().split(b"\n")[0] == b"0"
    assert rig.level("CP_INVERT") is False
    assert rig.level("RELAY_1_ENABLE") is False
    assert rig.wait(RelaysForcedOff).reason == OffReason.OUTPUT
    rig.wait(StateChanged, state=CpState.E)  # not driven: E, whatever the pilot shows
    assert rig.core.relays_on(R1) == Refusal.STATE
    rig.core.set_duty(500)  # driving again
    assert rig.level("CP_INVERT") is True and rig.tree.pwm(CP_PWM_DEVICE)[1:] == (50_000, True)
    rig.wait(StateChanged, state=CpState.C)


def test_disable_opens_the_relays_and_leaves_f(rig: Rig) -> None:
    rig.charging()
    rig.mark()
    rig.core.enable(False)
    assert rig.level("RELAY_1_ENABLE") is False
    e = rig.wait(RelaysForcedOff)
    assert (e.reason, e.mask) == (OffReason.OUTPUT, R1)
    assert rig.tree.pwm(CP_PWM_DEVICE)[1:] == (0, True) and rig.level("CP_INVERT") is True
    assert rig.core.relays_on(R1) == Refusal.STATE
    assert rig.core.stats().enabled is False


@pytest.mark.parametrize("command", ["state_F", "set_duty_0"])
def test_f_opens_the_relays(rig: Rig, command: str) -> None:
    rig.charging()
    rig.mark()
    if command == "state_F":
        rig.core.state_F()
    else:
        rig.core.set_duty(0)
    assert rig.level("RELAY_1_ENABLE") is False
    assert rig.core.relays_on(R1) == Refusal.STATE, "refused at once, before a sample shows F"
    assert rig.wait(RelaysForcedOff).reason == OffReason.OUTPUT


def test_close_opens_the_relays_and_leaves_f(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.charging()
    rig.core.close()
    assert rig.level("RELAY_1_ENABLE") is False
    assert rig.tree.pwm(CP_PWM_DEVICE)[1:] == (0, True) and rig.level("CP_INVERT") is True
    with pytest.raises(HardwareError, match="closed"):
        rig.core.enable(True)


# -- sampling ---------------------------------------------------------------------------------------


def test_states_follow_the_pilot(rig: Rig) -> None:
    rig.go(DC_B, CpState.B, duty_x100=10000)
    rig.core.set_duty(500)
    rig.pilot(PWM_B)
    steps = [
        (PWM_C, CpState.C),
        (PWM_D, CpState.D),
        (PWM_C, CpState.C),
        (PWM_B, CpState.B),
        ((12000, -12000), CpState.A),
    ]
    for volts, state in steps:
        rig.mark()
        rig.pilot(volts)
        e = rig.wait(StateChanged, state=state)
        assert abs(e.u_pos_mV - volts[0]) < 10 and abs(e.u_neg_mV - volts[1]) < 10
    rig.pilot((-12000, -12000))
    rig.core.state_F()
    rig.wait(StateChanged, state=CpState.F)
    s = rig.core.stats()
    assert s.state == CpState.F and s.samples >= 10 and s.cycle_ns_last > 0


def test_a_change_is_reported_after_two_samples_and_a_single_glitch_is_suppressed(make_rig: MakeRig) -> None:
    # Lock-step with the sampler: the peak-reset edge starts a sample that reads the ADC 50 ms later,
    # so a value written right after the edge is what exactly that sample sees.
    rig = make_rig(reset_us=5000, settle_us=45000)
    chip = rig.tree.chip("CP_POSITIVE_PEAK_RST")
    rig.go(DC_B, CpState.B, duty_x100=10000)
    chip.output_events()

    def next_sample_start() -> int:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            chip.wait_output(0.1)
            for e in chip.output_events():
                if e.line == "CP_POSITIVE_PEAK_RST" and e.level:
                    return e.timestamp_ns
        raise AssertionError("the sampler stopped")

    script = [(6000, 6000), DC_B, (6000, 6000), (6000, 6000), (6000, 6000)]  # C, B, C, C, C
    starts = []
    for volts in script:
        starts.append(next_sample_start())
        rig.pilot(volts)
    starts.append(next_sample_start())
    rig.wait(StateChanged, state=CpState.C)
    after = [e for e in rig.since_mark() if e.t_ns > starts[0]]
    glitches = [e for e in after if isinstance(e, Glitch)]
    changes = [e for e in after if isinstance(e, StateChanged)]
    # sample 2 (B after C) suppresses the single C; sample 3 (C after B) suppresses the single B
    assert [(g.suppressed, starts[1] < g.t_ns < starts[2]) for g in glitches[:1]] == [(CpState.C, True)]
    # the change comes with sample 4, the second C in a row, not earlier
    assert len(changes) == 1 and starts[3] < changes[0].t_ns < starts[4]
    assert changes[0].previous == CpState.B


def test_stale_bytes_after_the_newline_are_ignored(rig: Rig) -> None:
    rig.go(PWM_C, CpState.C)
    rig.tree.adc_path(POS).write_bytes(f"{raw_for(9000)}\n{raw_for(6000)}\n".encode())
    rig.wait(StateChanged, state=CpState.B)


def test_no_sampling_while_disabled_but_the_trip_input_is_polled(rig: Rig) -> None:
    rig.tree.set_input("DIGITAL_IN_2", True)
    assert rig.wait(TripChanged).active is True
    s = rig.core.stats()
    assert (s.samples, s.trip) == (0, True)
    assert not [e for e in rig.tree.output_events() if e.line == "CP_POSITIVE_PEAK_RST"]
    rig.tree.set_input("DIGITAL_IN_2", False)
    rig.wait(TripChanged, active=False)


# -- relay policy -----------------------------------------------------------------------------------


def test_relays_on_refused_in_b_accepted_in_c_and_d(rig: Rig) -> None:
    assert rig.core.relays_on(R1) == Refusal.STATE, "disabled"
    rig.go(PWM_B, CpState.B)
    assert rig.core.relays_on(R1 | R2) == Refusal.STATE
    assert (rig.level("RELAY_1_ENABLE"), rig.level("RELAY_2_ENABLE")) == (False, False)
    rig.pilot(PWM_C)
    rig.wait(StateChanged, state=CpState.C)
    assert rig.core.relays_on(R1 | R2) is None
    assert (rig.level("RELAY_1_ENABLE"), rig.level("RELAY_2_ENABLE")) == (True, True)
    assert rig.core.stats().relays_on == R1 | R2
    rig.pilot(PWM_D)
    rig.wait(StateChanged, state=CpState.D)
    assert rig.level("RELAY_1_ENABLE") is True, "C -> D keeps power"
    rig.core.relays_off(R2)
    assert (rig.level("RELAY_1_ENABLE"), rig.level("RELAY_2_ENABLE")) == (True, False)
    assert rig.core.stats().relays_on == R1


def test_c_to_b_opens_the_relays_in_the_same_cycle(rig: Rig) -> None:
    rig.charging()
    rig.mark()
    rig.pilot(PWM_B)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.STATE, R1)
    assert rig.level("RELAY_1_ENABLE") is False
    change = rig.wait(StateChanged, state=CpState.B)
    relay_edge = [e for e in rig.tree.output_events() if e.line == "RELAY_1_ENABLE" and not e.level][-1]
    assert relay_edge.timestamp_ns <= change.t_ns, "the relay opens before Python hears of B"


def test_cp_short_with_relays_on_opens_them(rig: Rig) -> None:
    rig.charging()
    rig.mark()
    rig.pilot(SHORT)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.FAULT, R1)
    assert rig.level("RELAY_1_ENABLE") is False
    err = rig.wait(ErrorChanged, error=CpError.SHORT)
    assert err.active is True
    rig.wait(StateChanged, state=CpState.E)
    assert rig.core.stats().errors == CpError.SHORT
    assert rig.core.relays_on(R1) == Refusal.STATE
    rig.pilot(PWM_C)
    rig.wait(ErrorChanged, error=CpError.SHORT, active=False)
    rig.wait(StateChanged, state=CpState.C)
    assert rig.core.relays_on(R1) is None


def test_diode_fault_opens_the_relays_and_refuses_until_a(rig: Rig) -> None:
    rig.charging()
    rig.mark()
    rig.pilot((6000, -6000))  # the negative half is missing: the vehicle's diode is shorted
    assert rig.wait(RelaysForcedOff).reason == OffReason.FAULT
    rig.wait(ErrorChanged, error=CpError.DIODE, active=True)
    rig.pilot(PWM_C)
    rig.wait(StateChanged, state=CpState.C)
    assert rig.core.relays_on(R1) == Refusal.FAULT, "latched until A"
    rig.pilot((12000, -12000))
    rig.wait(ErrorChanged, error=CpError.DIODE, active=False)
    rig.pilot(PWM_C)
    rig.wait(StateChanged, state=CpState.C, previous=CpState.A)
    assert rig.core.relays_on(R1) is None


def test_trip_input_opens_the_relays_and_refuses(rig: Rig) -> None:
    rig.charging()
    rig.mark()
    rig.tree.set_input("DIGITAL_IN_2", True)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.TRIP, R1)
    assert rig.level("RELAY_1_ENABLE") is False
    rig.wait(TripChanged, active=True)
    assert rig.core.relays_on(R1) == Refusal.TRIP
    rig.tree.set_input("DIGITAL_IN_2", False)
    rig.wait(TripChanged, active=False)
    assert rig.core.relays_on(R1) is None


def test_trip_is_read_at_relays_on(rig: Rig) -> None:
    rig.go(PWM_C, CpState.C)
    rig.tree.set_input("DIGITAL_IN_2", True)
    assert rig.core.relays_on(R1) == Refusal.TRIP, "not only the level of the last cycle"


@pytest.mark.parametrize(
    ("text", "code"), [(b"x\n", errno.EINVAL), (b"4096\n", errno.ERANGE), (b"\n", errno.EINVAL), (b"", errno.EINVAL)]
)
def test_a_failing_adc_read_opens_the_relays(rig: Rig, text: bytes, code: int) -> None:
    rig.charging()
    rig.mark()
    path = rig.tree.adc_path(NEG)
    if text:
        with open(path, "r+b") as f:  # in place, as sysfs changes: no empty file in between
            os.pwrite(f.fileno(), text, 0)
    else:
        os.truncate(path, 0)
    io = rig.wait(IoChanged, source=IoSource.ADC_NEG)
    assert io.errno == code and io.failed
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.IO, R1)
    assert rig.level("RELAY_1_ENABLE") is False
    assert rig.core.relays_on(R1) == Refusal.IO
    rig.pilot(PWM_C)
    rig.wait(IoChanged, source=IoSource.ADC_NEG, errno=0)
    assert rig.core.relays_on(R1) is None


def test_relay_masks_are_checked(make_rig: MakeRig) -> None:
    rig = make_rig(dict(NAMES, relay2=None))
    rig.go(PWM_C, CpState.C)
    with pytest.raises(HardwareError, match="No such device"):
        rig.core.relays_on(R2)
    with pytest.raises(HardwareError, match="Invalid argument"):
        rig.core.relays_on(4)
    assert rig.core.relays_on(R1) is None


# -- events -----------------------------------------------------------------------------------------


def test_events_clear_the_eventfd(rig: Rig) -> None:
    rig.go(PWM_B, CpState.B)
    rig.core.events()
    assert select.select([rig.core.fileno()], [], [], 0)[0] == []
    rig.tree.set_input("DIGITAL_IN_2", True)
    assert select.select([rig.core.fileno()], [], [], TIMEOUT_S)[0] == [rig.core.fileno()]
    assert [type(e) for e in rig.core.events()] == [TripChanged]
    assert rig.core.stats().events_dropped == 0


def test_a_full_event_ring_drops_the_oldest_and_counts_them(rig: Rig) -> None:
    rig.go(PWM_B, CpState.B)
    rig.mark()
    changes = 300  # more state changes than the ring (256) holds, none read meanwhile
    for i in range(changes):
        want = CpState.C if i % 2 == 0 else CpState.B
        rig.pilot(PWM_C if want == CpState.C else PWM_B)
        deadline = time.monotonic() + TIMEOUT_S
        while rig.core.stats().state != want:
            assert time.monotonic() < deadline, f"change {i} to {want.name} not seen"
            time.sleep(0.001)
    events = rig.core.events()
    states = [e for e in events if isinstance(e, StateChanged)]
    assert len(events) == 256, "the ring keeps its newest 256 events"
    assert states[-1].state == CpState.B, "the newest event is the last change"
    assert rig.core.stats().events_dropped >= changes - 256


# -- failing sources: one fault per source, retried relay offs, pilot-output writes -----------------


def fault(rig: Rig, line: str, code: int) -> None:
    """Break (code) or repair (0) a line of the simulated chip: its writes fail with ``code``."""
    rig.tree.chip(line).set_fault(line, code)


def faults(rig: Rig) -> set[IoSource]:
    mask = rig.core.stats().io_faults
    return {s for s in IoSource if mask & s.mask}


def samples_pass(rig: Rig, n: int = 3) -> None:
    """Wait until the thread took ``n`` more samples."""
    start = rig.core.stats().samples
    assert wait_for(lambda: rig.core.stats().samples >= start + n, TIMEOUT_S)


def relays_on_accepted(rig: Rig, mask: int) -> bool:
    """relays_on once the state was evaluated under the current output (refused meanwhile)."""
    return wait_for(lambda: rig.core.relays_on(mask) is None, TIMEOUT_S)


def forced_offs(rig: Rig) -> list[RelaysForcedOff]:
    rig.drain(0)
    return [e for e in rig.since_mark() if isinstance(e, RelaysForcedOff)]


def test_io_sources_are_the_c_cores() -> None:
    names = {s.name: int(getattr(lib, f"CP_IO_{s.name}")) for s in IoSource}
    assert names == {s.name: int(s) for s in IoSource}
    assert len({s.mask for s in IoSource}) == len(IoSource)


def test_a_failed_relay_off_is_retried_every_sample_until_it_works(rig: Rig) -> None:
    rig.charging()
    fault(rig, "RELAY_1_ENABLE", errno.EIO)
    rig.mark()
    rig.pilot(PWM_B)
    rig.wait(StateChanged, state=CpState.B)
    assert rig.wait(IoChanged, source=IoSource.RELAY).errno == errno.EIO
    assert rig.level("RELAY_1_ENABLE") is True, "the broken line could not be opened"
    rig.pilot(PWM_C)
    rig.wait(StateChanged, state=CpState.C)
    samples_pass(rig)
    assert faults(rig) == {IoSource.RELAY}, "still failing: retried, never forgotten"
    assert rig.core.stats().relays_on == R1, "reported on while its line is on"
    assert forced_offs(rig) == [], "not reported open while it is not"
    assert rig.core.relays_on(R1) == Refusal.IO
    assert rig.core.relays_on(R2) == Refusal.IO, "no relay closes while one cannot be opened"
    assert rig.level("RELAY_2_ENABLE") is False
    rig.mark()
    fault(rig, "RELAY_1_ENABLE", 0)  # no command: the thread's next cycle opens it
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.STATE, R1), "the reason of the off that failed"
    rig.wait(IoChanged, source=IoSource.RELAY, errno=0)
    assert rig.level("RELAY_1_ENABLE") is False
    assert faults(rig) == set() and rig.core.stats().relays_on == 0
    assert rig.core.relays_on(R1) is None
    assert len(forced_offs(rig)) == 1, "reported open once"


def test_a_failed_relay_off_is_retried_while_sampling_is_off(rig: Rig) -> None:
    rig.charging()
    fault(rig, "RELAY_1_ENABLE", errno.ENXIO)
    rig.mark()
    rig.core.enable(False)
    assert rig.wait(IoChanged, source=IoSource.RELAY).errno == errno.ENXIO
    samples = rig.core.stats().samples
    time.sleep(0.05)  # several idle polls
    assert rig.level("RELAY_1_ENABLE") is True and faults(rig) == {IoSource.RELAY}
    assert forced_offs(rig) == []
    fault(rig, "RELAY_1_ENABLE", 0)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.OUTPUT, R1)
    rig.wait(IoChanged, source=IoSource.RELAY, errno=0)
    assert rig.level("RELAY_1_ENABLE") is False
    assert rig.core.stats().samples == samples, "opened by the idle branch, not by a sample"


def test_a_failed_relays_off_opens_the_other_relay_and_is_retried(rig: Rig) -> None:
    rig.go(PWM_C, CpState.C)
    assert rig.core.relays_on(R1 | R2) is None
    fault(rig, "RELAY_2_ENABLE", errno.EIO)
    rig.mark()
    with pytest.raises(HardwareError, match=os.strerror(errno.EIO)):
        rig.core.relays_off(R2)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.IO, R1), "R1 opened; R2 is not open"
    assert rig.wait(IoChanged, source=IoSource.RELAY).errno == errno.EIO
    assert (rig.level("RELAY_1_ENABLE"), rig.level("RELAY_2_ENABLE")) == (False, True)
    assert rig.core.relays_on(R1) == Refusal.IO
    rig.mark()
    fault(rig, "RELAY_2_ENABLE", 0)
    rig.wait(IoChanged, source=IoSource.RELAY, errno=0)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.IO, R2)
    assert rig.level("RELAY_2_ENABLE") is False
    assert rig.core.relays_on(R1) is None


def test_a_failed_relay_on_write_opens_every_relay_and_refuses(rig: Rig) -> None:
    rig.go(PWM_C, CpState.C)
    fault(rig, "RELAY_2_ENABLE", errno.EIO)
    rig.mark()
    with pytest.raises(HardwareError, match=os.strerror(errno.EIO)):
        rig.core.relays_on(R1 | R2)
    assert (rig.level("RELAY_1_ENABLE"), rig.level("RELAY_2_ENABLE")) == (False, False)
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.IO, R1)
    assert faults(rig) == {IoSource.RELAY}
    assert rig.core.relays_on(R1) == Refusal.IO
    rig.mark()
    fault(rig, "RELAY_2_ENABLE", 0)
    rig.wait(IoChanged, source=IoSource.RELAY, errno=0)
    assert forced_offs(rig) == [], "R2 never was on: nothing to report"
    assert rig.core.relays_on(R1 | R2) is None


def test_a_reset_line_failure_is_not_cleared_by_a_working_trip_input(rig: Rig) -> None:
    rig.go(PWM_C, CpState.C)
    fault(rig, "CP_POSITIVE_PEAK_RST", errno.EIO)
    assert rig.wait(IoChanged, source=IoSource.RESET).errno == errno.EIO
    rig.core.enable(False)  # idle: only the trip input is read, and it reads fine
    time.sleep(0.05)
    assert faults(rig) == {IoSource.RESET}
    assert not [e for e in rig.since_mark() if isinstance(e, IoChanged) and not e.failed]
    assert rig.core.relays_on(R1) == Refusal.IO
    fault(rig, "CP_POSITIVE_PEAK_RST", 0)
    rig.core.enable(True)
    rig.wait(IoChanged, source=IoSource.RESET, errno=0)
    assert relays_on_accepted(rig, R1)


def test_a_failed_cp_invert_write_refuses_closing_until_it_is_written(rig: Rig) -> None:
    rig.charging()
    fault(rig, "CP_INVERT", errno.EIO)
    rig.mark()
    with pytest.raises(HardwareError, match=os.strerror(errno.EIO)):
        rig.core.state_E()
    assert rig.level("CP_INVERT") is True, "the pilot could not be released"
    assert rig.level("RELAY_1_ENABLE") is False
    assert rig.wait(RelaysForcedOff).reason == OffReason.OUTPUT  # E opens first, then CP_INVERT fails
    assert rig.wait(IoChanged, source=IoSource.INVERT).errno == errno.EIO
    samples_pass(rig)
    assert faults(rig) == {IoSource.INVERT}
    assert rig.core.relays_on(R1) == Refusal.IO, "the pilot output is unknown"
    with pytest.raises(HardwareError, match=os.strerror(errno.EIO)):
        rig.core.set_duty(500)  # still broken: written again, fails again, stays failing
    assert faults(rig) == {IoSource.INVERT}
    fault(rig, "CP_INVERT", 0)
    rig.core.set_duty(500)  # CP_INVERT is written again although it looks driven
    rig.wait(IoChanged, source=IoSource.INVERT, errno=0)
    assert rig.level("CP_INVERT") is True and faults(rig) == set()
    assert relays_on_accepted(rig, R1)


def test_a_failed_pwm_write_opens_the_relays_and_refuses_until_written(rig: Rig) -> None:
    rig.charging()
    duty_fd = rig.core.config.pwm_duty_fd
    duty_path = rig.tree.pwm_dir(CP_PWM_DEVICE) / "duty_cycle"

    def duty_fd_opened(flags: int) -> None:
        fd = os.open(duty_path, flags | os.O_CLOEXEC)
        os.dup2(fd, duty_fd)  # the core keeps its fd number; what it refers to changes
        os.close(fd)

    duty_fd_opened(os.O_RDONLY)
    rig.mark()
    with pytest.raises(HardwareError, match=os.strerror(errno.EBADF)):
        rig.core.set_duty(600)
    assert rig.level("RELAY_1_ENABLE") is False
    off = rig.wait(RelaysForcedOff)
    assert (off.reason, off.mask) == (OffReason.IO, R1), "the duty on the pin is unknown"
    assert rig.wait(IoChanged, source=IoSource.PWM).errno == errno.EBADF
    samples_pass(rig)
    assert faults(rig) == {IoSource.PWM}
    assert rig.core.relays_on(R1) == Refusal.IO
    duty_fd_opened(os.O_WRONLY)
    rig.core.set_duty(500)
    rig.wait(IoChanged, source=IoSource.PWM, errno=0)
    assert rig.tree.pwm(CP_PWM_DEVICE)[1:] == (50_000, True) and faults(rig) == set()
    assert relays_on_accepted(rig, R1)
