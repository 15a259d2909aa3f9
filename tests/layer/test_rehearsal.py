# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The rootfs rehearsal: the stack runs from a read-only staged root and writes only to tmpfs.

See rehearsal.py for how the root is staged and locked down.  The run is the qemuarm64 default:
/etc/everest/config.yaml (config/sil-ac.yaml) with a user-config overlay on the data directory
(a free port for the JSON-RPC API), started the way everest-py.service starts it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from . import rehearsal
from .test_rdepends import DISTS, LAYER, MANIFEST, Dist, provider, rdepends, recipe_path

# The two runs: the qemuarm64 default (config.yaml -> sil-ac.yaml, relative paths into the working
# directory /var/lib/everest) and the Charge Control C config against the simulated board.
RUNS = ("sil-ac", "tarragon")
RUN_PARAMS = list(RUNS)
TMPFILES = rehearsal.SERVICE_RECIPE_DIR / "files" / "everest-py.tmpfiles"
# Stdlib modules loaded at run time whose package is outside the RDEPENDS closure of our recipes,
# each with the recipe that brings it on the target.
RUNTIME_EXTRAS: dict[str, str] = {}
# The bsp's C helpers, compiled when its wheel was built, load from the read-only root.
NATIVE_PROBE = "import everest_bsp._native as n; print(n.__file__); print(n.lib.simgpio_open)"


@pytest.fixture(scope="session")
def staged(tmp_path_factory: pytest.TempPathFactory) -> rehearsal.Staged:
    reason = rehearsal.namespace_available()
    if reason is not None:
        pytest.skip(f"the rehearsal needs private mount namespaces (root): {reason}")
    return rehearsal.stage_once(rehearsal.session_dir(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def run(staged: rehearsal.Staged, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One rehearsal per session: a charging session from the read-only root, the root before and after."""

    def rehearse() -> dict[str, Any]:
        before = rehearsal.snapshot(staged.root)
        configs = sorted(
            p.name for p in staged.etc.glob("*.yaml") if p.name != "config.yaml" and "active_modules:" in p.read_text()
        )
        argv = rehearsal.staged_argv(staged, verbose=True)
        report = rehearsal.rehearse(
            staged,
            {
                "runs": [
                    {"name": "sil-ac", "argv": argv, "overlay": rehearsal.sil_overlay(), "session": True},
                    {
                        "name": "tarragon",
                        "argv": argv,
                        "config": "/etc/everest/tarragon-ac.yaml",
                        "overlay": rehearsal.board_overlay(),
                        "session": True,
                    },
                ],
                "commands": [
                    *([str(staged.script), "check", str(staged.etc / name)] for name in configs),
                    [str(staged.python), "-I", "-c", NATIVE_PROBE],
                ],
                "write_probes": [
                    str(staged.site / "probe"),
                    "/etc/everest/probe",
                    "/etc/probe",
                    "/var/lib/probe",
                    str(staged.root / "probe"),
                    str(rehearsal.REPO / "probe"),
                    str(staged.root.parent / "probe"),
                ],
            },
        )
        report["changes"] = rehearsal.diff(before, rehearsal.snapshot(staged.root))
        return report

    return rehearsal.shared(rehearsal.session_dir(tmp_path_factory.getbasetemp()), "run", rehearse)


def stack(run: dict[str, Any], name: str = "sil-ac") -> dict[str, Any]:
    (result,) = [r for r in run["runs"] if r["name"] == name]
    assert "error" not in result, f"{result['error']}\n{result['log_tail']}"
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("name", RUN_PARAMS)
def test_the_stack_reaches_global_ready_from_the_read_only_root(run: dict[str, Any], name: str) -> None:
    result = stack(run, name)
    assert result["status"] == ["ALL_MODULES_STARTED"]
    # Type=notify and WatchdogSec= of everest-py.service rely on these.
    assert {"READY=1", "WATCHDOG=1"} <= set(result["notify"])
    assert result["exit_code"] == 0, result["log_tail"]  # SIGTERM, as systemd stops it


@pytest.mark.parametrize("name", RUN_PARAMS)
def test_a_charging_session_runs(run: dict[str, Any], name: str) -> None:
    events = stack(run, name)["session_events"]
    wanted = ["SessionStarted", "Authorized", "TransactionStarted", "ChargingStarted"]
    assert [e for e in events if e in wanted] == wanted


def test_the_root_is_read_only_and_unchanged(run: dict[str, Any], staged: rehearsal.Staged) -> None:
    mounts = {p: o.split(",")[0] for p, o in run["mounts"].items()}
    assert {p: mounts[p] for p in ("/", str(staged.root), *rehearsal.OVERLAYS)} == dict.fromkeys(
        ("/", str(staged.root), *rehearsal.OVERLAYS), "ro"
    )
    writable = [str(p) for p in rehearsal.tmpfs_mounts(staged.root)]
    assert {p: mounts[p] for p in writable} == dict.fromkeys(writable, "rw")
    assert set(run["write_probes"].values()) == {"Read-only file system"}, run["write_probes"]
    assert run["changes"] == []


def test_nothing_is_written_but_the_state_the_configs_name(run: dict[str, Any]) -> None:
    stack(run, "sil-ac")
    assert run["home"] == []
    assert run["tmp"] == []
    allowed = _state_names()
    tops = {p.split("/")[0] for p in run["data_dir"]}
    assert {
        t for t in tops if t.removesuffix("-wal").removesuffix("-shm").removesuffix("-journal") not in allowed
    } == set()
    assert any(p.startswith(".run/sessions/") for p in run["data_dir"]), run["data_dir"]
    stack(run, "tarragon")
    assert any(p.startswith("sessions/") for p in run["data_dir"]), run["data_dir"]
    assert {p.split("/")[0] for p in run["run_dir"]} <= {"everest-py", "mosquitto", "rehearsal"}


@pytest.mark.parametrize("name", RUN_PARAMS)
def test_every_module_comes_from_precompiled_bytecode(run: dict[str, Any], staged: rehearsal.Staged, name: str) -> None:
    result = stack(run, name)
    assert result["compiled_from_source"] == []
    assert result["bytecode_writes"] == []
    ours = [p for p in result["code_from"] if p.startswith(str(staged.site / "everest_py"))]
    assert len(ours) > 50, "the -v log shows almost none of our modules: is the parser still right?"


@pytest.mark.parametrize("name", RUN_PARAMS)
def test_nothing_comes_from_the_repository_or_the_venv(
    run: dict[str, Any], staged: rehearsal.Staged, name: str
) -> None:
    result = stack(run, name)
    stdlib = Path(sys.base_prefix) / "lib"
    outside = sorted(
        p
        for p in [*result["code_from"], *result["extensions_from"]]
        if not p.startswith((str(staged.root) + "/", str(stdlib) + "/"))
    )
    # The compiled parts come from the staged root too (PyYAML's; on the board the bsp's cffi helpers).
    assert any(p.startswith(str(staged.site)) for p in result["extensions_from"]), result["extensions_from"]
    assert outside == []


@pytest.mark.parametrize("name", RUN_PARAMS)
def test_stdlib_modules_loaded_at_run_time_are_in_the_rdepends_closure(run: dict[str, Any], name: str) -> None:
    imported = stack(run, name)["imported"]
    # The app recipe must stand on its own (everest-py-service without the bsp PACKAGECONFIG).
    closure = _rdepends_closure([d for d in DISTS if d.package == "everest_py" or d.package in imported])
    loaded = {m for m in imported if m.split(".")[0] in sys.stdlib_module_names}
    assert len(loaded) > 100, sorted(loaded)
    outside = sorted(
        f"{m} -> {p}" for m in loaded if (p := provider(m)) is not None and p not in closure and p not in RUNTIME_EXTRAS
    )
    assert outside == [], "modules the stack loads whose python3 package no RDEPENDS brings"


def test_the_shipped_run_configs_check_with_the_installed_modules(run: dict[str, Any]) -> None:
    results = {Path(c["argv"][-1]).name: c for c in run["commands"] if c["argv"][1] == "check"}
    assert {rehearsal.DEFAULT_CONFIG, "tarragon-ac.yaml"} <= set(results)
    bad = {name: c["output"] for name, c in results.items() if c["returncode"] != 0}
    assert bad == {}


def test_the_bsp_extension_loads_from_the_read_only_root(run: dict[str, Any], staged: rehearsal.Staged) -> None:
    (probe,) = [c for c in run["commands"] if c["argv"][-1] == NATIVE_PROBE]
    assert probe["returncode"] == 0, probe["output"]
    assert probe["output"].startswith(str(staged.site / "everest_bsp" / "_native")), probe["output"]


def test_etc_everest_is_what_the_service_recipe_installs(staged: rehearsal.Staged) -> None:
    names = {p.name for p in staged.etc.iterdir()}
    assert {"VERSION", "charger_info.yaml", "auth_list.yaml", "config.yaml", "user-config"} <= names
    assert (staged.etc / "config.yaml").resolve() == (staged.etc / rehearsal.DEFAULT_CONFIG).resolve()
    # The simulator overlays of config/sim/ share names with the board configs: not shipped.
    for overlay in (rehearsal.REPO / "config" / "sim").iterdir():
        if overlay.name in names:
            assert (staged.etc / overlay.name).read_bytes() == (rehearsal.REPO / "config" / overlay.name).read_bytes()
    for pattern in rehearsal.service_config_patterns():
        assert "sim/" not in pattern and list(rehearsal.REPO.glob(pattern)), pattern


def test_the_console_script_runs_through_env_python3(staged: rehearsal.Staged) -> None:
    assert staged.script.read_text().splitlines()[0] == "#!/usr/bin/env python3"
    # Through the shebang, with the staged python3 first on PATH (as /usr/bin is on the target).
    out = subprocess.run(
        [str(staged.script), "--help"],
        env={"PATH": f"{staged.python.parent}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout


def test_the_dependencies_are_the_layer_versions(staged: rehearsal.Staged) -> None:
    assert [p for p in staged.problems if "does not satisfy" in p or "not staged" in p] == []
    versions = {rehearsal.canonical(i.name): i for i in staged.installed}
    for name, (version, recipe) in rehearsal.layer_pins().items():
        if name in versions and "not fetched" not in " ".join(staged.problems):
            assert versions[name].version == version, recipe
    assert {"everest-py", "everest-py-bsp", "paho-mqtt", "pyyaml", "cffi"} <= set(versions)


def test_the_verbose_log_parser_sees_compiles_and_writes(tmp_path: Path) -> None:
    (tmp_path / "fresh_module.py").write_text("VALUE = 1\n")
    out = subprocess.run(
        [sys.executable, "-I", "-v", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import fresh_module"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    parsed = rehearsal.parse_verbose_log(out.stderr)
    assert parsed["compiled_from_source"] == [str(tmp_path / "fresh_module.py")]
    assert len(parsed["bytecode_writes"]) == 1 and "fresh_module" in parsed["bytecode_writes"][0]
    assert "fresh_module" in parsed["imported"]


def _state_names() -> set[str]:
    """Top-level names the shipped configs and everest-py.tmpfiles put into /var/lib/everest."""
    names = {".run"}  # sil-ac.yaml's relative .run/... in the working directory
    for config in (rehearsal.REPO / "config").glob("*.yaml"):
        names |= set(re.findall(r"/var/lib/everest/([^/\s\"']+)", config.read_text()))
    names |= set(re.findall(r"^\S+\s+/var/lib/everest/([^/\s]+)", TMPFILES.read_text(), re.MULTILINE))
    return names


def _rdepends_closure(dists: list[Dist]) -> set[str]:
    """Packages the recipes of ``dists`` bring: their RDEPENDS, the layer's dependency recipes' and the manifest's."""
    recipes = {d.recipe: recipe_path(d) for d in DISTS}
    for bb in (LAYER / "recipes-devtools" / "python").glob("python3-*_*.bb"):
        recipes[bb.stem.partition("_")[0]] = bb
    todo = [name for d in dists for name in rdepends(recipe_path(d), d.recipe)]
    closure: set[str] = set()
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        if name in recipes:
            todo.extend(rdepends(recipes[name], name))
        elif name.removeprefix("python3-") in MANIFEST["rdepends"]:
            todo.extend(f"python3-{p}" for p in MANIFEST["rdepends"][name.removeprefix("python3-")])
    return closure
