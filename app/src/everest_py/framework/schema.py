# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YAML loading and compiled, cached JSON-schema validators with EVerest ``$ref`` resolution."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml

# The C loader is ~10x faster; PyYAML without libyaml falls back to Python.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOL = "tag:yaml.org,2002:bool"


class _Loader(_Base):  # type: ignore[misc]
    """YAML 1.2 booleans, as EVerest reads its files: only true/false, so `no`, `on`, `yes` stay
    strings (the manifest of CbTarragonDriver has `no` in an enum and configs write it unquoted)."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

# EVerest type references look like "/evse_manager#/SessionEvent".
TYPE_REF = re.compile(r"^((?:/[a-zA-Z0-9\-_]+)+)#/([a-zA-Z0-9\-_]+)$")

Validator = Callable[[Any], Any]
TypesLoader = Callable[[str], Mapping[str, Any]]


class SchemaProblem(Exception):
    """A value does not match its schema; ``args[0]`` is a one-line reason."""


def load_yaml(path: Path) -> Any:
    """Parse one YAML file (an empty file is ``None``)."""
    with path.open("rb") as f:
        return yaml.load(f, Loader=_Loader)  # noqa: S506 - the loader is a SafeLoader


def strip_descriptions(value: Any) -> Any:
    """A copy of ``value`` without any ``description`` keys (EVerest strips them on the wire)."""
    if isinstance(value, dict):
        return {k: strip_descriptions(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [strip_descriptions(v) for v in value]
    return value


def type_refs(schema: Any) -> set[tuple[str, str]]:
    """All ``(file, TypeName)`` pairs referenced anywhere in ``schema``."""
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and (m := TYPE_REF.match(ref)):
                found.add((m.group(1).lstrip("/"), m.group(2)))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return found


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and (m := TYPE_REF.match(ref)):
            out["$ref"] = f"#/definitions/{m.group(1).lstrip('/')}/{m.group(2)}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def bundle(schema: Mapping[str, Any], load_types: TypesLoader) -> dict[str, Any]:
    """A self-contained schema: every EVerest type it reaches is copied under ``definitions``."""
    definitions: dict[str, dict[str, Any]] = {}
    todo = list(type_refs(schema))
    seen: set[tuple[str, str]] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        file, name = ref
        types = load_types(file)
        if name not in types:
            raise SchemaProblem(f"type reference /{file}#/{name} does not resolve")
        target = types[name]
        definitions.setdefault(file, {})[name] = _rewrite_refs(target)
        todo.extend(type_refs(target) - seen)
    root: dict[str, Any] = _rewrite_refs(copy.deepcopy(dict(schema)))
    root.pop("description", None)
    if definitions:
        root["definitions"] = definitions
    return root


def compile_schema(schema: Mapping[str, Any], load_types: TypesLoader | None = None) -> Validator:
    """Compile ``schema`` once; the returned callable raises SchemaProblem on a mismatch."""
    resolved = bundle(schema, load_types) if load_types is not None else dict(schema)
    validate = fastjsonschema.compile(
        resolved, handlers={"http": _no_remote, "https": _no_remote}, use_default=False, use_formats=True
    )

    def check(value: Any) -> Any:
        try:
            return validate(value)
        except fastjsonschema.JsonSchemaValueException as err:
            raise SchemaProblem(err.message) from None

    return check


DRAFT_07 = "http://json-schema.org/draft-07/schema"


def _no_remote(uri: str) -> Any:
    """Never fetch schemas from the network: draft-07 itself is accepted as is, others fail."""
    if uri.rstrip("#") == DRAFT_07:
        return {}
    raise SchemaProblem(f"remote schema {uri} is not available offline")


def compile_meta_schema(schema: Mapping[str, Any]) -> Validator:
    """Compile a meta-schema that fills in its defaults (EVerest patches defaults in)."""
    validate = fastjsonschema.compile(
        dict(schema), handlers={"http": _no_remote, "https": _no_remote}, use_default=True, use_formats=True
    )

    def check(value: Any) -> Any:
        try:
            return validate(value)
        except fastjsonschema.JsonSchemaValueException as err:
            raise SchemaProblem(err.message) from None

    return check
