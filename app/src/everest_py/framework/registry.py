# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Where modules come from: Python implementations by entry point, manifests beside them.

A distribution registers its modules in the entry-point group ``everest_py.modules``
(``PersistentStore = "everest_py.modules.persistent_store.module:PersistentStore"``); the manifest
is ``manifest.yaml`` in the same package.  ``settings.modules_dir`` adds EVerest-style folders
``<dir>/<ModuleName>/manifest.yaml`` for modules written in other languages (standalone only).
For development and tests, ``EVEREST_PY_EXTRA_MODULES="Name=package.module:Class,..."`` adds
modules that are not installed as entry points (the package must be importable).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterable
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from everest_py.errors import ConfigError
from everest_py.framework.contracts import Contracts
from everest_py.framework.manifest import Manifest, load_manifest

if TYPE_CHECKING:
    from everest_py.framework.module import Module

ENTRY_POINT_GROUP = "everest_py.modules"


class Registry:
    """Module names → manifests and implementation classes, loaded on first use."""

    def __init__(self, contracts: Contracts, modules_dirs: Iterable[Path] = ()) -> None:
        self.contracts = contracts
        self.modules_dirs = list(modules_dirs)
        self._manifests: dict[str, Manifest] = {}

    @cached_property
    def _entry_points(self) -> dict[str, EntryPoint]:
        found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for item in os.environ.get("EVEREST_PY_EXTRA_MODULES", "").split(","):
            name, _, value = item.strip().partition("=")
            if name and value:
                found[name] = EntryPoint(name, value, ENTRY_POINT_GROUP)
        return found

    def names(self) -> list[str]:
        found = set(self._entry_points)
        for d in self.modules_dirs:
            if d.is_dir():
                found.update(p.parent.name for p in d.glob("*/manifest.yaml"))
        return sorted(found)

    def has_implementation(self, name: str) -> bool:
        return name in self._entry_points

    def manifest_path(self, name: str) -> Path | None:
        ep = self._entry_points.get(name)
        if ep is not None:
            package = ep.module.rpartition(".")[0]
            spec = importlib.util.find_spec(package)
            if spec is not None and spec.submodule_search_locations:
                return Path(next(iter(spec.submodule_search_locations))) / "manifest.yaml"
        for d in self.modules_dirs:
            p = d / name / "manifest.yaml"
            if p.is_file():
                return p
        return None

    def manifest(self, name: str) -> Manifest | None:
        """The validated manifest of ``name`` (None if no such module is known)."""
        cached = self._manifests.get(name)
        if cached is None:
            path = self.manifest_path(name)
            if path is None:
                return None
            cached = self._manifests[name] = load_manifest(name, path, self.contracts)
        return cached

    def implementation(self, name: str) -> type[Module]:
        ep = self._entry_points.get(name)
        if ep is None:
            raise ConfigError([f"module '{name}' has no Python implementation in everest-py"])
        module_path, _, attr = ep.value.partition(":")
        cls: type[Module] = getattr(importlib.import_module(module_path), attr)
        return cls
