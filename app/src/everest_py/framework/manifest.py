# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Module manifests in EVerest's format: loaded, validated against the meta-schema, defaults in."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everest_py.errors import ConfigError
from everest_py.framework.contracts import Contracts
from everest_py.framework.schema import SchemaProblem, Validator, compile_schema, load_yaml

_NOT_SCHEMA = ("description", "mutability", "default")
# EVerest's ModuleConfig names the JSON types differently (note "bool").
DATATYPE = {"string": "string", "number": "number", "integer": "integer", "boolean": "bool"}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class ConfigEntry:
    """One config key of a module or implementation."""

    name: str
    type: str
    mutability: str
    default: Any
    schema: Mapping[str, Any] = field(repr=False)
    _validator: list[Validator] = field(default_factory=list, repr=False, compare=False)

    @property
    def mandatory(self) -> bool:
        return self.default is MISSING

    def check(self, value: Any) -> None:
        """Raise SchemaProblem if ``value`` breaks this entry's schema."""
        if not self._validator:
            self._validator.append(compile_schema(self.schema))
        self._validator[0](value)


@dataclass(frozen=True)
class Provide:
    impl_id: str
    interface: str
    description: str
    config: Mapping[str, ConfigEntry]


@dataclass(frozen=True)
class Require:
    req_id: str
    interface: str
    min_connections: int
    max_connections: int
    ignore_errors: bool


@dataclass(frozen=True)
class Manifest:
    """A validated manifest; ``wire`` is the shape EVerest's manager distributes."""

    name: str
    path: Path | None
    description: str
    config: Mapping[str, ConfigEntry]
    provides: Mapping[str, Provide]
    requires: Mapping[str, Require]
    enable_external_mqtt: bool
    enable_telemetry: bool
    enable_global_errors: bool
    metadata: Mapping[str, Any]
    wire: Mapping[str, Any] = field(repr=False)


def _config_set(where: str, raw: Mapping[str, Any], problems: list[str]) -> dict[str, ConfigEntry]:
    entries: dict[str, ConfigEntry] = {}
    for key, spec in raw.items():
        schema = {k: v for k, v in spec.items() if k not in _NOT_SCHEMA}
        entry = ConfigEntry(key, spec["type"], spec.get("mutability", "ReadOnly"), spec.get("default", MISSING), schema)
        if not entry.mandatory:
            try:
                entry.check(entry.default)
            except SchemaProblem as err:
                problems.append(f"{where}.{key}: default {entry.default!r} breaks its own schema: {err}")
            except Exception as err:  # noqa: BLE001 - a broken schema in a manifest
                problems.append(f"{where}.{key}: schema does not compile: {err}")
        entries[key] = entry
    return entries


def parse_manifest(name: str, data: Any, contracts: Contracts, path: Path | None = None) -> Manifest:
    """Validate ``data`` (a parsed manifest) and build a Manifest; ConfigError lists all problems."""
    label = str(path) if path else f"manifest of {name}"
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: a manifest must be a mapping"])
    data = copy.deepcopy(data)
    try:
        data = contracts.meta_validator("manifest")(data)
    except SchemaProblem as err:
        raise ConfigError([f"{label}: {err} (rule: manifest meta-schema)"]) from None
    problems: list[str] = []
    config = _config_set(f"{label}: config", data.get("config", {}), problems)
    provides = {}
    for impl_id, p in data.get("provides", {}).items():
        iconf = _config_set(f"{label}: provides.{impl_id}.config", p.get("config", {}), problems)
        provides[impl_id] = Provide(impl_id, p["interface"], p["description"], iconf)
    requires = {
        rid: Require(
            rid,
            r["interface"],
            r.get("min_connections", 1),
            r.get("max_connections", 1),
            bool((r.get("ignore") or {}).get("errors", False)),
        )
        for rid, r in data.get("requires", {}).items()
    }
    for rid, r in requires.items():
        if r.max_connections < r.min_connections:
            problems.append(f"{label}: requires.{rid}: max_connections is below min_connections")
    if problems:
        raise ConfigError(problems)
    wire = {k: v for k, v in data.items() if k != "config"}
    return Manifest(
        name=name,
        path=path,
        description=data["description"],
        config=config,
        provides=provides,
        requires=requires,
        enable_external_mqtt=data.get("enable_external_mqtt", False),
        enable_telemetry=data.get("enable_telemetry", False),
        enable_global_errors=data.get("enable_global_errors", False),
        metadata=data.get("metadata", {}),
        wire=wire,
    )


def load_manifest(name: str, path: Path, contracts: Contracts) -> Manifest:
    try:
        data = load_yaml(path)
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror}"]) from None
    except Exception as err:  # noqa: BLE001 - YAML errors have many types
        raise ConfigError([f"{path}: not valid YAML: {err}"]) from None
    return parse_manifest(name, data, contracts, path)
