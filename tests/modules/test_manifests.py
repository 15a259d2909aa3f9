# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The module manifests match EVerest's reference manifests; every file has its header."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

import everest_py.modules

MODULES = Path(everest_py.modules.__file__).parent
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "everest" / "modules"
FOLDERS = {
    "PersistentStore": "persistent_store",
    "YamlStore": "yaml_store",
    "ChargerInfo": "charger_info",
    "ErrorHistory": "error_history",
    "LocalAllowlistTokenValidator": "local_allowlist_token_validator",
    "AuthListValidator": "auth_list_validator",
}
SCHEMA_KEYS = ("type", "default", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern")


def manifest(folder: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MODULES / folder / "manifest.yaml").read_text())
    return data


def shape(m: dict[str, Any]) -> dict[str, Any]:
    """Everything of a manifest but the wording."""

    def config(entries: dict[str, Any] | None) -> dict[str, Any]:
        return {k: {s: v[s] for s in SCHEMA_KEYS if s in v} for k, v in (entries or {}).items()}

    return {
        "config": config(m.get("config")),
        "provides": {
            i: {"interface": p["interface"], "config": config(p.get("config"))}
            for i, p in (m.get("provides") or {}).items()
        },
        "requires": {
            r: {"interface": q["interface"], "min": q.get("min_connections", 1), "max": q.get("max_connections", 1)}
            for r, q in (m.get("requires") or {}).items()
        },
        "enable_global_errors": m.get("enable_global_errors", False),
        "enable_external_mqtt": m.get("enable_external_mqtt", False),
        "enable_telemetry": m.get("enable_telemetry", False),
    }


@pytest.mark.parametrize("name", [n for n in FOLDERS if n != "AuthListValidator"])
def test_matches_the_reference(name: str) -> None:
    ref_file = REFERENCE / name / "manifest.yaml"
    if not ref_file.is_file():
        pytest.skip(f"no reference manifest at {ref_file}")
    ours, ref = manifest(FOLDERS[name]), yaml.safe_load(ref_file.read_text())
    assert shape(ours) == shape(ref)
    assert ours["description"] != ref["description"], "descriptions are in our own words"


def test_auth_list_validator_manifest() -> None:
    assert shape(manifest("auth_list_validator")) == {
        "config": {"list_file": {"type": "string"}},
        "provides": {"main": {"interface": "auth_token_validator", "config": {}}},
        "requires": {},
        "enable_global_errors": False,
        "enable_external_mqtt": False,
        "enable_telemetry": False,
    }


@pytest.mark.parametrize("folder", FOLDERS.values())
def test_metadata_and_headers(folder: str) -> None:
    assert manifest(folder)["metadata"] == {
        "license": "https://opensource.org/licenses/Apache-2.0",
        "authors": ["everest-py contributors"],
    }
    base = MODULES / folder
    for name in ("__init__.py", "module.py", "manifest.yaml", "README.md"):
        assert (base / name).is_file(), name
    header = ["# SPDX-License-Identifier: Apache-2.0", "# Copyright contributors to everest-py"]
    for f in base.glob("*.yaml"):
        assert f.read_text().splitlines()[:2] == header, f
    for f in base.glob("*.py"):
        text = f.read_text()
        assert text.splitlines()[:2] == header, f
        doc = ast.get_docstring(ast.parse(text))
        assert doc, f
        assert "\n" not in doc.strip().split("\n\n")[0], f"{f}: the docstring starts with one line"
