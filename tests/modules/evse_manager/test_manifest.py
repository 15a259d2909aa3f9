# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The EvseManager manifest matches EVerest's; the config dataclass matches the manifest; file headers."""

from __future__ import annotations

import ast
import dataclasses

import yaml

from everest_py.modules.evse_manager.config import EvseManagerConfig

from ..test_manifests import MODULES, REFERENCE, manifest, shape


def test_matches_the_reference() -> None:
    ours = manifest("evse_manager")
    ref = yaml.safe_load((REFERENCE / "EvseManager" / "manifest.yaml").read_text())
    assert shape(ours) == shape(ref)
    assert list(ours["config"]) == list(ref["config"])
    assert ours["description"] != ref["description"]
    for key, entry in ours["config"].items():
        assert entry["description"] != ref["config"][key]["description"], f"{key}: our own words"
    assert ours["metadata"] == {
        "license": "https://opensource.org/licenses/Apache-2.0",
        "authors": ["everest-py contributors"],
    }


def test_config_dataclass_has_every_key() -> None:
    config = manifest("evse_manager")["config"]
    fields = {f.name: f for f in dataclasses.fields(EvseManagerConfig)}
    assert list(fields) == list(config)
    for key, entry in config.items():
        if "default" in entry:
            assert fields[key].default == entry["default"], key


def test_headers_and_docstrings() -> None:
    base = MODULES / "evse_manager"
    header = ["# SPDX-License-Identifier: Apache-2.0", "# Copyright contributors to everest-py"]
    for name in ("__init__.py", "module.py", "manifest.yaml", "README.md"):
        assert (base / name).is_file(), name
    for f in [*base.glob("*.py"), *base.glob("*.yaml")]:
        text = f.read_text()
        assert text.splitlines()[:2] == header, f
        if f.suffix == ".py":
            doc = ast.get_docstring(ast.parse(text))
            assert doc, f
            assert "\n" not in doc.strip().split("\n\n")[0], f
            assert len(text.splitlines()) < 800, f"{f}: keep files small"
