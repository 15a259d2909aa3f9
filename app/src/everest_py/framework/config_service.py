# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EVerest's config service: retained definitions and answers to config requests.

Requests arrive on ``<prefix>config/request`` and are answered on
``<prefix>modules/<origin>/response``.  ``Get`` of ``Module``, ``All``, ``AllMappings`` and
``Value`` read the validated run config; ``Set`` writes the value into the config's
``user-config/`` overlay and answers ``RebootRequired`` (as EVerest does in YAML mode).  A module
may always read and write its own config; others need the config's ``access`` grants.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from everest_py.framework import wire
from everest_py.framework.bus import Bus
from everest_py.framework.config import ModuleInstance, RunConfig, overlay_path
from everest_py.framework.manifest import ConfigEntry
from everest_py.framework.registry import Registry
from everest_py.framework.schema import SchemaProblem, load_yaml, type_refs

log = logging.getLogger(__name__)
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "schemas"


class Rejected(Exception):
    """A Set that is understood and allowed but cannot be applied."""


class ConfigService:
    """Answers EVerest's config requests and publishes the retained definitions."""

    def __init__(self, config: RunConfig, registry: Registry, bus: Bus, topics: wire.Topics) -> None:
        self.config = config
        self.registry = registry
        self.bus = bus
        self.topics = topics
        self.retained: list[str] = []

    def start(self) -> None:
        self.bus.subscribe(self.topics.config_request, self._on_request)

    def _publish_retained(self, topic: str, value: Any) -> None:
        self.bus.publish(topic, wire.envelope(wire.GET_CONFIG_RESPONSE, value), retain=True)
        self.retained.append(topic)

    def publish_definitions(self) -> None:
        p = self.topics.prefix
        contracts = self.registry.contracts
        mods = self.config.modules
        interfaces = sorted({prov.interface for m in mods.values() for prov in m.manifest.provides.values()})
        validate = self.config.settings.validate_schema
        self._publish_retained(f"{p}interfaces", interfaces)
        for name in interfaces:
            self._publish_retained(f"{p}interface_definitions/{name}", contracts.interface_wire(name))
        type_files: set[str] = set()
        if validate:
            todo = {f for name in interfaces for f, _ in type_refs(contracts.interface(name).raw)}
            while todo:
                f = todo.pop()
                type_files.add(f)
                todo |= {g for g, _ in type_refs(contracts.types(f))} - type_files
        self._publish_retained(f"{p}types", [f"/{f}" for f in sorted(type_files)])
        for f in sorted(type_files):
            self._publish_retained(f"{p}type_definitions/{f}", contracts.types(f))
        self._publish_retained(f"{p}settings", self.config.settings.wire())
        if validate:
            schemas = {s.stem.replace("-", "_"): load_yaml(s) for s in sorted(SCHEMAS_DIR.glob("*.yaml"))}
            self._publish_retained(f"{p}schemas", schemas)
        self._publish_retained(f"{p}module_names", {mid: m.name for mid, m in mods.items()})
        for name in sorted({m.name for m in mods.values()}):
            manifest = next(m.manifest for m in mods.values() if m.name == name)
            self._publish_retained(f"{p}manifests/{name}", manifest.wire)

    def clear_retained(self) -> None:
        for topic in self.retained:
            self.bus.publish(topic, b"", qos=0, retain=True)
        self.retained.clear()

    # -- requests ------------------------------------------------------------------------------
    def _on_request(self, topic: str, payload: bytes) -> None:
        try:
            msg = wire.loads(payload)
            data = msg["data"]
            origin = data["origin"]
        except (ValueError, KeyError, TypeError):
            log.warning("dropped an unusable config request")
            return
        if not isinstance(data, dict):
            log.warning("dropped an unusable config request")
            return
        if not isinstance(origin, str) or not origin or any(c in origin for c in "/+#"):
            log.warning("dropped a config request without a usable origin")
            return
        status, info, response = "Ok", "", None
        try:
            response = self._answer(origin, data)
        except LookupError as err:
            status, info = "Error", str(err.args[0])
        except PermissionError as err:
            status, info = "AccessDenied", str(err)
        except (AttributeError, TypeError, ValueError) as err:  # a request of the wrong shape
            log.warning("config request from %s is malformed: %s", origin, err)
            status, info = "Error", f"malformed request: {err}"
        reply: dict[str, Any] = {"status": status, "status_info": info, "type": data.get("type", "Get")}
        if response is not None:
            reply["response"] = response
        self.bus.publish(self.topics.config_response(origin), wire.envelope(wire.GET_CONFIG_RESPONSE, reply))

    def _grants(self, origin: str, target: str) -> dict[str, bool]:
        me = self.config.modules.get(origin)
        access = ((me.access or {}) if me else {}).get("config", {})
        per_module = (access.get("modules") or {}).get(target) or {}
        own = origin == target
        return {
            "read": own or bool(access.get("allow_global_read") or per_module.get("allow_read")),
            "write": own or bool(access.get("allow_global_write") or per_module.get("allow_write")),
            "read_only": bool(access.get("allow_set_read_only") or per_module.get("allow_set_read_only")),
        }

    def _readable(self, origin: str, target: str) -> bool:
        return self._grants(origin, target)["read"]

    def _target(self, request: dict[str, Any]) -> tuple[ModuleInstance, str, str, ConfigEntry]:
        ident = request.get("identifier") or {}
        if not isinstance(ident, dict) or not isinstance(ident.get("module_id"), str):
            raise LookupError("the request names no module_id")
        target = self.config.modules.get(ident["module_id"])
        if target is None:
            raise LookupError(f"module id '{ident.get('module_id')}' is not in the run config")
        impl = ident.get("module_implementation_id") or "!module"
        name = ident.get("configuration_parameter_name")
        entries = (
            target.manifest.config
            if impl == "!module"
            else (target.manifest.provides[impl].config if impl in target.manifest.provides else {})
        )
        entry = entries.get(name) if isinstance(name, str) else None
        if entry is None or not isinstance(impl, str):
            raise LookupError(f"no config parameter {name!r} in {target.id}.{impl}")
        return target, impl, entry.name, entry

    def _set(self, origin: str, request: dict[str, Any]) -> dict[str, Any]:
        target, impl, name, entry = self._target(request)
        grants = self._grants(origin, target.id)
        if not grants["write"]:
            raise PermissionError(f"{origin} may not write the config of {target.id}")
        try:
            if entry.mutability == "ReadOnly" and not grants["read_only"]:
                raise Rejected(f"{target.id}.{name} is read-only")
            value = _parse(entry, request.get("value"))
            entry.check(value)
        except (Rejected, SchemaProblem, ValueError) as err:
            log.warning("config set from %s rejected: %s", origin, err)
            return {"type": "Set", "status": "Rejected", "status_info": str(err)}
        try:
            self._write_overlay(target.id, impl, name, value)
        except (OSError, yaml.YAMLError) as err:
            log.error("config set from %s could not be written: %s", origin, err)
            return {"type": "Set", "status": "Rejected", "status_info": f"cannot write the overlay: {err}"}
        log.info("%s set %s.%s = %r in the user-config overlay (after a restart)", origin, target.id, name, value)
        return {"type": "Set", "status": "RebootRequired"}

    def _write_overlay(self, module_id: str, impl: str, name: str, value: Any) -> None:
        path = overlay_path(self.config.path)
        data = load_yaml(path) if path.is_file() else None
        if not isinstance(data, dict):
            data = {}
        entry = data.setdefault("active_modules", {}).setdefault(module_id, {})
        if impl == "!module":
            entry.setdefault("config_module", {})[name] = value
        else:
            entry.setdefault("config_implementation", {}).setdefault(impl, {})[name] = value
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a crash leaves the old or the new overlay, never half of one
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(data, f, sort_keys=False)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _answer(self, origin: str, data: dict[str, Any]) -> dict[str, Any]:
        request = data.get("request") or {}
        if not isinstance(request, dict):
            raise LookupError("the request is not an object")
        kind = request.get("type")
        if data.get("type") == "Set":
            return self._set(origin, request)
        mods = self.config.modules
        if kind == "Module":
            inst = mods.get(origin)
            if inst is None:
                raise LookupError(f"module id '{origin}' is not in the run config")
            return {"type": "Module", "data": self.module_response(inst)}
        if kind == "All":
            out: dict[str, Any] = {}
            for mid, m in mods.items():
                grants = self._grants(origin, mid)
                if grants["read"]:
                    out[mid] = m.configuration_parameters()
                    if grants["read_only"]:  # EVerest: settable read-only entries show as ReadWrite
                        for params in out[mid].values():
                            for p in params:
                                if p["characteristics"]["mutability"] == "ReadOnly":
                                    p["characteristics"]["mutability"] = "ReadWrite"
            return {"type": "All", "data": out}
        if kind == "AllMappings":
            return {"type": "AllMappings", "data": {mid: m.mapping for mid, m in mods.items()}}
        if kind == "Value":
            target, impl, name, _ = self._target(request)
            if not self._readable(origin, target.id):
                raise PermissionError(f"{origin} may not read the config of {target.id}")
            param = next(p for p in target.configuration_parameters()[impl] if p["name"] == name)
            return {"type": "Value", "data": param}
        raise LookupError(f"unknown config request type {kind!r}")

    def module_response(self, inst: ModuleInstance) -> dict[str, Any]:
        mods = self.config.modules
        related = {inst.id} | {f.module_id for fs in inst.connections.values() for f in fs}
        out: dict[str, Any] = {
            "module_config": inst.wire(),
            "mappings": {mid: mods[mid].mapping for mid in sorted(related) if mid in mods},
        }
        if inst.telemetry is not None:
            out["telemetry_config"] = inst.telemetry
        return out


def _parse(entry: ConfigEntry, text: Any) -> Any:
    """EVerest sends Set values as strings; turn one into the entry's type."""
    if not isinstance(text, str):
        raise ValueError("the value of a Set request must be a string")
    if entry.type == "string":
        return text
    if entry.type == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError(f"{text!r} is not a boolean")
    if entry.type == "integer":
        return int(text)
    return float(text)
