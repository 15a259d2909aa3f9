# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Checks our interface/type/error contracts and meta-schemas against EVerest's reference YAML."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import yaml

# <repo>/tests/framework/test_contracts.py -> parents[2] is the repository root.
REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = REPO_ROOT / "app" / "src" / "everest_py" / "contracts"
# Verbatim EVerest copies live next to the repository: <repo>/../shared/reference/everest
REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "everest"

KINDS = ("interfaces", "types", "errors")
META_SCHEMAS = ("manifest", "interface", "type", "error-declaration-list", "config")
# Which meta-schema validates which contract folder.
SCHEMA_FOR_KIND = {
    "interfaces": "interface",
    "types": "type",
    "errors": "error-declaration-list",
}
# Descriptions up to this length may coincide with the reference (e.g. "Voltage in V").
MAX_SHARED_DESCRIPTION = 25

DRAFT07_URI = "http://json-schema.org/draft-07/schema#"
TYPE_REF = re.compile(r"^/([A-Za-z0-9_-]+)#/([A-Za-z0-9_-]+)$")
ERROR_REF = re.compile(r"^/errors/([a-z][a-zA-Z0-9_]*)(?:#/([A-Z][A-Za-z0-9]*))?$")

Json = Any  # a YAML document as loaded by yaml.safe_load (JSON-compatible values)


def _schema_types() -> list[str]:
    return ["array", "boolean", "integer", "null", "number", "object", "string"]


def _draft07_standin() -> dict[str, Json]:
    """Return a compact offline stand-in for the draft-07 meta-schema.

    The reference type meta-schema refers to the draft-07 meta-schema by URL. Tests
    must not use the network, so this covers the structural keywords our contracts
    use (unknown keywords stay allowed, as in draft-07 itself).
    """
    schema: dict[str, Json] = {"$ref": DRAFT07_URI}
    schema_array: dict[str, Json] = {"type": "array", "minItems": 1, "items": schema}
    non_negative: dict[str, Json] = {"type": "integer", "minimum": 0}
    simple_type: dict[str, Json] = {"enum": _schema_types()}
    return {
        "$schema": DRAFT07_URI,
        "type": ["object", "boolean"],
        "properties": {
            "$id": {"type": "string"},
            "$schema": {"type": "string"},
            "$ref": {"type": "string"},
            "$comment": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "type": {
                "anyOf": [
                    simple_type,
                    {
                        "type": "array",
                        "items": simple_type,
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ]
            },
            "enum": {"type": "array", "items": True},
            "required": {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
            },
            "properties": {"type": "object", "additionalProperties": schema},
            "patternProperties": {
                "type": "object",
                "propertyNames": {"format": "regex"},
                "additionalProperties": schema,
            },
            "additionalProperties": schema,
            "additionalItems": schema,
            "items": {"anyOf": [schema, {"type": "array", "items": schema}]},
            "contains": schema,
            "propertyNames": schema,
            "not": schema,
            "if": schema,
            "then": schema,
            "else": schema,
            "allOf": schema_array,
            "anyOf": schema_array,
            "oneOf": schema_array,
            "definitions": {"type": "object", "additionalProperties": schema},
            "$defs": {"type": "object", "additionalProperties": schema},
            "minItems": non_negative,
            "maxItems": non_negative,
            "minLength": non_negative,
            "maxLength": non_negative,
            "minProperties": non_negative,
            "maxProperties": non_negative,
            "minimum": {"type": "number"},
            "maximum": {"type": "number"},
            "exclusiveMinimum": {"type": "number"},
            "exclusiveMaximum": {"type": "number"},
            "multipleOf": {"type": "number", "exclusiveMinimum": 0},
            "pattern": {"type": "string", "format": "regex"},
            "format": {"type": "string"},
            "uniqueItems": {"type": "boolean"},
            "examples": {"type": "array"},
        },
    }


def _resolve_remote(uri: str) -> dict[str, Json]:
    if uri.rstrip("#") == DRAFT07_URI.rstrip("#"):
        return _draft07_standin()
    raise AssertionError(f"unexpected remote $ref in a meta-schema: {uri}")


def _load(path: Path) -> Json:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _contract_files() -> list[tuple[str, str]]:
    return [(kind, path.name) for kind in KINDS for path in sorted((CONTRACTS / kind).glob("*.yaml"))]


CONTRACT_FILES = _contract_files()
CONTRACT_IDS = [f"{kind}/{name}" for kind, name in CONTRACT_FILES]


def _require_reference() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"EVerest reference copies not found at {REFERENCE}")


def _strip_descriptions(node: Json) -> Json:
    """Return a copy without prose: every ``description`` key holding a string is dropped.

    A ``description`` key mapping to a schema (a property that is *named*
    description) is semantics and therefore kept and compared.
    """
    if isinstance(node, dict):
        return {
            key: _strip_descriptions(value)
            for key, value in node.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_strip_descriptions(item) for item in node]
    return node


def _first_difference(ours: Json, ref: Json, path: str = "") -> str | None:
    """Return a description of the first difference (type-strict), or None."""
    where = path or "/"
    if type(ours) is not type(ref):
        return f"{where}: type {type(ours).__name__} != {type(ref).__name__}"
    if isinstance(ours, dict):
        if set(ours) != set(ref):
            missing = sorted(set(ref) - set(ours), key=str)
            extra = sorted(set(ours) - set(ref), key=str)
            return f"{where}: keys differ (missing {missing}, extra {extra})"
        for key in ref:
            found = _first_difference(ours[key], ref[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(ours, list):
        if len(ours) != len(ref):
            return f"{where}: {len(ours)} items != {len(ref)} items"
        for index, (mine, theirs) in enumerate(zip(ours, ref, strict=True)):
            found = _first_difference(mine, theirs, f"{path}[{index}]")
            if found:
                return found
        return None
    if ours != ref:
        return f"{where}: {ours!r} != {ref!r}"
    return None


def _descriptions(node: Json, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield (path, text) for every string-valued ``description`` key."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield path or "/", value
            else:
                yield from _descriptions(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _descriptions(item, f"{path}[{index}]")


def _normalise(text: str) -> str:
    """Fold case, whitespace and a trailing full stop, so trivial edits don't count."""
    return " ".join(text.casefold().split()).rstrip(".")


def _walk(node: Json) -> Iterator[dict[str, Json]]:
    """Yield every mapping in a document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


@cache
def _validator(schema_name: str) -> Callable[[Json], Json]:
    schema = _load(CONTRACTS / "schemas" / f"{schema_name}.yaml")
    handlers = {"http": _resolve_remote, "https": _resolve_remote}
    validate: Callable[[Json], Json] = fastjsonschema.compile(schema, handlers=handlers)
    return validate


@cache
def _draft07_validator() -> Callable[[Json], Json]:
    handlers = {"http": _resolve_remote, "https": _resolve_remote}
    validate: Callable[[Json], Json] = fastjsonschema.compile(
        {"$schema": DRAFT07_URI, "$ref": DRAFT07_URI}, handlers=handlers
    )
    return validate


@cache
def _type_names(file_stem: str) -> frozenset[str] | None:
    path = CONTRACTS / "types" / f"{file_stem}.yaml"
    if not path.is_file():
        return None
    return frozenset((_load(path) or {}).get("types", {}))


@cache
def _error_names(namespace: str) -> frozenset[str] | None:
    path = CONTRACTS / "errors" / f"{namespace}.yaml"
    if not path.is_file():
        return None
    return frozenset(entry["name"] for entry in (_load(path) or {}).get("errors", []))


def test_contract_files_present() -> None:
    for kind in KINDS:
        assert any((CONTRACTS / kind).glob("*.yaml")), f"no contracts in {kind}/"
    for name in META_SCHEMAS:
        assert (CONTRACTS / "schemas" / f"{name}.yaml").is_file(), name


@pytest.mark.parametrize(("kind", "name"), CONTRACT_FILES, ids=CONTRACT_IDS)
def test_semantics_match_reference(kind: str, name: str) -> None:
    _require_reference()
    ref_path = REFERENCE / kind / name
    assert ref_path.is_file(), f"{kind}/{name} has no EVerest counterpart"
    ours = _strip_descriptions(_load(CONTRACTS / kind / name))
    ref = _strip_descriptions(_load(ref_path))
    difference = _first_difference(ours, ref)
    assert difference is None, f"{kind}/{name} differs from EVerest at {difference}"


def _copied_descriptions(ours_path: Path, ref_path: Path) -> list[str]:
    """Return paths whose (long) description equals the reference text there."""
    ours = dict(_descriptions(_load(ours_path)))
    ref = dict(_descriptions(_load(ref_path)))
    return [
        path
        for path, text in ours.items()
        if path in ref and len(_normalise(text)) > MAX_SHARED_DESCRIPTION and _normalise(text) == _normalise(ref[path])
    ]


@pytest.mark.parametrize(("kind", "name"), CONTRACT_FILES, ids=CONTRACT_IDS)
def test_descriptions_are_our_own(kind: str, name: str) -> None:
    _require_reference()
    ref_path = REFERENCE / kind / name
    if not ref_path.is_file():
        pytest.skip(f"{kind}/{name} has no EVerest counterpart")
    copied = _copied_descriptions(CONTRACTS / kind / name, ref_path)
    assert not copied, f"{kind}/{name}: descriptions copied verbatim at {copied}"


@pytest.mark.parametrize(("kind", "name"), CONTRACT_FILES, ids=CONTRACT_IDS)
def test_valid_against_meta_schema(kind: str, name: str) -> None:
    document = _load(CONTRACTS / kind / name)
    validate = _validator(SCHEMA_FOR_KIND[kind])
    try:
        # fastjsonschema fills in defaults, so validate a copy.
        validate(copy.deepcopy(document))
    except fastjsonschema.JsonSchemaValueException as error:
        pytest.fail(f"{kind}/{name}: {error.message} (at {error.name})")
    if kind == "interfaces":
        # The interface meta-schema leaves checking of argument/result/var
        # schemas as draft-07 schemas to a separate step; do it here.
        draft07 = _draft07_validator()
        schemas: list[tuple[str, Json]] = []
        for cmd_name, cmd in (document.get("cmds") or {}).items():
            for arg_name, arg in (cmd.get("arguments") or {}).items():
                schemas.append((f"cmds/{cmd_name}/arguments/{arg_name}", arg))
            if "result" in cmd:
                schemas.append((f"cmds/{cmd_name}/result", cmd["result"]))
        for var_name, var in (document.get("vars") or {}).items():
            schemas.append((f"vars/{var_name}", var))
        for where, schema in schemas:
            try:
                draft07(copy.deepcopy(schema))
            except fastjsonschema.JsonSchemaValueException as error:
                pytest.fail(f"{kind}/{name} {where}: {error.message}")


@pytest.mark.parametrize(("kind", "name"), CONTRACT_FILES, ids=CONTRACT_IDS)
def test_references_resolve(kind: str, name: str) -> None:
    document = _load(CONTRACTS / kind / name)
    problems: list[str] = []
    if kind in ("interfaces", "types"):
        for mapping in _walk(document):
            ref = mapping.get("$ref")
            if not isinstance(ref, str):
                continue
            match = TYPE_REF.match(ref)
            if match is None:
                problems.append(f"malformed $ref {ref!r}")
                continue
            names = _type_names(match.group(1))
            if names is None:
                problems.append(f"$ref {ref!r}: no file types/{match.group(1)}.yaml")
            elif match.group(2) not in names:
                problems.append(f"$ref {ref!r}: type {match.group(2)} not defined")
    if kind == "interfaces":
        for entry in document.get("errors") or []:
            reference = entry.get("reference", "")
            match = ERROR_REF.match(reference)
            if match is None:
                problems.append(f"malformed error reference {reference!r}")
                continue
            names = _error_names(match.group(1))
            if names is None:
                problems.append(f"{reference!r}: no file errors/{match.group(1)}.yaml")
            elif match.group(2) is not None and match.group(2) not in names:
                problems.append(f"{reference!r}: error {match.group(2)} not declared")
    if kind == "errors":
        declared = [entry["name"] for entry in document.get("errors") or []]
        duplicates = sorted({n for n in declared if declared.count(n) > 1})
        if duplicates:
            problems.append(f"duplicate error names {duplicates}")
    assert not problems, f"{kind}/{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", META_SCHEMAS)
def test_meta_schema_matches_reference(name: str) -> None:
    _require_reference()
    ours = _strip_descriptions(_load(CONTRACTS / "schemas" / f"{name}.yaml"))
    ref = _strip_descriptions(_load(REFERENCE / "schemas" / f"{name}.yaml"))
    difference = _first_difference(ours, ref)
    assert difference is None, f"schemas/{name}.yaml differs from EVerest at {difference}"


@pytest.mark.parametrize("name", META_SCHEMAS)
def test_meta_schema_descriptions_are_our_own(name: str) -> None:
    _require_reference()
    file_name = f"{name}.yaml"
    copied = _copied_descriptions(CONTRACTS / "schemas" / file_name, REFERENCE / "schemas" / file_name)
    assert not copied, f"schemas/{file_name}: descriptions copied verbatim at {copied}"


@pytest.mark.parametrize("name", META_SCHEMAS)
def test_meta_schema_compiles(name: str) -> None:
    assert callable(_validator(name))
