# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Manifests and file headers of Auth, the dummy token providers, EnergyManager and EnergyNode."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

import everest_py.modules

from ..test_manifests import REFERENCE, shape

MODULES = Path(everest_py.modules.__file__).parent
FOLDERS = {
    "Auth": "auth",
    "DummyTokenProvider": "dummy_token_provider",
    "DummyTokenProviderManual": "dummy_token_provider_manual",
    "EnergyManager": "energy_manager",
    "EnergyNode": "energy_node",
}
HEADER = ["# SPDX-License-Identifier: Apache-2.0", "# Copyright contributors to everest-py"]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.mark.parametrize("name", FOLDERS)
def test_manifest_matches_everest(name: str) -> None:
    ref_file = REFERENCE / name / "manifest.yaml"
    if not ref_file.is_file():
        pytest.skip(f"no reference manifest at {ref_file}")
    ours, ref = load(MODULES / FOLDERS[name] / "manifest.yaml"), load(ref_file)
    assert shape(ours) == shape(ref)
    assert ours["description"] != ref["description"], "descriptions are in our own words"
    assert ours["metadata"] == {
        "license": "https://opensource.org/licenses/Apache-2.0",
        "authors": ["everest-py contributors"],
    }


@pytest.mark.parametrize("folder", FOLDERS.values())
def test_files_and_headers(folder: str) -> None:
    base = MODULES / folder
    for name in ("__init__.py", "module.py", "manifest.yaml", "README.md"):
        assert (base / name).is_file(), name
    for f in base.glob("*.yaml"):
        assert f.read_text().splitlines()[:2] == HEADER, f
    for f in base.glob("*.py"):
        text = f.read_text()
        assert text.splitlines()[:2] == HEADER, f
        doc = ast.get_docstring(ast.parse(text))
        assert doc and "\n" not in doc.strip().split("\n\n")[0], f
        assert len(text.splitlines()) < 520, f"{f} is too long to read in one sitting"
