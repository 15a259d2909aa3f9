# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Memory and time to global ready of a run config: one host process vs --isolate.

Memory is RSS and PSS (shared pages split fairly) of the manager and its module processes after
global ready; the broker is not counted. Time is from starting `everest-py run` until the status
line ALL_MODULES_STARTED, median of several runs.
Run: .venv/bin/python benchmarks/bench_startup_memory.py [RUNS] [CONFIG] (default config/sil-framework.yaml)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from _common import REPO, children, memory_kb
from everest_py.testing import Broker, Stack, free_port, localize_paths, write_config

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
CONFIG = sys.argv[2] if len(sys.argv) > 2 else "config/sil-framework.yaml"


def load_yaml_text(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def prepared_config(d: Path, broker: Broker, config: str = "config/sil-framework.yaml") -> Path:
    """A config of the repository with its relative paths made absolute (data into d)."""
    raw = yaml.safe_load((REPO / config).read_text())
    template = REPO / "config" / "sim" / Path(config).name
    if template.is_file():  # a board's config: merge its simulator overlay (config/sim/)
        from everest_bsp.sim.overlay import render
        from everest_py.framework.config import merge_patch

        values = {"RUN": str(d), "REPO": str(REPO), "RPC_PORT": str(free_port())}
        raw = merge_patch(raw, load_yaml_text(render(template.read_text(), values)))
    localize_paths(raw, d, REPO)
    if "rpc_api" in raw["active_modules"]:
        raw["active_modules"]["rpc_api"].setdefault("config_module", {})["websocket_port"] = free_port()
    path = d / Path(config).name
    write_config(path, raw, broker, validate_schema=False)
    return path


def measure(config: Path, *args: str) -> tuple[float, int, int, int]:
    t0 = time.perf_counter()
    stack = Stack(config, *args).start()
    ready_s = time.perf_counter() - t0
    time.sleep(0.5)  # let start-up garbage settle
    pids = [stack.pid, *children(stack.pid)]
    rss = pss = 0
    for pid in pids:
        r, p = memory_kb(pid)
        rss += r
        pss += p
    assert stack.stop() == 0
    return ready_s, rss, pss, len(pids)


def main() -> None:
    broker = Broker().start()
    d = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    try:
        config = prepared_config(d, broker, CONFIG)
        results = {}
        for name, args in (("one host", ()), ("--isolate", ("--isolate",))):
            runs = [measure(config, *args) for _ in range(RUNS)]
            results[name] = runs
    finally:
        broker.stop()
    print(f"{CONFIG}, {RUNS} runs each, medians")
    print(f"{'':10} {'processes':>9} {'RSS MB':>8} {'PSS MB':>8} {'to ready s':>11}")
    med = {}
    for name, runs in results.items():
        ready = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs) / 1024
        pss = statistics.median(r[2] for r in runs) / 1024
        med[name] = (ready, rss, pss)
        print(f"{name:10} {runs[0][3]:9d} {rss:8.1f} {pss:8.1f} {ready:11.2f}")
    one, iso = med["one host"], med["--isolate"]
    print(
        f"ratio --isolate / one host: RSS {iso[1] / one[1]:.1f}x, PSS {iso[2] / one[2]:.1f}x, "
        f"time to ready {iso[0] / one[0]:.1f}x"
    )


if __name__ == "__main__":
    main()
