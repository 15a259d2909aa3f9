# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Consistency of the layers that bitbake would only find at build time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from .layers import MACHINES, PRODUCT_RECIPES, REPO, SOFTWARE_LAYER, assignment, recipe_files

RECIPES = SOFTWARE_LAYER / "recipes-everest"


def recipe(pattern: str) -> Path:
    (path,) = [p for p in recipe_files() if re.fullmatch(pattern, p.name)]
    return path


def test_layers_are_for_scarthgap() -> None:
    for conf in (SOFTWARE_LAYER / "conf" / "layer.conf", REPO / "conf" / "layer.conf"):
        assert re.search(r'^LAYERSERIES_COMPAT_\S+ = "scarthgap"$', conf.read_text(), re.MULTILINE), conf


def test_recipe_versions_follow_the_distributions() -> None:
    for dist, name in (("app", "python3-everest-py"), ("bsp", "python3-everest-py-bsp")):
        version = tomllib.loads((REPO / dist / "pyproject.toml").read_text())["project"]["version"]
        assert recipe(rf"{name}_[^_]+\.bb").name == f"{name}_{version}.bb"
    version = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]
    assert recipe(r"everest-py-service_[^_]+\.bb").name == f"everest-py-service_{version}.bb"


def test_the_bsp_compiles_its_cffi_modules_at_build_time() -> None:
    bsp = recipe(r"python3-everest-py-bsp_.*\.bb")
    assert {"python3-cffi-native", "python3-setuptools-native"} <= set(assignment(bsp, "DEPENDS"))
    assert "python3-cffi" in assignment(bsp, "RDEPENDS:${PN}")
    assert "cffi_modules" in (REPO / "bsp" / "setup.py").read_text()


def test_rdepends_are_one_sorted_block_per_recipe() -> None:
    for path in (recipe(r"python3-everest-py_.*\.bb"), recipe(r"python3-everest-py-bsp_.*\.bb")):
        text = path.read_text()
        assert len(re.findall(r"^RDEPENDS:\$\{PN\}\s", text, re.MULTILINE)) == 1, path.name
        names = assignment(path, "RDEPENDS:${PN}")
        assert names == sorted(names), path.name
        assert all(n.startswith("python3-") for n in names), path.name


def test_local_sources_exist() -> None:
    # file:// entries of SRC_URI resolve in the recipe's files/ or, for the stack, in the repository.
    for path in recipe_files():
        text = path.read_text().replace("\\\n", " ")
        blocks = " ".join(re.findall(r'^SRC_URI\S*\s*[?+:]*=\s*"([^"]*)"', text, re.MULTILINE))
        for m in re.finditer(r"file://([^\s;\"']+)", blocks):
            name = m.group(1)
            if "${" in name:
                continue
            places = [path.parent / "files", path.parent / "files" / "qemuarm64", REPO]
            assert any((p / name).exists() for p in places), f"{path.name}: {name}"


def test_default_run_configs_exist_and_are_not_simulation_overlays() -> None:
    text = (RECIPES / "everest-py" / "everest-py-service_0.1.0.bb").read_text()
    defaults = re.findall(r'^EVEREST_PY_DEFAULT_CONFIG:(\w+) \?\?= "([^"]+)"', text, re.MULTILINE)
    assert {m for m, _ in defaults} == {"tarragon", "qemuarm64"}
    for _, name in defaults:
        assert (REPO / "config" / name).is_file(), name


def test_bundle_compatibles_match_system_conf() -> None:
    bundle = (PRODUCT_RECIPES / "bundles" / "everest-py-bundle.bb").read_text()
    declared = dict(re.findall(r'^RAUC_BUNDLE_COMPATIBLE:(\w+) = "([^"]+)"', bundle, re.MULTILINE))
    default = re.search(r'^RAUC_BUNDLE_COMPATIBLE \?= "([^"]+)"', bundle, re.MULTILINE)
    assert default is not None
    for machine in MACHINES:
        conf = (PRODUCT_RECIPES / "rauc" / "files" / machine / "system.conf").read_text()
        compatible = re.search(r"^compatible=(.+)$", conf, re.MULTILINE)
        assert compatible is not None, machine
        expected = declared.get(machine, default.group(1).replace("${MACHINE}", machine))
        assert compatible.group(1) == expected, machine
    assert declared == {"tarragon": "I2SE Tarragon", "chargesom": "chargebyte Charge SOM"}


def test_qemu_disk_matches_system_conf_and_fstab() -> None:
    wks = (PRODUCT_RECIPES / "images" / "everest-py-qemuarm64.wks").read_text()
    labels = re.findall(r"--label (\w+)", wks)
    assert labels == ["boot", "rootfs_a", "rootfs_b", "data"]
    conf = (PRODUCT_RECIPES / "rauc" / "files" / "qemuarm64" / "system.conf").read_text()
    assert re.findall(r"^device=(.+)$", conf, re.MULTILINE) == ["/dev/vda2", "/dev/vda3"]
    distro = (REPO / "conf" / "distro" / "everest-py.conf").read_text()
    assert 'EVEREST_PY_DATA_DEVICE:qemuarm64 ??= "/dev/vda4"' in distro


def test_unit_files_are_where_checks_look_for_them() -> None:
    units = [
        RECIPES / "everest-py" / "files" / "everest-py.service",
        PRODUCT_RECIPES / "everest-py-update" / "files" / "everest-py-boot-deadline.service",
        PRODUCT_RECIPES / "everest-py-update" / "files" / "everest-py-boot-deadline.timer",
        PRODUCT_RECIPES / "base-files" / "files" / "everest-py-data.service",
    ]
    for unit in units:
        assert unit.is_file(), unit
    service = units[0].read_text()
    for line in ("Type=notify", "WatchdogSec=60s", "Restart=always", "ReadWritePaths=/var/lib/everest /srv"):
        assert re.search(rf"^{re.escape(line)}$", service, re.MULTILINE), line
