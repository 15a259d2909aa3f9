# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CPU cost of the simulated Tarragon board (TarragonBoardSim's thread) and how fresh its pilot samples are.

Phases: the board alone (nobody drives), and with the CP core sampling (a peak reset every 3.5 ms,
as CbTarragonDriver does) with the plug lock composed. The board thread's CPU time comes from
/proc/self/task/<tid>/schedstat. The second number per phase is the share of the core's samples
that saw the pilot level the board's physics gives at that moment (checked by flipping the car
between B and C every 100 ms and looking at the core's debounced state a little later).
Run: .venv/bin/python benchmarks/bench_tarragon_board.py [SECONDS_PER_PHASE] [PERIOD_MS]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from everest_bsp.hal.gpio import LineSettings, request_lines
from everest_bsp.hal.iio import AdcChannel
from everest_bsp.hal.pwm import SysfsPwm
from everest_bsp.sim.board import BoardConfig, TarragonBoardSim
from everest_bsp.sim.lock import LockMotorSim
from everest_bsp.sim.tarragon_tree import ADC_DEVICE, CP_PWM_DEVICE, TarragonTree
from everest_bsp.tarragon.cp_core import TARRAGON_LINES, CpCore, CpCoreConfig
from everest_bsp.tarragon.cp_logic import CpState

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
PERIOD_S = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.001
NAMES = TARRAGON_LINES


def thread_cpu_ns(tid: int) -> float:
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        return float(f.read().split()[0])


def board_tid(board: TarragonBoardSim) -> int:
    thread = board._thread  # a benchmark looks inside
    assert thread is not None and thread.native_id is not None
    return thread.native_id


def measure(board: TarragonBoardSim, seconds: float) -> float:
    """Board thread CPU in ms per second."""
    tid = board_tid(board)
    c0, w0 = thread_cpu_ns(tid), time.monotonic()
    time.sleep(seconds)
    return (thread_cpu_ns(tid) - c0) / 1e6 / (time.monotonic() - w0)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-board-"))
    tree = TarragonTree.create(work / "board")
    board = TarragonBoardSim(tree, BoardConfig(), lock=LockMotorSim(tree))
    settings = {n: LineSettings(output=True) for k, n in NAMES.items() if n and k != "trip"}
    settings["DIGITAL_IN_2"] = LineSettings()
    lines = request_lines(tree.root, "bench-board", settings)
    adcs = [AdcChannel.open(tree.root, ADC_DEVICE, ch) for ch in ("voltage2", "voltage3")]
    core = CpCore(CpCoreConfig.from_hal(adcs[0], adcs[1], SysfsPwm.open(tree.root, CP_PWM_DEVICE, 0), lines, NAMES))
    rows: list[tuple[str, float]] = []
    flips = hits = 0
    try:
        board.start(PERIOD_S)
        rows.append(("board alone", measure(board, SECONDS)))
        core.start()
        core.set_duty(500)
        core.enable(True)
        board.inject("car_state", "B")
        stop = threading.Event()
        result: list[float] = []

        def sampled() -> None:
            result.append(measure(board, SECONDS))
            stop.set()

        t = threading.Thread(target=sampled)
        t.start()
        want = "B"
        while not stop.is_set():
            want = "C" if want == "B" else "B"
            board.inject("car_state", want)
            flips += 1
            time.sleep(0.05)  # 14 samples: far more than the 2 of the debounce plus the board's latency
            hits += core.stats().state == (CpState.C if want == "C" else CpState.B)
            time.sleep(0.05)
        t.join()
        rows.append(("CP core sampling every 3.5 ms", result[0]))
    finally:
        core.close()
        board.close()
        lines.release()
        for a in adcs:
            a.close()
        tree.remove()
        shutil.rmtree(work, ignore_errors=True)
    print(f"TarragonBoardSim thread CPU, {SECONDS:.0f} s per phase, period {PERIOD_S * 1000:.1f} ms")
    for name, ms in rows:
        print(f"{name:32} {ms:8.2f} ms/s ({ms / 10:.1f} % of a core)")
    print(f"car flips B<->C seen by the core within 50 ms: {hits}/{flips}")


if __name__ == "__main__":
    main()
