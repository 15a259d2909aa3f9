# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The C core's pure functions (native/cp.c) and their Python twin (cp_logic) give the same answers."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from everest_bsp._native import ffi, lib
from everest_bsp.tarragon import cp_logic
from everest_bsp.tarragon.cp_logic import CpError, CpState, Debounce

STATES = st.integers(min_value=0, max_value=7)
MEASURED = st.integers(min_value=0, max_value=6)  # a measurement is never UNKNOWN
U_MV = st.integers(min_value=-17000, max_value=16000)  # the whole range of voltage_mV, and beyond
DUTY = st.one_of(st.sampled_from([0, 1, 500, 5000, 9999, 10000]), st.integers(min_value=0, max_value=10000))


def c_debounce(d: Debounce) -> Any:
    return ffi.new("struct cp_debounce *", [d.t0, d.t1, d.detected])


def test_voltage_over_every_raw_count() -> None:
    for raw in range(4096):
        assert lib.cp_voltage_mV(raw) == cp_logic.voltage_mV(raw), raw


def test_classify_over_every_millivolt_and_prev() -> None:
    for prev in range(8):
        c = [lib.cp_classify(u, prev) for u in range(-16100, 15700)]
        py = [cp_logic.classify(u, prev) for u in range(-16100, 15700)]
        assert c == py, prev


@given(u=st.integers(min_value=-(2**31), max_value=2**31 - 1), prev=STATES)
def test_classify_random(u: int, prev: int) -> None:
    assert lib.cp_classify(u, prev) == cp_logic.classify(u, prev)


@given(start=st.tuples(STATES, STATES, STATES), seq=st.lists(MEASURED, max_size=60))
def test_debounce_random_sequences(start: tuple[int, int, int], seq: list[int]) -> None:
    py = Debounce(*start)
    c = c_debounce(py)
    for m in seq:
        assert lib.cp_debounce_step(c, m) == py.step(m)
        assert (c.t0, c.t1, c.detected) == (py.t0, py.t1, py.detected)


@given(
    pos=STATES,
    neg=STATES,
    u_pos=U_MV,
    u_neg=U_MV,
    driven=st.booleans(),
    duty=DUTY,
    prev=st.integers(min_value=0, max_value=15),
)
@settings(max_examples=300)
def test_evaluate_random(pos: int, neg: int, u_pos: int, u_neg: int, driven: bool, duty: int, prev: int) -> None:
    out = ffi.new("struct cp_eval *")
    lib.cp_evaluate(pos, neg, u_pos, u_neg, int(driven), duty, prev, out)
    state, errors = cp_logic.evaluate(pos, neg, u_pos, u_neg, driven, duty, prev)
    assert (CpState(out.state), CpError(out.errors)) == (state, errors)


def test_evaluate_bulk_seeded() -> None:
    # many more cases than hypothesis can afford, around every threshold of the rules
    rng = random.Random(61851)
    edges = [-13000, -11000, -10000, -2000, -1000, 0, 2000, 4000, 5000, 7000, 8000, 10000, 11000, 13000]
    out = ffi.new("struct cp_eval *")
    for _ in range(20_000):
        u_pos = rng.choice(edges) + rng.randint(-1300, 1300)
        u_neg = rng.choice([-u_pos, rng.choice(edges)]) + rng.randint(-1300, 1300)
        pos, neg, prev = rng.randrange(8), rng.randrange(8), rng.randrange(16)
        driven = rng.random() < 0.9
        duty = rng.choice([0, 10000, rng.randint(0, 10000)])
        lib.cp_evaluate(pos, neg, u_pos, u_neg, int(driven), duty, prev, out)
        expected = cp_logic.evaluate(pos, neg, u_pos, u_neg, driven, duty, prev)
        assert (out.state, out.errors) == expected, (pos, neg, u_pos, u_neg, driven, duty, prev)


@given(
    u_pos=st.integers(min_value=-3000, max_value=10000),
    diff=st.integers(min_value=-1300, max_value=1300),
    duty=DUTY,
    pos=STATES,
    neg=STATES,
    prev=st.integers(min_value=0, max_value=15),
)
def test_evaluate_near_the_error_thresholds(u_pos: int, diff: int, duty: int, pos: int, neg: int, prev: int) -> None:
    # U- close to -U+, where the short and diode rules turn on and off
    u_neg = -u_pos + diff
    out = ffi.new("struct cp_eval *")
    lib.cp_evaluate(pos, neg, u_pos, u_neg, 1, duty, prev, out)
    assert (out.state, out.errors) == cp_logic.evaluate(pos, neg, u_pos, u_neg, True, duty, prev)


# raw streams that dwell on a level for a few samples, as a pilot does, with single-sample spikes
LEVELS = st.sampled_from([0, 300, 600, 1700, 1900, 2100, 2300, 2400, 2600, 2800, 2900, 3100, 3300, 3500, 3900, 4095])
RUNS = st.lists(
    st.tuples(st.one_of(LEVELS, st.integers(min_value=0, max_value=4095)), st.integers(min_value=1, max_value=4)),
    max_size=40,
)


def expand(runs: list[tuple[int, int]]) -> list[int]:
    return [raw for raw, n in runs for _ in range(n)]


@given(pos_runs=RUNS, neg_runs=RUNS, start=st.tuples(STATES, STATES, STATES))
@settings(max_examples=150)
def test_process_batch_equals_the_python_loop(
    pos_runs: list[tuple[int, int]], neg_runs: list[tuple[int, int]], start: tuple[int, int, int]
) -> None:
    raw_pos = expand(pos_runs)
    raw_neg = (expand(neg_runs) + [2048] * len(raw_pos))[: len(raw_pos)]
    n = len(raw_pos)
    py_pos, py_neg = Debounce(*start), Debounce(*start)
    c_pos, c_neg = c_debounce(py_pos), c_debounce(py_neg)
    out_pos, out_neg = ffi.new("int32_t[]", max(n, 1)), ffi.new("int32_t[]", max(n, 1))
    lib.cp_process_batch(
        ffi.new("int32_t[]", raw_pos), ffi.new("int32_t[]", raw_neg), n, c_pos, c_neg, out_pos, out_neg
    )
    exp_pos, exp_neg = cp_logic.process_batch(raw_pos, raw_neg, py_pos, py_neg)
    assert list(out_pos[0:n]) == exp_pos
    assert list(out_neg[0:n]) == exp_neg
    assert (c_pos.t0, c_pos.t1, c_pos.detected) == (py_pos.t0, py_pos.t1, py_pos.detected)
    assert (c_neg.t0, c_neg.t1, c_neg.detected) == (py_neg.t0, py_neg.t1, py_neg.detected)


def test_constants_match() -> None:
    assert [s.value for s in CpState] == [
        lib.CP_A,
        lib.CP_B,
        lib.CP_C,
        lib.CP_D,
        lib.CP_E,
        lib.CP_F,
        lib.CP_PILOT_FAULT,
        lib.CP_UNKNOWN,
    ]
    assert [e.value for e in CpError] == [lib.CP_ERR_SHORT, lib.CP_ERR_DIODE, lib.CP_ERR_VENTILATION, lib.CP_ERR_PILOT]
    assert lib.CP_ERROR_VOLTAGE_MAX_DIFF == cp_logic.ERROR_VOLTAGE_MAX_DIFF_MV
    assert lib.CP_SHORT_U_POS_MAX == cp_logic.SHORT_U_POS_MAX_MV
    assert lib.CP_NEG_12V_MIN == cp_logic.NEG_12V_MIN_MV
