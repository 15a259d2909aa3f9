# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The pilot rules of chargebyte-hw.md §2.3-§2.4 on the Python twin: voltages, bands, debounce, errors."""

from __future__ import annotations

import itertools

import pytest

from everest_bsp.tarragon.cp_logic import (
    CpError,
    CpState,
    Debounce,
    DebounceResult,
    classify,
    evaluate,
    process_batch,
    voltage_mV,
)

A, B, C, D, E, F = CpState.A, CpState.B, CpState.C, CpState.D, CpState.E, CpState.F
PF, UNKNOWN = CpState.PILOT_FAULT, CpState.UNKNOWN
ALL = list(CpState)


def raw_for(mv: int) -> int:
    """The raw count whose voltage is closest to ``mv``."""
    return min(range(4096), key=lambda r: abs(voltage_mV(r) - mv))


# -- voltage ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mv"),
    [
        (0, -16013),  # 0 V at the ADC
        (4095, 15607),  # 3300 mV: 3300*4561/476 = 31620.38 -> 31620
        (2048, -203),  # 6758400/4095 = 1650.4 -> 1650; 1650*4561/476 = 15810.2 -> 15810
    ],
)
def test_voltage_known_points(raw: int, mv: int) -> None:
    assert voltage_mV(raw) == mv


def test_voltage_truncates_each_step() -> None:
    # 1 count is 0.8 mV at the ADC: truncated to 0 before the divider model
    assert voltage_mV(1) == -16013
    # 2 counts: 6600/4095 = 1.6 -> 1 mV; 4561/476 = 9.58 -> 9
    assert voltage_mV(2) == -16013 + 9
    # 1241 counts: 4095300/4095 = 1000.07 -> 1000 mV; 4561000/476 = 9581.9 -> 9581
    assert voltage_mV(1241) == 9581 - 16013


def test_voltage_is_monotonic_over_the_adc_range() -> None:
    values = [voltage_mV(r) for r in range(4096)]
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert values[0] < -13000 and values[-1] > 13000  # every state is reachable


# -- classify: every band and every hysteresis edge -------------------------------------------------


@pytest.mark.parametrize(
    ("u", "prev", "expected"),
    [
        (13001, A, PF),
        (20000, UNKNOWN, PF),
        (13000, B, A),
        (11000, UNKNOWN, A),
        # 10000..<11000: A only coming from A
        (10999, A, A),
        (10000, A, A),
        (10999, B, B),
        (10000, UNKNOWN, B),
        (10500, C, B),
        (9999, A, B),
        (8000, C, B),
        # 7000..<8000: B coming from A or B, else C
        (7999, A, B),
        (7000, B, B),
        (7999, C, C),
        (7000, D, C),
        (7500, UNKNOWN, C),
        (6999, B, C),
        (5000, D, C),
        # 4000..<5000: C coming from A, B or C, else D
        (4999, A, C),
        (4000, B, C),
        (4500, C, C),
        (4999, D, D),
        (4000, E, D),
        (4500, UNKNOWN, D),
        (3999, C, D),
        (2000, A, D),
        (1999, D, E),
        (0, UNKNOWN, E),
        (-1000, F, E),
        # -2000..<-1000: E coming from A..E, else pilot fault
        (-1001, E, E),
        (-2000, A, E),
        (-1500, D, E),
        (-1001, F, PF),
        (-2000, PF, PF),
        (-1500, UNKNOWN, PF),
        (-2001, E, PF),
        (-10000, F, PF),  # the F band's hysteresis starts below -10000
        # -11000..<-10000: F only coming from F
        (-10001, F, F),
        (-11000, F, F),
        (-10500, PF, PF),
        (-11000, E, PF),
        (-10001, UNKNOWN, PF),
        (-11001, PF, F),
        (-13000, UNKNOWN, F),
        (-13001, F, PF),
        (-16013, F, PF),
    ],
)
def test_classify(u: int, prev: CpState, expected: CpState) -> None:
    assert classify(u, prev) == expected


@pytest.mark.parametrize("prev", ALL)
@pytest.mark.parametrize(
    ("u", "expected"),
    [(12000, A), (9000, B), (6000, C), (3000, D), (0, E), (-5000, PF), (-12000, F), (14000, PF), (-14000, PF)],
)
def test_classify_outside_hysteresis_ignores_prev(u: int, expected: CpState, prev: CpState) -> None:
    assert classify(u, prev) == expected


def test_hysteresis_b_c_depends_on_direction() -> None:
    # going down from B the state stays B to 7000 mV; coming up from C it stays C to 7999 mV
    down = [9000, 8000, 7500, 7000, 6999]
    up = [6000, 7000, 7500, 7999, 8000]
    prev: int = B
    seen_down = []
    for u in down:
        prev = classify(u, prev)
        seen_down.append(prev)
    assert seen_down == [B, B, B, B, C]
    prev = C
    seen_up = []
    for u in up:
        prev = classify(u, prev)
        seen_up.append(prev)
    assert seen_up == [C, C, C, C, B]


# -- debounce ---------------------------------------------------------------------------------------


def run(measurements: list[CpState]) -> tuple[Debounce, list[DebounceResult], list[int]]:
    d = Debounce()
    results, detected = [], []
    for m in measurements:
        results.append(d.step(m))
        detected.append(d.detected)
    return d, results, detected


def test_debounce_starts_unknown_and_accepts_on_the_second_equal_sample() -> None:
    d, results, detected = run([B, B, B])
    assert detected == [UNKNOWN, B, B]
    assert results == [DebounceResult.NONE, DebounceResult.CHANGED, DebounceResult.NONE]
    assert (d.t0, d.t1) == (B, B)


def test_debounce_change_needs_two_equal_samples() -> None:
    _, results, detected = run([B, B, C, C, C])
    assert detected == [UNKNOWN, B, B, C, C]
    assert results[3] == DebounceResult.CHANGED


def test_debounce_suppresses_a_single_glitch() -> None:
    _, results, detected = run([B, B, C, B, B])
    assert detected == [UNKNOWN, B, B, B, B]
    N, CH, GL = DebounceResult.NONE, DebounceResult.CHANGED, DebounceResult.GLITCH
    assert results == [N, CH, N, GL, N]


def test_debounce_alternating_never_accepts() -> None:
    _, results, detected = run([B, B, C, B, C, B, C])
    assert set(detected[1:]) == {B}
    assert results[3:] == [DebounceResult.GLITCH] * 4


def test_debounce_three_different_samples_change_nothing() -> None:
    _, results, detected = run([B, B, C, D, E])
    assert detected[-1] == B
    assert results[2:] == [DebounceResult.NONE] * 3


def test_debounce_back_to_the_detected_state_is_no_change() -> None:
    _, results, detected = run([B, B, C, C, B, B])
    assert detected == [UNKNOWN, B, B, C, C, B]
    assert results[5] == DebounceResult.CHANGED
    assert results[4] == DebounceResult.NONE  # C, C, B: no X->Y->X


def test_process_batch_two_sample_acceptance_on_raw_counts() -> None:
    b, c, f = raw_for(9000), raw_for(6000), raw_for(-12000)
    pos, neg = Debounce(), Debounce()
    dp, dn = process_batch([b, b, c, b, c, c], [f] * 6, pos, neg)
    assert dp == [UNKNOWN, B, B, B, B, C]
    assert dn == [UNKNOWN, F, F, F, F, F]


def test_process_batch_uses_the_last_measurement_as_prev() -> None:
    # 7500 mV is B coming from B, C coming from C: the band is resolved per sample, not per detected state
    b, c, mid = raw_for(9000), raw_for(6000), raw_for(7500)
    assert 7000 <= voltage_mV(mid) < 8000
    dp, _ = process_batch([b, b, mid, mid], [b] * 4, Debounce(), Debounce())
    assert dp == [UNKNOWN, B, B, B]
    dp, _ = process_batch([c, c, mid, mid], [c] * 4, Debounce(), Debounce())
    assert dp == [UNKNOWN, C, C, C]


# -- evaluate: combined state -----------------------------------------------------------------------

PWM = 5000  # 50 %
FULL = 10000


def ev(
    pos: int, neg: int, u_pos: int, u_neg: int, *, driven: bool = True, duty: int = PWM, prev: int = 0
) -> tuple[CpState, CpError]:
    return evaluate(pos, neg, u_pos, u_neg, driven, duty, prev)


def test_combined_state_is_the_positive_side() -> None:
    assert ev(B, F, 9000, -12000) == (B, CpError(0))
    assert ev(C, F, 6000, -12000) == (C, CpError(0))
    assert ev(A, A, 12000, 12000, duty=FULL) == (A, CpError(0))


def test_combined_e_e_is_e_and_e_f_is_f() -> None:
    assert ev(E, E, 0, -12000, duty=0) == (E, CpError(0))
    assert ev(E, F, 0, -12000, duty=0) == (F, CpError(0))


def test_combined_pilot_fault_from_either_side() -> None:
    assert ev(PF, F, -5000, -12000) == (PF, CpError.PILOT)
    assert ev(B, PF, 9000, -5000) == (PF, CpError.PILOT)
    assert ev(E, PF, 0, -12000, duty=0) == (PF, CpError.PILOT)  # PF wins over E/F


def test_not_driven_is_e_and_skips_every_check() -> None:
    # a short or a pilot fault would be found if the pilot were driven
    assert ev(E, E, 0, 0, driven=False, duty=FULL) == (E, CpError(0))
    assert ev(PF, PF, -5000, -5000, driven=False) == (E, CpError(0))
    assert ev(C, F, 6000, -12000, driven=False) == (E, CpError(0))
    # and the errors stay as they were, the diode latch included
    prev = CpError.SHORT | CpError.DIODE
    assert ev(A, A, 12000, 12000, driven=False, prev=prev) == (E, prev)


# -- evaluate: CP short -----------------------------------------------------------------------------


@pytest.mark.parametrize("duty", [0, FULL])
def test_short_without_pwm(duty: int) -> None:
    # U+ < 2 V and U- > -10 V
    assert ev(E, E, 0, 0, duty=duty) == (E, CpError.SHORT)
    assert ev(E, E, 1999, -9999, duty=duty) == (E, CpError.SHORT)
    assert ev(E, PF, 1000, -5000, duty=duty) == (E, CpError.SHORT)  # the short wins: state forced to E


@pytest.mark.parametrize("duty", [0, FULL])
def test_no_short_without_pwm_at_the_edges(duty: int) -> None:
    assert ev(D, D, 2000, 2000, duty=duty)[1] == CpError(0)  # U+ not below 2 V
    assert ev(E, F, 0, -10000, duty=duty) == (F, CpError(0))  # U- at -10 V: the -12 V half is there


def test_short_with_pwm_when_the_negative_half_mirrors_the_positive() -> None:
    assert ev(E, E, 1000, -1000) == (E, CpError.SHORT)
    assert ev(E, PF, 1999, -3199) == (E, CpError.SHORT)  # |U+ + U-| = 1200
    assert ev(D, D, 1500, -300) == (E, CpError.SHORT)  # forced to E whatever the side said


def test_no_short_with_pwm_at_the_edges() -> None:
    assert ev(E, PF, 1999, -3200)[1] == CpError.PILOT  # |U+ + U-| = 1201
    assert ev(E, F, 1000, -12000) == (F, CpError(0))  # the -12 V half is there
    assert ev(D, D, 2000, -2000)[1] & CpError.SHORT == 0  # U+ at 2 V


# -- evaluate: ventilation --------------------------------------------------------------------------


def test_ventilation_in_d_with_the_negative_half() -> None:
    assert ev(D, F, 3000, -12000) == (D, CpError.VENTILATION)
    assert ev(D, F, 3000, -10000) == (D, CpError.VENTILATION)
    assert ev(D, PF, 3000, -9999) == (PF, CpError.PILOT)  # not D any more
    assert ev(D, D, 3000, 3000, duty=FULL) == (D, CpError(0))
    assert ev(C, F, 6000, -12000) == (C, CpError(0))


# -- evaluate: diode fault and its latch ------------------------------------------------------------


def test_diode_fault_when_the_negative_half_is_missing_under_pwm() -> None:
    state, errors = ev(C, PF, 6000, -6000)
    assert (state, errors) == (PF, CpError.DIODE)  # the diode fault replaces the pilot fault
    assert ev(B, B, 9000, -7800) == (B, CpError.DIODE)  # |U+ + U-| = 1200
    assert ev(B, PF, 9000, -7799)[1] == CpError.PILOT  # 1201: no diode fault
    assert ev(C, PF, 2000, -2000)[1] == CpError.PILOT  # U+ not above 2 V


def test_diode_fault_needs_pwm_and_a_state_other_than_a() -> None:
    assert ev(B, B, 9000, 9000, duty=FULL) == (B, CpError(0))  # no PWM: no negative half expected
    assert ev(C, C, 6000, -6000, duty=0)[1] & CpError.DIODE == 0
    assert ev(A, A, 12000, -12000) == (A, CpError(0))


def test_diode_fault_is_latched_until_a() -> None:
    _, errors = ev(C, PF, 6000, -6000)
    assert errors == CpError.DIODE
    # the negative half is back: still latched, in C, B and even in a pilot fault
    state, errors = ev(C, F, 6000, -12000, prev=errors)
    assert (state, errors) == (C, CpError.DIODE)
    state, errors = ev(B, F, 9000, -12000, prev=errors)
    assert (state, errors) == (B, CpError.DIODE)
    state, errors = ev(PF, F, 15000, -12000, prev=errors)
    assert (state, errors) == (PF, CpError.DIODE)  # no pilot fault while the diode fault is latched
    # also without PWM
    state, errors = ev(B, B, 9000, 9000, duty=FULL, prev=errors)
    assert errors == CpError.DIODE
    # A clears it
    state, errors = ev(A, F, 12000, -12000, prev=errors)
    assert (state, errors) == (A, CpError(0))
    state, errors = ev(B, F, 9000, -12000, prev=errors)
    assert errors == CpError(0)


def test_only_the_diode_bit_is_latched() -> None:
    prev = CpError.SHORT | CpError.VENTILATION | CpError.PILOT
    assert ev(C, F, 6000, -12000, prev=prev) == (C, CpError(0))


# -- evaluate: pilot fault --------------------------------------------------------------------------


def test_pilot_fault() -> None:
    assert ev(PF, PF, 14000, 14000, duty=FULL) == (PF, CpError.PILOT)
    assert ev(B, PF, 9000, -5000) == (PF, CpError.PILOT)
    assert ev(PF, F, -5000, -12000, duty=0)[1] == CpError.PILOT  # U- at -12 V: not a short
