# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""kas files: valid against the schema of the kas package, every fetched layer pinned."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .layers import KAS_FILES, MACHINES, REPO, yocto_tool

HERE = Path(__file__).resolve().parent


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_kas_files_match_the_schema() -> None:
    python = yocto_tool("python")
    result = subprocess.run(
        [str(python), str(HERE / "_kas_schema.py"), *map(str, KAS_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    assert set(report) == {str(p) for p in KAS_FILES}
    assert {Path(p).name: e for p, e in report.items() if e} == {}


def test_a_kas_file_per_machine_on_top_of_the_base() -> None:
    assert {p.stem for p in KAS_FILES if p.parent.name == "kas"} == set(MACHINES)
    for machine in MACHINES:
        data = load(REPO / "kas" / f"{machine}.yml")
        assert data["machine"] == machine
        assert data["header"]["includes"] == ["kas.yml"]
    base = load(REPO / "kas.yml")
    assert base["distro"] == "everest-py"
    assert base["defaults"]["repos"]["branch"] == "scarthgap"
    assert base["repos"]["everest-py"]["layers"] == {".": None, "meta-everest-py": None}


def test_every_fetched_repository_is_pinned_by_commit() -> None:
    repos: dict[str, dict[str, Any]] = {}
    for path in KAS_FILES:
        for name, repo in (load(path).get("repos") or {}).items():
            repos[f"{path.name}:{name}"] = repo or {}
    fetched = {k: r for k, r in repos.items() if r.get("url")}
    assert {k.split(":")[1] for k in fetched} >= {"poky", "meta-openembedded", "meta-rauc", "meta-security"}
    for key, repo in fetched.items():
        assert re.fullmatch(r"[0-9a-f]{40}", str(repo.get("commit", ""))), key


def test_kirkstone_only_layers_stay_in_their_machine_file() -> None:
    # meta-chargebyte is published for kirkstone only: its compatibility override must not
    # leak into the base file or another machine.
    for path in KAS_FILES:
        text = path.read_text()
        assert ("LAYERSERIES_COMPAT_chargebyte" in text) == (path.name == "tarragon.yml"), path.name
        branches = [r.get("branch") for r in (load(path).get("repos") or {}).values() if r]
        assert ("kirkstone" in branches) == (path.name == "tarragon.yml"), path.name
