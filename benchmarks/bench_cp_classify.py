# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Control-pilot classification + debounce: the C core (cp_process_batch) versus its Python twin.

Both work through the same random raw streams (both peak detectors, the pilot dwelling on a level
for a while with noise and single-sample spikes) in one run; the outputs are compared, then the
rates are printed. Target: C >= 20x the Python twin.
Run: .venv/bin/python benchmarks/bench_cp_classify.py [PAIRS]
"""

from __future__ import annotations

import itertools
import random
import sys
import time

from everest_bsp._native import ffi, lib
from everest_bsp.tarragon.cp_logic import Debounce, process_batch

PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
REPEAT = 5
# raw counts near the state levels: A 12 V, B 9 V, C 6 V, D 3 V, E 0 V, F -12 V
LEVELS = [3629, 3239, 2851, 2462, 2074, 520]


def streams(n: int, seed: int = 61851) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    pos: list[int] = []
    neg: list[int] = []
    while len(pos) < n:
        level = rng.choice(LEVELS)
        pwm = rng.random() < 0.7
        for _ in range(rng.randint(1, 40)):
            p = level + rng.randint(-12, 12)
            if rng.random() < 0.02:  # a spike
                p = rng.randrange(4096)
            pos.append(p)
            neg.append(520 + rng.randint(-12, 12) if pwm else p)
    return pos[:n], neg[:n]


def run_c(raw_pos: list[int], raw_neg: list[int]) -> tuple[float, list[int], list[int]]:
    n = len(raw_pos)
    cp, cn = ffi.new("int32_t[]", raw_pos), ffi.new("int32_t[]", raw_neg)
    op, on = ffi.new("int32_t[]", n), ffi.new("int32_t[]", n)
    best = float("inf")
    for _ in range(REPEAT):
        dp = ffi.new("struct cp_debounce *", [7, 7, 7])
        dn = ffi.new("struct cp_debounce *", [7, 7, 7])
        t0 = time.perf_counter()
        lib.cp_process_batch(cp, cn, n, dp, dn, op, on)
        best = min(best, time.perf_counter() - t0)
    return best, list(op), list(on)


def run_py(raw_pos: list[int], raw_neg: list[int]) -> tuple[float, list[int], list[int]]:
    best = float("inf")
    out: tuple[list[int], list[int]] = ([], [])
    for _ in range(max(1, REPEAT // 2)):
        t0 = time.perf_counter()
        out = process_batch(raw_pos, raw_neg, Debounce(), Debounce())
        best = min(best, time.perf_counter() - t0)
    return best, out[0], out[1]


def main() -> None:
    raw_pos, raw_neg = streams(PAIRS)
    t_c, c_pos, c_neg = run_c(raw_pos, raw_neg)
    t_py, py_pos, py_neg = run_py(raw_pos, raw_neg)
    assert (c_pos, c_neg) == (py_pos, py_neg), "C and the Python twin disagree"
    changes = sum(1 for a, b in itertools.pairwise(c_pos) if a != b)
    rate_c, rate_py = PAIRS / t_c, PAIRS / t_py
    print(f"CP classification + debounce of {PAIRS} sample pairs ({changes} accepted changes on CP+), best of runs")
    print(f"{'':28} {'pairs/s':>14} {'ns/pair':>9}")
    print(f"{'C (cp_process_batch)':28} {rate_c:14,.0f} {1e9 / rate_c:9.1f}")
    print(f"{'Python twin (cp_logic)':28} {rate_py:14,.0f} {1e9 / rate_py:9.1f}")
    print(f"C / Python: {rate_c / rate_py:.0f}x   (target >= 20x; outputs identical)")


if __name__ == "__main__":
    main()
