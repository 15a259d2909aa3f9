# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CPU cost of the control-pilot core: its C thread while sampling continuously and while idle.

The core runs against the simulated Tarragon (peak resets on the simulated GPIO chip, ADC and PWM
as files). The thread's own CPU time comes from /proc/self/task/<tid>/schedstat (nanoseconds on
CPU; /proc/self/task/<tid>/stat in clock ticks where schedstat is missing); the whole process is
measured with os.times while the Python thread only sleeps. Phases: disabled (the thread only
polls the trip input every 10 ms), and enabled with the pilot steady in C (a sample every 3.5 ms).
Numbers are for this machine; on the charger's i.MX6ULL expect several times more per sample.
Run: .venv/bin/python benchmarks/bench_cp_cpu.py [SECONDS_PER_PHASE]
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from everest_bsp.hal.gpio import LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.sim.tarragon_tree import ADC_DEVICE, CP_PWM_DEVICE, TarragonTree
from everest_bsp.tarragon.cp_core import TARRAGON_LINES, CpCore, CpCoreConfig
from everest_bsp.tarragon.cp_logic import CpState, voltage_mV

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
NAMES = TARRAGON_LINES
TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def raw_for(mv: int) -> int:
    return min(range(4096), key=lambda r: abs(voltage_mV(r) - mv))


def thread_cpu_ns(tid: int) -> float:
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            return float(f.read().split()[0])
    except OSError:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * TICK_NS  # utime, stime


def process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def measure(core: CpCore, seconds: float) -> tuple[float, float, float]:
    """(thread CPU ms per second, process CPU ms per second, samples per second)."""
    tid = core.stats().tid
    s0, c0, p0, w0 = core.stats().samples, thread_cpu_ns(tid), process_cpu_s(), time.monotonic()
    time.sleep(seconds)
    s1, c1, p1, w1 = core.stats().samples, thread_cpu_ns(tid), process_cpu_s(), time.monotonic()
    wall = w1 - w0
    return (c1 - c0) / 1e6 / wall, (p1 - p0) * 1e3 / wall, (s1 - s0) / wall


def python_sampler(lines: Any, adcs: list[AdcChannel], seconds: float) -> tuple[float, float, float]:
    """The same cycle in a Python thread (HAL + the twin): what the C core saves."""
    from everest_bsp.tarragon.cp_logic import Debounce, classify, voltage_mV

    out: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        deb = [Debounce(), Debounce()]
        n = 0
        c0, w0 = time.thread_time(), time.monotonic()
        while not stop.is_set():
            lines.set_many({NAMES["rst_pos"]: True, NAMES["rst_neg"]: True})
            time.sleep(0.0015)
            lines.set_many({NAMES["rst_pos"]: False, NAMES["rst_neg"]: False})
            time.sleep(0.002)
            for side, adc in enumerate(adcs):
                d = deb[side]
                d.step(classify(voltage_mV(adc.read_raw()), d.t1))
            n += 1
        wall = time.monotonic() - w0
        out.extend(((time.thread_time() - c0) * 1e3 / wall, n / wall))

    t = threading.Thread(target=loop)
    p0, w0 = process_cpu_s(), time.monotonic()
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return out[0], (process_cpu_s() - p0) * 1e3 / (time.monotonic() - w0), out[1]


def main() -> None:
    tree = TarragonTree.create(Path(tempfile.mkdtemp(prefix="bench-cpu-")) / "board")
    settings = {n: LineSettings(output=True) for k, n in NAMES.items() if n and k != "trip"}
    settings["DIGITAL_IN_2"] = LineSettings()
    lines = request_lines(tree.root, "bench-cpu", settings)
    adcs = [AdcChannel.open(tree.root, ADC_DEVICE, ch) for ch in ("voltage2", "voltage3")]
    core = CpCore(CpCoreConfig.from_hal(adcs[0], adcs[1], SysfsPwm.open(tree.root, CP_PWM_DEVICE, 0), lines, NAMES))
    rows = []
    try:
        core.start()
        deadline = time.monotonic() + 2
        while core.stats().tid == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        rows.append(("disabled (trip poll every 10 ms)", *measure(core, SECONDS)))
        tree.write_adc("voltage2", raw_for(6000))
        tree.write_adc("voltage3", raw_for(-12000))
        core.set_duty(500)
        core.enable(True)
        deadline = time.monotonic() + 2
        while core.stats().state != CpState.C and time.monotonic() < deadline:
            time.sleep(0.01)
        core.events()
        rows.append(("sampling, pilot steady in C", *measure(core, SECONDS)))
        stats = core.stats()
        core.close()
        rows.append(("same cycle in a Python thread", *python_sampler(lines, adcs, SECONDS)))
    finally:
        core.close()
        lines.release()
        for a in adcs:
            a.close()
        tree.remove()
    print(f"CP core CPU use, {SECONDS:.0f} s per phase, {'SCHED_FIFO' if stats.realtime else 'normal scheduling'}")
    print(f"{'':34} {'thread ms/s':>11} {'process ms/s':>12} {'samples/s':>10} {'us/sample':>10}")
    for name, thread_ms, proc_ms, rate in rows:
        per = f"{thread_ms * 1e3 / rate:10.1f}" if rate else f"{'-':>10}"
        print(f"{name:34} {thread_ms:11.2f} {proc_ms:12.2f} {rate:10.1f} {per}")
    c_ms, py_ms = rows[1][1], rows[2][1]
    print(f"Python thread / C core, CPU per second of sampling: {py_ms / c_ms:.1f}x")
    last, worst = stats.cycle_ns_last / 1e6, stats.cycle_ns_max / 1e6
    print(f"sample cycle: last {last:.2f} ms, max {worst:.2f} ms (3.5 ms of it asleep)")


if __name__ == "__main__":
    main()
