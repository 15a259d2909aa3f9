# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BSP tests: the module-test fixtures, and a simulated Tarragon tree per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from everest_bsp.sim.tarragon_tree import TarragonTree
from tests.modules.conftest import check_result, contracts, run_probe

__all__ = ["check_result", "contracts", "run_probe"]


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[TarragonTree]:
    t = TarragonTree.create(tmp_path / "board")
    try:
        yield t
    finally:
        t.close()
