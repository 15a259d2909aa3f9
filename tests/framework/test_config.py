# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Run config validation: the broken-config corpus, overlays, and chargebyte's fixture configs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from everest_py.framework.cli import main
from everest_py.framework.config import load_run_config, merge_patch
from everest_py.framework.contracts import Contracts
from everest_py.framework.registry import Registry

HERE = Path(__file__).resolve().parent
CASES = yaml.safe_load((HERE / "broken_configs.yaml").read_text())
FIXTURES = HERE.parents[2] / "shared" / "fixtures" / "configs"


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(path)])
    return int(exit_.value.code or 0), capsys.readouterr().err.splitlines()


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_broken_config_gives_its_exact_lines(case, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(case["config"])
    code, lines = check(path, capsys)
    assert code == 2
    assert lines == [line.replace("{file}", str(path)) for line in case["expect"]]


def test_no_traceback_and_status_2_from_the_command(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CASES[0]["config"])
    done = subprocess.run(
        [sys.executable, "-m", "everest_py", "check", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_good_config_passes(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("active_modules:\n  v: {module: DummyTokenValidator}\n")
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(path)])
    assert exit_.value.code == 0
    assert "ok, 1 modules" in capsys.readouterr().out


def test_defaults_are_filled_in(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("active_modules:\n  v: {module: DummyTokenValidator, config_implementation: {main: {sleep: 2}}}\n")
    cfg = load_run_config(path, Registry(Contracts()))
    assert cfg.modules["v"].config_impl["main"] == {
        "validation_result": "Accepted",
        "validation_reason": "Token valid",
        "sleep": 2,
    }
    params = cfg.modules["v"].configuration_parameters()
    assert params["!module"] == []
    assert params["main"][2] == {
        "name": "sleep",
        "value": 2,
        "characteristics": {"datatype": "number", "mutability": "ReadOnly"},
    }


def test_user_config_overlay_is_merged(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(
        "active_modules:\n  v: {module: DummyTokenValidator, config_implementation: {main: {sleep: 500}}}\n"
    )
    code, _ = check(path, capsys)
    assert code == 2
    (tmp_path / "user-config").mkdir()
    (tmp_path / "user-config" / "config.yaml").write_text(
        "active_modules:\n  v: {config_implementation: {main: {sleep: 1}}}\n  w: {module: DummyTokenValidator}\n"
    )
    cfg = load_run_config(path, Registry(Contracts()))
    assert cfg.overlay == tmp_path / "user-config" / "config.yaml"
    assert cfg.modules["v"].config_impl["main"]["sleep"] == 1
    assert set(cfg.modules) == {"v", "w"}


def test_merge_patch_follows_rfc_7386():
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {
        "a": "z",
        "c": {"d": "e"},
    }
    assert merge_patch({"a": [1]}, {"a": [2, 3]}) == {"a": [2, 3]}
    assert merge_patch({"a": 1}, "x") == "x"


@pytest.mark.parametrize("name", ["tarragon-bsp-only.yaml", "chargesom-dc.yaml"])
def test_fixture_configs_fail_only_on_missing_modules(name, tmp_path, capsys):
    if not FIXTURES.is_dir():
        pytest.skip(f"fixture configs not found at {FIXTURES}")
    path = tmp_path / name
    shutil.copy(FIXTURES / name, path)
    raw = yaml.safe_load(path.read_text())["active_modules"]
    registry = Registry(Contracts())
    missing = {mid: m["module"] for mid, m in raw.items() if registry.manifest(m["module"]) is None}
    code, lines = check(path, capsys)
    expected = [
        f"everest-py: {path}: {mid}.module: no module named '{name_}' in everest-py (not implemented)"
        for mid, name_ in missing.items()
    ]
    assert sorted(lines) == sorted(expected)
    assert code == (2 if missing else 0)


def test_yaml_booleans_are_yaml_1_2(tmp_path):
    """EVerest reads `no`/`yes`/`on`/`off` as strings; only true/false are booleans."""
    from everest_py.framework.schema import load_yaml

    path = tmp_path / "x.yaml"
    path.write_text("feedback: no\nenum: [none, no, nc]\nflag: true\nother: False\nword: on\n")
    assert load_yaml(path) == {
        "feedback": "no",
        "enum": ["none", "no", "nc"],
        "flag": True,
        "other": False,
        "word": "on",
    }
