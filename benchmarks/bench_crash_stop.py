# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Crash-only: time from SIGKILL of an isolated module until the manager has exited (target < 1 s).

The stack is config/sil-framework.yaml with one module (the PersistentStore) isolated; the time
runs from os.kill until waitpid returns the manager's status (safe states applied, the other
processes stopped).
Run: .venv/bin/python benchmarks/bench_crash_stop.py [RUNS]
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import children
from bench_startup_memory import prepared_config
from everest_py.testing import Broker, Stack

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def main() -> None:
    broker = Broker().start()
    d = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    times = []
    try:
        config = prepared_config(d, broker)
        raw = yaml.safe_load(config.read_text())
        raw["active_modules"]["store"]["isolate"] = True
        config.write_text(yaml.safe_dump(raw))
        for _ in range(RUNS):
            stack = Stack(config).start()
            (child,) = children(stack.pid)
            t0 = time.perf_counter()
            os.kill(child, signal.SIGKILL)
            code = stack.wait(10)
            times.append(time.perf_counter() - t0)
            assert code == 1, stack.log()
    finally:
        broker.stop()
    print(f"SIGKILL of an isolated module -> manager exited with status 1, {RUNS} runs")
    print(f"median {statistics.median(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
