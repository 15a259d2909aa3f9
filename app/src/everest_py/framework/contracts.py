# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Interfaces, types and error lists in EVerest's YAML formats, loaded lazily and validated."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everest_py.errors import ConfigError
from everest_py.framework.schema import (
    SchemaProblem,
    Validator,
    compile_meta_schema,
    compile_schema,
    load_yaml,
    strip_descriptions,
)

PACKAGE_CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"
_META: dict[str, Validator] = {}
_ERROR_REF = re.compile(r"^/errors/([A-Za-z0-9_\-]+)(?:#/([A-Za-z0-9_\-]+))?$")


@dataclass(frozen=True)
class CmdDef:
    """One command of an interface: argument schemas and the result schema (None = no result)."""

    name: str
    arguments: Mapping[str, Mapping[str, Any]]
    result: Mapping[str, Any] | None


@dataclass(frozen=True)
class InterfaceDef:
    """A loaded, validated interface."""

    name: str
    cmds: Mapping[str, CmdDef]
    vars: Mapping[str, Mapping[str, Any]]
    errors: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ErrorDecl:
    type: str
    description: str


class Contracts:
    """Finds contract files in one or more roots (each with interfaces/, types/, errors/)."""

    def __init__(
        self,
        roots: Iterable[Path] = (PACKAGE_CONTRACTS,),
        *,
        interfaces_dirs: Iterable[Path] = (),
        types_dirs: Iterable[Path] = (),
        errors_dirs: Iterable[Path] = (),
    ) -> None:
        roots = list(roots)
        self._dirs = {
            "interfaces": [*interfaces_dirs, *(r / "interfaces" for r in roots)],
            "types": [*types_dirs, *(r / "types" for r in roots)],
            "errors": [*errors_dirs, *(r / "errors" for r in roots)],
        }
        self._interfaces: dict[str, InterfaceDef] = {}
        self._types: dict[str, Mapping[str, Any]] = {}
        self._errors: dict[str, dict[str, ErrorDecl]] = {}
        self._validators: dict[tuple[str, ...], Validator] = {}

    # -- files ------------------------------------------------------------------------------
    def _find(self, kind: str, name: str) -> Path | None:
        for d in self._dirs[kind]:
            p = d / f"{name}.yaml"
            if p.is_file():
                return p
        return None

    def names(self, kind: str) -> list[str]:
        """All contract names of one kind (interfaces, types or errors) that can be loaded."""
        found: set[str] = set()
        for d in self._dirs[kind]:
            if d.is_dir():
                found.update(p.stem for p in d.glob("*.yaml"))
        return sorted(found)

    def meta_validator(self, name: str) -> Validator:
        """The compiled meta-schema ``schemas/<name>.yaml`` (interface, type, manifest, …)."""
        v = _META.get(name)
        if v is None:
            v = _META[name] = compile_meta_schema(load_yaml(PACKAGE_CONTRACTS / "schemas" / f"{name}.yaml"))
        return v

    def _load(self, kind: str, name: str, meta: str) -> tuple[Path, dict[str, Any]]:
        path = self._find(kind, name)
        if path is None:
            raise ConfigError([f"{kind[:-1]} '{name}': no file {name}.yaml in {self._where(kind)}"])
        try:
            data = load_yaml(path)
        except Exception as err:  # noqa: BLE001 - any parse failure is a config problem
            raise ConfigError([f"{path}: not valid YAML: {err}"]) from None
        try:
            return path, self.meta_validator(meta)(data)
        except SchemaProblem as err:
            raise ConfigError([f"{path}: {err} (rule: {meta} meta-schema)"]) from None

    def _where(self, kind: str) -> str:
        return ", ".join(str(d) for d in self._dirs[kind]) or "(no directory)"

    # -- types and errors ----------------------------------------------------------------------
    def types(self, file: str) -> Mapping[str, Any]:
        """The ``types:`` map of ``types/<file>.yaml``."""
        cached = self._types.get(file)
        if cached is None:
            _, data = self._load("types", file, "type")
            cached = self._types[file] = data.get("types", {})
        return cached

    def error_list(self, namespace: str) -> dict[str, ErrorDecl]:
        cached = self._errors.get(namespace)
        if cached is None:
            _, data = self._load("errors", namespace, "error-declaration-list")
            cached = {
                e["name"]: ErrorDecl(f"{namespace}/{e['name']}", e["description"]) for e in data.get("errors", [])
            }
            self._errors[namespace] = cached
        return cached

    def error_decl(self, error_type: str) -> ErrorDecl | None:
        namespace, _, name = error_type.partition("/")
        try:
            return self.error_list(namespace).get(name)
        except ConfigError:
            return None

    # -- interfaces ---------------------------------------------------------------------------
    def interface(self, name: str) -> InterfaceDef:
        cached = self._interfaces.get(name)
        if cached is not None:
            return cached
        path, data = self._load("interfaces", name, "interface")
        errors: list[str] = []
        for entry in data.get("errors", []):
            ref = entry.get("reference", "")
            m = _ERROR_REF.match(ref)
            if not m:
                raise ConfigError([f"{path}: error reference '{ref}' is not /errors/<ns>[#/<Name>]"])
            listed = self.error_list(m.group(1))
            if m.group(2) is None:
                errors.extend(d.type for d in listed.values())
            elif m.group(2) in listed:
                errors.append(listed[m.group(2)].type)
            else:
                raise ConfigError([f"{path}: error reference '{ref}' names no declared error"])
        if len(set(errors)) != len(errors):
            raise ConfigError([f"{path}: an error type is referenced twice"])
        cmds = {
            cname: CmdDef(
                cname,
                dict(c.get("arguments") or {}),
                None if (c.get("result") or {}).get("type", "null") == "null" else c["result"],
            )
            for cname, c in (data.get("cmds") or {}).items()
        }
        iface = InterfaceDef(name, cmds, dict(data.get("vars") or {}), tuple(errors), data)
        self._interfaces[name] = iface
        return iface

    def interface_wire(self, name: str) -> dict[str, Any]:
        """The interface as EVerest's manager distributes it (defaults in, descriptions out)."""
        iface = self.interface(name)
        cmds: dict[str, Any] = {}
        for cname, c in (iface.raw.get("cmds") or {}).items():
            cmds[cname] = {
                "arguments": strip_descriptions(c.get("arguments") or {}),
                "result": strip_descriptions(c.get("result") or {"type": "null"}),
            }
        errors: dict[str, dict[str, Any]] = {}
        for etype in iface.errors:
            ns, _, ename = etype.partition("/")
            decl = self.error_list(ns)[ename]
            errors.setdefault(ns, {})[ename] = {
                "name": ename,
                "description": decl.description,
                "namespace": ns,
            }
        return {
            "cmds": cmds,
            "vars": strip_descriptions(iface.raw.get("vars") or {}),
            "errors": errors,
        }

    # -- validators -----------------------------------------------------------------------------
    def validator(self, key: tuple[str, ...], schema: Mapping[str, Any]) -> Validator:
        """A compiled validator for ``schema``, cached under ``key``."""
        v = self._validators.get(key)
        if v is None:
            v = self._validators[key] = compile_schema(schema, self.types)
        return v
