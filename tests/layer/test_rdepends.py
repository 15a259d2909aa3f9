# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Every import of app/ and bsp/ is covered by the RDEPENDS of the recipe that packages it, and back.

Imports are read with ``ast`` from every module of the source trees, lazy ones inside functions
included; imports under ``if TYPE_CHECKING:`` are for the type checker only and do not count.
A stdlib module maps to the split ``python3-*`` package that oe-core's python3 manifest puts it
in (``python3-manifest-map.json``, copied from poky scarthgap); a module built into libpython
maps to ``python3-core``; a third-party module maps to ``python3-<distribution>``.  RDEPENDS must
name each of those packages itself: transitive coverage through another package's rdepends is not
enough, since the manifest's dependencies change between releases.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LAYER = REPO / "meta-everest-py"
MANIFEST = json.loads((HERE / "python3-manifest-map.json").read_text())

# Recipe names that do not follow python3-<distribution name> (none so far).
RECIPE_OF_DISTRIBUTION: dict[str, str] = {}

# RDEPENDS entries that no import of the distribution names, each with its reason and, where
# there is one, the import that makes it necessary (a stale entry then fails the test).
ALLOWED_EXTRAS: dict[str, dict[str, tuple[str | None, str]]] = {
    "python3-everest-py": {
        "python3-email": (
            "importlib.metadata",
            "importlib.metadata (in python3-core) imports email to parse METADATA; the module registry "
            "reads the entry points through it, and the manifest does not record that dependency",
        ),
    },
    "python3-everest-py-bsp": {},
}


@dataclass(frozen=True)
class Dist:
    folder: str  # app or bsp
    package: str  # the import package it ships
    recipe: str  # the recipe (and package) name

    @property
    def src(self) -> Path:
        return REPO / self.folder / "src"


DISTS = (
    Dist("app", "everest_py", "python3-everest-py"),
    Dist("bsp", "everest_bsp", "python3-everest-py-bsp"),
)


@dataclass(frozen=True)
class Import:
    module: str
    where: str  # path:line relative to the repository


# -- imports -------------------------------------------------------------------------------------


def _type_checking_only(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(module, line) of every absolute import in ``tree``, skipping ``if TYPE_CHECKING:`` bodies."""
    if isinstance(tree, ast.If) and _type_checking_only(tree.test):
        for node in tree.orelse:
            yield from _imports_of(node)
        return
    if isinstance(tree, ast.Import):
        for alias in tree.names:
            yield alias.name, tree.lineno
    elif isinstance(tree, ast.ImportFrom) and tree.level == 0 and tree.module:
        yield tree.module, tree.lineno
    for child in ast.iter_child_nodes(tree):
        yield from _imports_of(child)


@cache
def imports(dist: Dist) -> tuple[Import, ...]:
    """Every run-time import of ``dist`` except its own package and ``__future__``."""
    found: list[Import] = []
    for path in sorted(dist.src.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for module, line in _imports_of(tree):
            top = module.split(".")[0]
            if top in (dist.package, "__future__"):
                continue
            found.append(Import(module, f"{path.relative_to(REPO)}:{line}"))
    setup = REPO / dist.folder / "setup.py"
    if setup.is_file() and "cffi_modules" in setup.read_text():
        # An API-mode cffi extension loads cffi's backend when it is imported.
        found.append(Import("_cffi_backend", f"{setup.relative_to(REPO)} (cffi_modules)"))
    return tuple(found)


# -- import -> package ---------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _distributions_of_modules() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def provider(module: str) -> str | None:
    """The package that provides ``module`` on the target, or None if nothing is known to."""
    top = module.split(".", maxsplit=1)[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        parts = module.split(".")
        for n in range(len(parts), 0, -1):
            name = ".".join(parts[:n])
            if name in MANIFEST["modules"]:
                return f"python3-{MANIFEST['modules'][name]}"
        # Modules built into libpython (Modules/Setup.bootstrap) are not files of any package.
        return "python3-core" if top in sys.builtin_module_names else None
    dists = _distributions_of_modules().get(top)
    if not dists:
        return None
    dist = _canonical(dists[0])
    return RECIPE_OF_DISTRIBUTION.get(dist, f"python3-{dist}")


# -- recipes -------------------------------------------------------------------------------------


def recipe_path(dist: Dist) -> Path:
    (path,) = [p for p in LAYER.rglob(f"{dist.recipe}_*.bb") if p.name.count("_") == 1]
    return path


_ASSIGN = re.compile(
    r"^RDEPENDS:\$\{PN\}(?P<op>:append|:prepend|:remove)?\s*(?P<eq>\?\?=|\?=|\+=|=\+|\.=|=\.|=)\s*\"(?P<value>[^\"]*)\"",
    re.MULTILINE,
)
_INCLUDE = re.compile(r"^(?:require|include)\s+(\S+)\s*$", re.MULTILINE)


def _find_include(name: str, recipe: Path) -> Path:
    for base in (recipe.parent, LAYER, REPO):
        if (base / name).is_file():
            return base / name
    raise FileNotFoundError(f"{recipe.name}: require {name}: not found")


def rdepends(recipe: Path, pn: str) -> list[str]:
    """RDEPENDS:${PN} of ``recipe`` with its includes, in bitbake's order of evaluation."""
    value: list[str] | None = None
    appended: list[str] = []
    removed: set[str] = set()

    def walk(path: Path) -> None:
        nonlocal value
        text = path.read_text().replace("\\\n", " ")
        events = sorted(
            [(m.start(), "include", m) for m in _INCLUDE.finditer(text)]
            + [(m.start(), "assign", m) for m in _ASSIGN.finditer(text)],
            key=lambda e: e[0],
        )
        for _, kind, m in events:
            if kind == "include":
                walk(_find_include(m.group(1), path))
                continue
            raw = m.group("value").replace("${PN}", pn)
            if "${" in raw:
                raise AssertionError(f"{path.name}: RDEPENDS:${{PN}} uses an expression this test cannot expand: {raw}")
            words = raw.split()
            op, eq = m.group("op"), m.group("eq")
            if op in (":append", ":prepend"):
                appended.extend(words)
            elif op == ":remove":
                removed.update(words)
            elif eq == "=":
                value = words
            elif eq in ("?=", "??="):
                value = words if value is None else value
            else:
                value = [*(value or []), *words]

    walk(recipe)
    return [w for w in [*(value or []), *appended] if w not in removed]


def declared_dependencies(dist: Dist) -> list[str]:
    """The recipes of the distribution's own dependencies (pyproject.toml, no extras)."""
    project = tomllib.loads((REPO / dist.folder / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[\s<>=!~;\[(]", spec, maxsplit=1)[0] for spec in project.get("dependencies", [])]
    return [RECIPE_OF_DISTRIBUTION.get(_canonical(n), f"python3-{_canonical(n)}") for n in names]


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dist", DISTS, ids=[d.folder for d in DISTS])
def test_every_import_is_in_rdepends(dist: Dist) -> None:
    listed = set(rdepends(recipe_path(dist), dist.recipe))
    found = imports(dist)
    assert len(found) > 50, "the import scan found almost nothing"
    unknown = sorted(
        {f"{i.where}: {i.module} (no package known to provide it)" for i in found if not provider(i.module)}
    )
    missing = sorted(
        {f"{i.where}: {i.module} -> {p}" for i in found if (p := provider(i.module)) is not None and p not in listed}
    )
    assert not unknown, f"imports of {dist.folder}/ that map to no package:\n" + "\n".join(unknown)
    assert not missing, f"not in RDEPENDS:${{PN}} of {recipe_path(dist).name}:\n" + "\n".join(missing)


@pytest.mark.parametrize("dist", DISTS, ids=[d.folder for d in DISTS])
def test_declared_dependencies_are_in_rdepends(dist: Dist) -> None:
    listed = set(rdepends(recipe_path(dist), dist.recipe))
    absent = sorted(set(declared_dependencies(dist)) - listed)
    assert not absent, f"{dist.folder}/pyproject.toml depends on them, {recipe_path(dist).name} does not: {absent}"


@pytest.mark.parametrize("dist", DISTS, ids=[d.folder for d in DISTS])
def test_rdepends_names_nothing_that_is_not_needed(dist: Dist) -> None:
    needed = {p for i in imports(dist) if (p := provider(i.module))} | set(declared_dependencies(dist))
    allowed = ALLOWED_EXTRAS[dist.recipe]
    extras = sorted(set(rdepends(recipe_path(dist), dist.recipe)) - needed - set(allowed))
    assert not extras, (
        f"RDEPENDS:${{PN}} of {recipe_path(dist).name} names packages nothing imports "
        f"(drop them, or add them to ALLOWED_EXTRAS with the reason): {', '.join(extras)}"
    )
    modules = {i.module for i in imports(dist)}
    stale = sorted(name for name, (trigger, _) in allowed.items() if trigger is not None and trigger not in modules)
    assert not stale, f"ALLOWED_EXTRAS entries whose reason (an import) is gone: {', '.join(stale)}"


def test_rdepends_names_only_packages_that_exist() -> None:
    known = {f"python3-{k}" for k in MANIFEST["rdepends"]} | {d.recipe for d in DISTS}
    known |= {
        RECIPE_OF_DISTRIBUTION.get(_canonical(n), f"python3-{_canonical(n)}")
        for ds in _distributions_of_modules().values()
        for n in ds
    }
    for dist in DISTS:
        names = rdepends(recipe_path(dist), dist.recipe)
        odd = sorted(set(names) - known)
        assert not odd, f"{recipe_path(dist).name}: neither a python3 split package nor a distribution: {odd}"


def test_the_reader_follows_bitbake_assignment_order(tmp_path: Path) -> None:
    inc = tmp_path / "common.inc"
    inc.write_text('RDEPENDS:${PN} = "python3-a \\\n    python3-b"\n')
    bb = tmp_path / "x_1.0.bb"
    bb.write_text(
        "require common.inc\n"
        'RDEPENDS:${PN} += "python3-c"\n'
        'RDEPENDS:${PN}:append = " ${PN}-extra"\n'
        'RDEPENDS:${PN}:remove = "python3-b"\n'
        'RDEPENDS:${PN} ?= "ignored"\n'
        'RDEPENDS:${PN}-ptest = "python3-pytest"\n'
    )
    assert rdepends(bb, "x") == ["python3-a", "python3-c", "x-extra"]


def test_the_import_scan_skips_type_checking_blocks_and_finds_lazy_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import decimal\nelse:\n    import fractions\n"
        "def f():\n    import sqlite3\n"
    )
    assert [m for m, _ in _imports_of(tree)] == ["typing", "fractions", "sqlite3"]
    assert provider("sqlite3") == "python3-sqlite3"
    assert provider("asyncio.subprocess") == "python3-asyncio"
    assert provider("itertools") == "python3-core"
    assert provider("yaml") == "python3-pyyaml"
    assert provider("paho.mqtt.client") == "python3-paho-mqtt"
    assert provider("no_such_module_anywhere") is None
