# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Shared bits of the benchmarks: test-only modules on the path, percentiles, process memory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTMODULES = REPO / "tests" / "framework"
EXTRA = "FakeBoard=testmodules.fake_board.module:FakeBoard,BoardUser=testmodules.board_user.module:BoardUser"


def use_test_modules() -> None:
    """Make the framework's test modules (FakeBoard, BoardUser) loadable, here and in children."""
    os.environ["EVEREST_PY_EXTRA_MODULES"] = EXTRA
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTMODULES), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(TESTMODULES))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; PSS shares common pages fairly between processes."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out
