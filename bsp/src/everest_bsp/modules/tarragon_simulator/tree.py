# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Making and removing the simulated board's tree under ``hal_root``, safely."""

from __future__ import annotations

import shutil
from pathlib import Path

from everest_bsp.sim.tarragon_tree import TarragonTree
from everest_py.errors import ConfigError

TREE_ENTRIES = frozenset({"dev", "sys"})  # what a TarragonTree puts at its top level


def build(hal_root: str) -> TarragonTree:
    """A fresh tree in ``hal_root``; a tree left by a killed run is replaced, anything else refused."""
    root = Path(hal_root)
    if not hal_root or not root.is_absolute() or root == Path(root.anchor):
        raise ConfigError([f"hal_root: '{hal_root}' must be an absolute directory below /, not / itself"])
    if root.exists():
        if not root.is_dir():
            raise ConfigError([f"hal_root: {root} exists and is not a directory"])
        foreign = sorted({p.name for p in root.iterdir()} - TREE_ENTRIES)
        if foreign:
            raise ConfigError([f"hal_root: {root} holds {', '.join(foreign)}: not a simulated board, left alone"])
        shutil.rmtree(root)
    return TarragonTree.create(root)
