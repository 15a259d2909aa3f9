# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Run configs in EVerest's format: load, user-config overlay, validation, resolved view.

Validation follows EVerest's manager (everest-wire.md §4) with one difference: unknown keys are
errors here.  Every problem is one line ``<file>: <where>: <rule>`` where ``<where>`` is the
YAML path (``connector.config_module.connector_id``); all problems of a file are collected and
raised together as one ConfigError.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from everest_py.errors import ConfigError
from everest_py.framework.contracts import Contracts
from everest_py.framework.manifest import DATATYPE, ConfigEntry, Manifest, Provide, Require, parse_manifest
from everest_py.framework.registry import Registry
from everest_py.framework.schema import SchemaProblem, load_yaml

NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]*$")
MODULE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]*$")
PROBE_MODULE = "ProbeModule"

_SETTINGS: dict[str, type] = {
    "prefix": str,
    "config_file": str,
    "configs_dir": str,
    "schemas_dir": str,
    "modules_dir": str,
    "interfaces_dir": str,
    "types_dir": str,
    "errors_dir": str,
    "www_dir": str,
    "logging_config_file": str,
    "controller_port": int,
    "controller_rpc_timeout_ms": int,
    "mqtt_broker_socket_path": str,
    "mqtt_broker_host": str,
    "mqtt_broker_port": int,
    "mqtt_everest_prefix": str,
    "mqtt_external_prefix": str,
    "telemetry_prefix": str,
    "telemetry_enabled": bool,
    "validate_schema": bool,
    "run_as_user": str,
    "forward_exceptions": bool,
}
_TOP_KEYS = ("active_modules", "settings", "x-module-layout")
# ``isolate`` is everest-py's own key: run this module in a process of its own.
_MODULE_KEYS = (
    "module",
    "standalone",
    "capabilities",
    "config_module",
    "config_implementation",
    "connections",
    "telemetry",
    "mapping",
    "access",
    "isolate",
)
_ACCESS_FLAGS = ("allow_global_read", "allow_global_write", "allow_set_read_only")
_MODULE_ACCESS_FLAGS = ("allow_read", "allow_write", "allow_set_read_only")
ABSENT: Any = object()  # a key that is not in the file (unlike an explicit null)
_TYPE_NAMES = {bool: "boolean", int: "integer", str: "string", dict: "mapping", list: "list"}


@dataclass(frozen=True)
class Settings:
    """The run config's ``settings`` with EVerest's defaults, environment overrides applied."""

    mqtt_everest_prefix: str = "everest"
    mqtt_external_prefix: str = ""
    telemetry_prefix: str = "everest-telemetry"
    telemetry_enabled: bool = False
    validate_schema: bool = False
    forward_exceptions: bool = False
    mqtt_broker_socket_path: str | None = None
    mqtt_broker_host: str | None = None
    mqtt_broker_port: int | None = None
    modules_dir: Path | None = None
    interfaces_dir: Path | None = None
    types_dir: Path | None = None
    errors_dir: Path | None = None
    run_as_user: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def wire(self, data_dir: str = "") -> dict[str, Any]:
        """EVerest's RuntimeSettings as published on ``everest/settings``."""
        return {
            "prefix": self.raw.get("prefix", ""),
            "etc_dir": self.raw.get("configs_dir", ""),
            "data_dir": data_dir,
            "modules_dir": str(self.modules_dir or ""),
            "telemetry_prefix": self.telemetry_prefix,
            "telemetry_enabled": self.telemetry_enabled,
            "validate_schema": self.validate_schema,
            "forward_exceptions": self.forward_exceptions,
        }


@dataclass(frozen=True)
class Fulfillment:
    """One connection of a requirement: ``requirement[index]`` → ``module_id.impl_id``."""

    requirement_id: str
    index: int
    module_id: str
    impl_id: str
    interface: str


@dataclass
class ModuleInstance:
    """One entry of ``active_modules`` after validation; configs have their defaults filled in."""

    id: str
    name: str
    manifest: Manifest
    standalone: bool = False
    isolate: bool = False
    capabilities: list[str] = field(default_factory=list)
    config_module: dict[str, Any] = field(default_factory=dict)
    config_impl: dict[str, dict[str, Any]] = field(default_factory=dict)
    connections: dict[str, list[Fulfillment]] = field(default_factory=dict)
    telemetry: dict[str, Any] | None = None
    mapping: dict[str, Any] | None = None
    access: dict[str, Any] | None = None

    def configuration_parameters(self) -> dict[str, list[dict[str, Any]]]:
        """EVerest's ``configuration_parameters``: ``!module`` then one list per impl."""

        def params(values: Mapping[str, Any], entries: Mapping[str, ConfigEntry]) -> list[dict[str, Any]]:
            return [
                {
                    "name": k,
                    "value": values[k],
                    "characteristics": {
                        "datatype": DATATYPE[e.type],
                        "mutability": e.mutability,
                    },
                }
                for k, e in entries.items()
            ]

        out = {"!module": params(self.config_module, self.manifest.config)}
        for impl_id, p in self.manifest.provides.items():
            out[impl_id] = params(self.config_impl.get(impl_id, {}), p.config)
        return out

    def wire(self) -> dict[str, Any]:
        """EVerest's ModuleConfig JSON, as sent in the config response."""
        conns: dict[str, list[dict[str, Any]]] = {}
        for rid, fs in self.connections.items():
            items = []
            for f in fs:
                req: dict[str, Any] = {"id": rid}
                if f.index:
                    req["index"] = f.index
                items.append({"module_id": f.module_id, "implementation_id": f.impl_id, "requirement": req})
            conns[rid] = items
        out: dict[str, Any] = {
            "module_id": self.id,
            "module_name": self.name,
            "standalone": self.standalone,
            "telemetry_enabled": self.telemetry is not None,
            "capabilities": self.capabilities,
            "configuration_parameters": self.configuration_parameters(),
            "connections": conns,
            "mapping": self.mapping,
            "access": self.access,
        }
        if self.telemetry is not None:
            out["telemetry_config"] = self.telemetry
        return out


@dataclass
class RunConfig:
    path: Path
    settings: Settings
    modules: dict[str, ModuleInstance]
    overlay: Path | None = None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge-patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def overlay_path(path: Path) -> Path:
    return path.parent / "user-config" / path.name


def _yaml_error(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"not valid YAML: line {mark.line + 1} column {mark.column + 1}: {problem}"
    return f"not valid YAML: {problem}"


def read_config_file(path: Path) -> tuple[dict[str, Any], Path | None]:
    """The raw config with its user-config overlay merged in (and the overlay's path, if any)."""
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror}"]) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: {_yaml_error(err)}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the run config must be a mapping, not {_kind(data)}"])
    over = overlay_path(path)
    if not over.is_file():
        return data, None
    try:
        patch = load_yaml(over)
    except yaml.YAMLError as err:
        raise ConfigError([f"{over}: {_yaml_error(err)}"]) from None
    if patch is None:
        return data, over
    if not isinstance(patch, dict):
        raise ConfigError([f"{over}: the user-config overlay must be a mapping, not {_kind(patch)}"])
    merged = merge_patch(data, patch)
    assert isinstance(merged, dict)
    return merged, over


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "number"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Checker:
    """Collects problems of one config file."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[str] = []

    def bad(self, where: str, rule: str) -> None:
        self.problems.append(f"{self.label}: {where}: {rule}")

    def mapping(self, where: str, value: Any) -> dict[str, Any] | None:
        """``value`` as a mapping; ABSENT (key not given) is empty, anything else is a problem."""
        if value is ABSENT:
            return {}
        if not isinstance(value, dict):
            self.bad(where, f"must be a mapping, not {_kind(value)}")
            return None
        return value

    def unknown(self, where: str, value: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for k in value:
            if k not in allowed:
                self.bad(f"{where}.{k}" if where else str(k), f"unknown key (allowed: {', '.join(allowed)})")

    def scalar(self, where: str, value: Any, kind: type) -> bool:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            self.bad(where, f"must be {_TYPE_NAMES[kind]}, not {_kind(value)}")
        return ok


def _settings(chk: _Checker, raw: Any, base: Path) -> Settings:
    values = chk.mapping("settings", raw)
    if not values:
        values = {}
    good: dict[str, Any] = {}
    for key, value in values.items():
        kind = _SETTINGS.get(key)
        if kind is None:
            chk.bad(f"settings.{key}", "unknown setting")
        elif chk.scalar(f"settings.{key}", value, kind):
            good[key] = value
    if "mqtt_broker_socket_path" in good and ("mqtt_broker_host" in good or "mqtt_broker_port" in good):
        chk.bad("settings.mqtt_broker_socket_path", "set either a socket path or host/port, not both")
    everest = good.get("mqtt_everest_prefix", "everest")
    if good.get("mqtt_external_prefix", "") == everest:
        chk.bad("settings.mqtt_external_prefix", "must differ from mqtt_everest_prefix")

    def path(key: str) -> Path | None:
        v = good.get(key)
        return None if v is None else (base / v)

    host = good.get("mqtt_broker_host")
    port = good.get("mqtt_broker_port")
    socket_path = good.get("mqtt_broker_socket_path")
    env_host, env_port = os.environ.get("MQTT_SERVER_ADDRESS"), os.environ.get("MQTT_SERVER_PORT")
    if env_host:
        host, socket_path = env_host, None
    if env_port:
        try:
            port = int(env_port)
        except ValueError:
            chk.bad("MQTT_SERVER_PORT", f"environment variable must be a port number, not {env_port!r}")
        socket_path = None
    return Settings(
        mqtt_everest_prefix=everest,
        mqtt_external_prefix=good.get("mqtt_external_prefix", ""),
        telemetry_prefix=good.get("telemetry_prefix", "everest-telemetry"),
        telemetry_enabled=good.get("telemetry_enabled", False),
        validate_schema=good.get("validate_schema", False),
        forward_exceptions=good.get("forward_exceptions", False),
        mqtt_broker_socket_path=str(base / socket_path) if socket_path else None,
        mqtt_broker_host=host,
        mqtt_broker_port=port,
        modules_dir=path("modules_dir"),
        interfaces_dir=path("interfaces_dir"),
        types_dir=path("types_dir"),
        errors_dir=path("errors_dir"),
        run_as_user=good.get("run_as_user"),
        raw=good,
    )


def _config_values(chk: _Checker, where: str, raw: Any, entries: Mapping[str, ConfigEntry]) -> dict[str, Any]:
    values = chk.mapping(where, raw)
    if values is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        entry = entries.get(key)
        if entry is None:
            known = ", ".join(entries) or "none"
            chk.bad(f"{where}.{key}", f"unknown config key (known: {known})")
            continue
        if isinstance(value, dict | list) or value is None:
            chk.bad(f"{where}.{key}", f"must be a {entry.type} scalar, not {_kind(value)}")
            continue
        try:
            entry.check(value)
        except SchemaProblem as err:
            chk.bad(f"{where}.{key}", f"{str(err).removeprefix('data ')} (got {value!r})")
            continue
        out[key] = value
    for key, entry in entries.items():
        if key not in values:
            if entry.mandatory:
                chk.bad(f"{where}.{key}", f"missing mandatory config entry ({entry.type}, no default)")
            else:
                out[key] = entry.default
    return out


def _probe_manifest(
    probe_id: str, modules: Mapping[str, Any], manifests: Mapping[str, Manifest | None], contracts: Contracts
) -> Manifest:
    """EVerest's ProbeModule: provides what others connect to, requires what it connects to."""
    provides: dict[str, Any] = {}
    requires: dict[str, Any] = {}
    for mid, entry in modules.items():
        if not isinstance(entry, dict):
            continue
        conns = entry.get("connections") or {}
        if not isinstance(conns, dict):
            continue
        manifest = manifests.get(mid)
        for rid, targets in conns.items():
            if not isinstance(targets, list):
                continue
            for t in targets:
                if not isinstance(t, dict):
                    continue
                if mid != probe_id and t.get("module_id") == probe_id and manifest is not None:
                    req = manifest.requires.get(rid)
                    if req is not None:
                        impl = str(t.get("implementation_id"))
                        provides[impl] = {"description": "probe implementation", "interface": req.interface}
                if mid == probe_id:
                    target = manifests.get(str(t.get("module_id")))
                    prov = target.provides.get(str(t.get("implementation_id"))) if target else None
                    if prov is not None:
                        r = requires.setdefault(
                            rid, {"interface": prov.interface, "min_connections": 0, "max_connections": 0}
                        )
                        r["max_connections"] += 1
    for r in requires.values():
        r["max_connections"] = max(1, r["max_connections"])
    if not provides:
        provides["none"] = {"description": "probe implementation", "interface": "empty"}
    data = {
        "description": "Test probe, manifest derived from the connections",
        "provides": provides,
        "requires": requires,
        "metadata": {"license": "https://opensource.org/licenses/Apache-2.0", "authors": ["everest-py"]},
        "enable_external_mqtt": True,
        "enable_global_errors": True,
    }
    return parse_manifest(PROBE_MODULE, data, contracts)


def validate(
    raw: Mapping[str, Any],
    path: Path,
    registry: Registry,
    *,
    standalone: frozenset[str] = frozenset(),
    label: str | None = None,
) -> RunConfig:
    """Validate a parsed run config; raises ConfigError naming every problem."""
    chk = _Checker(label or str(path))
    chk.unknown("", raw, _TOP_KEYS)
    settings = _settings(chk, raw.get("settings", ABSENT), path.parent)
    if settings.modules_dir is not None:
        registry.modules_dirs.insert(0, settings.modules_dir)
    if "active_modules" not in raw:
        chk.bad("active_modules", "missing (a run config needs active_modules)")
    modules_raw = chk.mapping("active_modules", raw.get("active_modules", ABSENT)) or {}

    # Pass 1: module names and manifests.
    manifests: dict[str, Manifest | None] = {}
    entries: dict[str, dict[str, Any]] = {}
    probes: list[str] = []
    for key, raw_entry in modules_raw.items():
        mid = str(key)
        if not NAME.match(mid):
            chk.bad(mid, f"module id must match {NAME.pattern}")
            continue
        entry = chk.mapping(mid, raw_entry)
        if entry is None:
            continue
        entries[mid] = entry
        chk.unknown(mid, entry, _MODULE_KEYS)
        name = entry.get("module")
        manifests[mid] = None
        if name is None:
            chk.bad(f"{mid}.module", "missing (every module entry names its module)")
            continue
        if not isinstance(name, str) or not MODULE_NAME.match(name):
            chk.bad(f"{mid}.module", f"must be a module name matching {MODULE_NAME.pattern}")
            continue
        if name == PROBE_MODULE:
            probes.append(mid)
            continue
        try:
            manifests[mid] = registry.manifest(name)
        except ConfigError as err:
            for line in err.issues:
                chk.bad(f"{mid}.module", f"manifest of {name} is invalid: {line}")
            continue
        if manifests[mid] is None:
            chk.bad(f"{mid}.module", f"no module named '{name}' in everest-py (not implemented)")
    if len(probes) > 1:
        chk.bad(f"{probes[1]}.module", f"only one {PROBE_MODULE} may be active")
    for mid in probes[:1]:
        manifests[mid] = _probe_manifest(mid, entries, manifests, registry.contracts)

    # Pass 2: everything that needs the manifests.
    modules: dict[str, ModuleInstance] = {}
    for mid, entry in entries.items():
        manifest = manifests.get(mid)
        inst = _module(chk, mid, entry, manifest, manifests, registry)
        if inst is None:
            continue
        inst.standalone = inst.standalone or mid in standalone
        if not inst.standalone and not registry.has_implementation(inst.name) and inst.name != PROBE_MODULE:
            chk.bad(
                f"{mid}.module",
                f"{inst.name} has a manifest but no Python implementation: run it standalone",
            )
        modules[mid] = inst
    if chk.problems:
        raise ConfigError(chk.problems)
    return RunConfig(path=path, settings=settings, modules=modules)


def _module(
    chk: _Checker,
    mid: str,
    entry: dict[str, Any],
    manifest: Manifest | None,
    manifests: Mapping[str, Manifest | None],
    registry: Registry,
) -> ModuleInstance | None:
    flags = {}
    for key in ("standalone", "isolate"):
        if key in entry and chk.scalar(f"{mid}.{key}", entry[key], bool):
            flags[key] = entry[key]
    caps = entry.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        chk.bad(f"{mid}.capabilities", "must be a list of capability names")
        caps = []
    telemetry = None
    if "telemetry" in entry:
        t = chk.mapping(f"{mid}.telemetry", entry["telemetry"])
        if t is not None:
            chk.unknown(f"{mid}.telemetry", t, ("id",))
            if "id" not in t:
                chk.bad(f"{mid}.telemetry.id", "missing (telemetry needs an integer id)")
            elif chk.scalar(f"{mid}.telemetry.id", t["id"], int):
                telemetry = {"id": t["id"]}
    access = _access(chk, mid, entry.get("access")) if "access" in entry else None
    if manifest is None:
        _mapping(chk, mid, entry.get("mapping", ABSENT), None)
        return None
    mapping = _mapping(chk, mid, entry.get("mapping", ABSENT), manifest.provides)
    _interfaces_load(chk, mid, manifest, registry)
    inst = ModuleInstance(
        id=mid,
        name=manifest.name,
        manifest=manifest,
        standalone=flags.get("standalone", False),
        isolate=flags.get("isolate", False),
        capabilities=caps,
        telemetry=telemetry,
        mapping=mapping,
        access=access,
    )
    if manifest.name == PROBE_MODULE:
        inst.standalone = True
    inst.config_module = _config_values(
        chk, f"{mid}.config_module", entry.get("config_module", ABSENT), manifest.config
    )
    impls = chk.mapping(f"{mid}.config_implementation", entry.get("config_implementation", ABSENT)) or {}
    for impl_id in impls:
        if impl_id not in manifest.provides:
            provided = ", ".join(manifest.provides) or "none"
            chk.bad(
                f"{mid}.config_implementation.{impl_id}",
                f"{manifest.name} provides no implementation '{impl_id}' (provides: {provided})",
            )
    for impl_id, prov in manifest.provides.items():
        inst.config_impl[impl_id] = _config_values(
            chk, f"{mid}.config_implementation.{impl_id}", impls.get(impl_id, ABSENT), prov.config
        )
    inst.connections = _connections(chk, mid, entry.get("connections", ABSENT), manifest, manifests, registry)
    return inst


def _interfaces_load(chk: _Checker, mid: str, manifest: Manifest, registry: Registry) -> None:
    """EVerest loads every provided and required interface while validating (pipeline step 5)."""
    names = {p.interface for p in manifest.provides.values()} | {r.interface for r in manifest.requires.values()}
    for name in sorted(names):
        try:
            registry.contracts.interface(name)
        except ConfigError as err:
            for issue in err.issues:
                chk.bad(f"{mid}.module", f"{manifest.name} uses interface {name}, which cannot be loaded: {issue}")


def _connections(
    chk: _Checker,
    mid: str,
    raw: Any,
    manifest: Manifest,
    manifests: Mapping[str, Manifest | None],
    registry: Registry,
) -> dict[str, list[Fulfillment]]:
    where = f"{mid}.connections"
    conns = chk.mapping(where, raw)
    if conns is None:
        return {}
    out: dict[str, list[Fulfillment]] = {}
    for rid in conns:
        if rid not in manifest.requires:
            known = ", ".join(manifest.requires) or "none"
            chk.bad(f"{where}.{rid}", f"{manifest.name} has no requirement '{rid}' (requirements: {known})")
    for rid, req in manifest.requires.items():
        targets = conns.get(rid, ABSENT)
        if targets is ABSENT:
            if req.min_connections > 0:
                chk.bad(
                    f"{where}.{rid}", f"requirement not fulfilled: needs {_range(req)} connection(s) to {req.interface}"
                )
            out[rid] = []
            continue
        if not isinstance(targets, list):
            chk.bad(f"{where}.{rid}", f"must be a list of connections, not {_kind(targets)}")
            continue
        if not req.min_connections <= len(targets) <= req.max_connections:
            chk.bad(f"{where}.{rid}", f"has {len(targets)} connection(s), needs {_range(req)}")
        fulfilled = []
        for index, target in enumerate(targets):
            f = _fulfillment(chk, f"{where}.{rid}[{index}]", rid, index, target, req, manifests, registry)
            if f is not None:
                fulfilled.append(f)
        out[rid] = fulfilled
    return out


def _range(req: Require) -> str:
    if req.min_connections == req.max_connections:
        return str(req.min_connections)
    return f"{req.min_connections} to {req.max_connections}"


def _fulfillment(
    chk: _Checker,
    where: str,
    rid: str,
    index: int,
    target: Any,
    req: Require,
    manifests: Mapping[str, Manifest | None],
    registry: Registry,
) -> Fulfillment | None:
    t = chk.mapping(where, target)
    if t is None:
        return None
    chk.unknown(where, t, ("module_id", "implementation_id"))
    ok = True
    for key in ("module_id", "implementation_id"):
        if key not in t:
            chk.bad(f"{where}.{key}", "missing")
            ok = False
        elif not isinstance(t[key], str):
            chk.bad(f"{where}.{key}", f"must be string, not {_kind(t[key])}")
            ok = False
    if not ok:
        return None
    target_id, impl_id = t["module_id"], t["implementation_id"]
    if target_id not in manifests:
        chk.bad(f"{where}.module_id", f"module id '{target_id}' is not in active_modules")
        return None
    target_manifest = manifests[target_id]
    if target_manifest is None:
        return None  # the target module itself is reported
    prov: Provide | None = target_manifest.provides.get(impl_id)
    if prov is None:
        provided = ", ".join(target_manifest.provides) or "none"
        chk.bad(
            f"{where}.implementation_id",
            f"{target_id} ({target_manifest.name}) provides no implementation '{impl_id}' (provides: {provided})",
        )
        return None
    if prov.interface != req.interface:
        chk.bad(
            where,
            f"requirement '{rid}' needs interface {req.interface}, but {target_id}.{impl_id} provides {prov.interface}",
        )
        return None
    return Fulfillment(rid, index, target_id, impl_id, prov.interface)


def _mapping(chk: _Checker, mid: str, raw: Any, provides: Mapping[str, Provide] | None) -> dict[str, Any] | None:
    if raw is ABSENT:
        return None
    where = f"{mid}.mapping"
    m = chk.mapping(where, raw)
    if m is None:
        return None
    chk.unknown(where, m, ("module", "implementations"))
    out: dict[str, Any] = {}
    if "module" in m:
        tier = _tier(chk, f"{where}.module", m["module"], required=False)
        if tier is not None:
            out["module"] = tier
    impls = chk.mapping(f"{where}.implementations", m.get("implementations", ABSENT)) or {}
    out_impls = {}
    for impl_id, tier_raw in impls.items():
        if provides is not None and impl_id not in provides:
            known = ", ".join(provides) or "none"
            chk.bad(f"{where}.implementations.{impl_id}", f"no such implementation (provides: {known})")
            continue
        tier = _tier(chk, f"{where}.implementations.{impl_id}", tier_raw, required=True)
        if tier is not None:
            out_impls[impl_id] = tier
    if out_impls:
        out["implementations"] = out_impls
    return out


def _tier(chk: _Checker, where: str, raw: Any, *, required: bool) -> dict[str, int] | None:
    t = chk.mapping(where, raw)
    if t is None:
        return None
    chk.unknown(where, t, ("evse", "connector"))
    if required and "evse" not in t:
        chk.bad(f"{where}.evse", "missing (a mapping names its evse)")
        return None
    out: dict[str, int] = {}
    for key in ("evse", "connector"):
        if key in t and chk.scalar(f"{where}.{key}", t[key], int):
            out[key] = t[key]
    return out


def _access(chk: _Checker, mid: str, raw: Any) -> dict[str, Any] | None:
    where = f"{mid}.access"
    a = chk.mapping(where, raw)
    if a is None:
        return None
    chk.unknown(where, a, ("config",))
    c = chk.mapping(f"{where}.config", a.get("config", ABSENT))
    if c is None:
        return None
    chk.unknown(f"{where}.config", c, (*_ACCESS_FLAGS, "modules"))
    for flag in _ACCESS_FLAGS:
        if flag in c:
            chk.scalar(f"{where}.config.{flag}", c[flag], bool)
    mods = chk.mapping(f"{where}.config.modules", c.get("modules", ABSENT)) or {}
    for other, flags in mods.items():
        fw = f"{where}.config.modules.{other}"
        f = chk.mapping(fw, flags)
        if f is None:
            continue
        chk.unknown(fw, f, _MODULE_ACCESS_FLAGS)
        for flag in _MODULE_ACCESS_FLAGS:
            if flag in f:
                chk.scalar(f"{fw}.{flag}", f[flag], bool)
    return {"config": c}


def load_run_config(
    path: Path, registry: Registry | None = None, *, standalone: frozenset[str] = frozenset()
) -> RunConfig:
    """Read ``path`` (and its user-config overlay) and validate it."""
    raw, over = read_config_file(path)
    if registry is None:
        registry = Registry(Contracts())
    settings_raw = raw.get("settings") if isinstance(raw.get("settings"), dict) else {}
    assert isinstance(settings_raw, dict)
    extra = {
        k: [path.parent / settings_raw[k]]
        for k in ("interfaces_dir", "types_dir", "errors_dir")
        if isinstance(settings_raw.get(k), str)
    }
    if extra:
        registry.contracts = Contracts(
            interfaces_dirs=extra.get("interfaces_dir", []),
            types_dirs=extra.get("types_dir", []),
            errors_dirs=extra.get("errors_dir", []),
        )
    cfg = validate(raw, path, registry, standalone=standalone)
    cfg.overlay = over
    return cfg
