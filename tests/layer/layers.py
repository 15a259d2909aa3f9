# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Where the layers, recipes and Yocto tools are, and a reader for simple bitbake assignments.

``assignment(path, "RDEPENDS:${PN}")`` returns the words of the first ``NAME = "..."`` (or
``+=``) block of that name in a recipe, with line continuations joined; enough for the one-block
RDEPENDS lists of meta-everest-py, not a bitbake parser.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOFTWARE_LAYER = REPO / "meta-everest-py"
PRODUCT_RECIPES = REPO / "recipes-core"
KAS_FILES = [REPO / "kas.yml", *sorted((REPO / "kas").glob("*.yml"))]
MACHINES = ("qemuarm64", "tarragon", "chargesom")

# The tools live in a venv of their own (kas and oelint-adv pin their own dependencies).
YOCTO_VENV = Path(os.environ.get("EVEREST_PY_YOCTO_VENV", REPO / ".venv-yocto"))
SETUP_HINT = (
    f"{YOCTO_VENV} is missing: python3 -m venv .venv-yocto && "
    ".venv-yocto/bin/pip install kas==5.5 oelint-adv==9.11.2 jsonschema"
)


def yocto_tool(name: str) -> Path:
    """The tool from the Yocto venv, or skip the test with the reason."""
    tool = YOCTO_VENV / "bin" / name
    if not tool.exists():
        pytest.skip(SETUP_HINT)
    return tool


def recipe_files() -> list[Path]:
    """Every recipe, bbappend, class and include of both layers."""
    found: list[Path] = []
    for top in (SOFTWARE_LAYER, PRODUCT_RECIPES):
        for pattern in ("*.bb", "*.bbappend", "*.bbclass", "*.inc"):
            found.extend(top.rglob(pattern))
    return sorted(found)


def assignment(path: Path, name: str) -> list[str]:
    """The words assigned to ``name`` in its first block in ``path`` (``=``, ``?=``, ``+=``)."""
    text = path.read_text().replace("\\\n", " ")
    m = re.search(rf'^{re.escape(name)}\s*(?:\?\?=|\?=|\+=|=)\s*"([^"]*)"', text, re.MULTILINE)
    if m is None:
        raise KeyError(f"{path.name}: no assignment to {name}")
    return m.group(1).split()
