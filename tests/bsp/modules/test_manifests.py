# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The BSP manifests match chargebyte's and EVerest's reference manifests, plus our named additions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import everest_bsp.modules
from everest_py.framework.schema import load_yaml
from tests.modules.test_manifests import shape

MODULES = Path(everest_bsp.modules.__file__).parent
SHARED = Path(__file__).resolve().parents[4] / "shared" / "reference"
REFERENCES = {
    "cb_tarragon_driver": SHARED / "chargebyte/everest-chargebyte/modules/CbTarragonDriver",
    "cb_tarragon_dis": SHARED / "chargebyte/everest-chargebyte/modules/CbTarragonDIs",
    "cb_tarragon_plug_lock": SHARED / "chargebyte/everest-chargebyte/modules/CbTarragonPlugLock",
    "serial_comm_hub": SHARED / "everest/modules/SerialCommHub",
    "generic_powermeter": SHARED / "everest/modules/GenericPowermeter",
    "bu_evse_board_support": SHARED / "everest/modules/BUEvseBoardSupport",
    "bu_powermeter": SHARED / "everest/modules/BUPowermeter",
}
# keys of ours, each with its reason in the module README
ADDITIONS = {
    "cb_tarragon_driver": {"hal_root", "contactor_min_close_interval_s"},
    "cb_tarragon_dis": {"hal_root"},
    "cb_tarragon_plug_lock": {"hal_root"},
}


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(path)  # YAML 1.2 booleans, as EVerest reads manifests
    return data


@pytest.mark.parametrize("folder", sorted(REFERENCES))
def test_matches_the_reference(folder: str) -> None:
    ref_file = REFERENCES[folder] / "manifest.yaml"
    if not ref_file.is_file():
        pytest.skip(f"no reference manifest at {ref_file}")
    if not (MODULES / folder / "manifest.yaml").is_file():
        pytest.fail(f"module {folder} has no manifest")
    ours, ref = read(MODULES / folder / "manifest.yaml"), read(ref_file)
    extra = ADDITIONS.get(folder, set())
    assert set(ours.get("config") or {}) - set(ref.get("config") or {}) == extra
    ours["config"] = {k: v for k, v in (ours.get("config") or {}).items() if k not in extra}
    assert shape(ours) == shape(ref)
    assert ours["description"] != ref["description"], "descriptions are in our own words"


@pytest.mark.parametrize("folder", sorted(p.name for p in MODULES.iterdir() if (p / "manifest.yaml").is_file()))
def test_metadata_readme_and_headers(folder: str) -> None:
    m = read(MODULES / folder / "manifest.yaml")
    assert m["metadata"] == {
        "license": "https://opensource.org/licenses/Apache-2.0",
        "authors": ["everest-py contributors"],
    }
    assert (MODULES / folder / "README.md").is_file()
    for f in (MODULES / folder).rglob("*"):
        if f.suffix in (".py", ".yaml"):
            assert f.read_text().startswith("# SPDX-License-Identifier: Apache-2.0\n"), f
