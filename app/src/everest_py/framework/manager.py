# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The manager: broker, definitions, config service, module start, ready barrier, supervision."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everest_py.errors import BusError, ConfigError
from everest_py.framework import wire
from everest_py.framework.broker import Mosquitto, configured_endpoint, runtime_dir
from everest_py.framework.bus import BrokerEndpoint, Bus
from everest_py.framework.config import ModuleInstance, RunConfig
from everest_py.framework.registry import Registry
from everest_py.framework.runtime import Host
from everest_py.framework.schema import load_yaml, type_refs

log = logging.getLogger(__name__)

KILL_GRACE_S = 0.5


@dataclass
class RunOptions:
    isolate: bool = False
    standalone: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    status_fifo: Path | None = None
    retain_topics: bool = False
    protocol: str = "5"
    # EVerest publishes at QoS 2; on a local socket QoS 0 loses nothing and costs a quarter of
    # the packets (see docs/performance.md). --mqtt-qos 2 restores EVerest's choice.
    qos: int = 0
    verbosity: int = 0
    on_bus: Callable[[Bus, wire.Topics], None] | None = field(default=None, repr=False)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the manager


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
            schemas_dir = Path(__file__).resolve().parent.parent / "contracts" / "schemas"
            schemas = {s.stem.replace("-", "_"): load_yaml(s) for s in sorted(schemas_dir.glob("*.yaml"))}
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
            msg = json.loads(payload)
            data = msg["data"]
            origin = data["origin"]
        except (ValueError, KeyError, TypeError):
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
        reply: dict[str, Any] = {"status": status, "status_info": info, "type": data.get("type", "Get")}
        if response is not None:
            reply["response"] = response
        self.bus.publish(self.topics.config_response(origin), wire.envelope(wire.GET_CONFIG_RESPONSE, reply))

    def _readable(self, origin: str, target: str) -> bool:
        if origin == target:
            return True
        me = self.config.modules.get(origin)
        access = ((me.access or {}) if me else {}).get("config", {})
        return bool(access.get("allow_global_read") or access.get("modules", {}).get(target, {}).get("allow_read"))

    def _answer(self, origin: str, data: dict[str, Any]) -> dict[str, Any]:
        request = data.get("request") or {}
        kind = request.get("type")
        if data.get("type") == "Set":
            raise LookupError("setting config values at run time is not supported by everest-py yet")
        mods = self.config.modules
        if kind == "Module":
            inst = mods.get(origin)
            if inst is None:
                raise LookupError(f"module id '{origin}' is not in the run config")
            return {"type": "Module", "data": self.module_response(inst)}
        if kind == "All":
            return {
                "type": "All",
                "data": {mid: m.configuration_parameters() for mid, m in mods.items() if self._readable(origin, mid)},
            }
        if kind == "AllMappings":
            return {"type": "AllMappings", "data": {mid: m.mapping for mid, m in mods.items()}}
        if kind == "Value":
            ident = request.get("identifier") or {}
            target = mods.get(ident.get("module_id", ""))
            if target is None:
                raise LookupError(f"module id '{ident.get('module_id')}' is not in the run config")
            if not self._readable(origin, target.id):
                raise PermissionError(f"{origin} may not read the config of {target.id}")
            impl = ident.get("module_implementation_id") or "!module"
            for param in target.configuration_parameters().get(impl, []):
                if param["name"] == ident.get("configuration_parameter_name"):
                    return {"type": "Value", "data": param}
            raise LookupError(
                f"no config parameter {ident.get('configuration_parameter_name')!r} in {target.id}.{impl}"
            )
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


class Manager:
    """Runs one validated run config until it is stopped or something fails."""

    def __init__(self, config: RunConfig, registry: Registry, options: RunOptions) -> None:
        self.config = config
        self.registry = registry
        self.options = options
        self.settings = config.settings
        self.topics = wire.Topics(self.settings.mqtt_everest_prefix)
        self._stop = asyncio.Event()
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self.host: Host | None = None
        self.broker: Mosquitto | None = None
        self.global_ready = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    # -- module sets ------------------------------------------------------------------------
    def _awaited(self) -> set[str]:
        return {mid for mid in self.config.modules if mid not in self.options.ignore}

    def _split(self) -> tuple[list[str], list[str]]:
        inproc: list[str] = []
        isolated: list[str] = []
        for mid, inst in self.config.modules.items():
            if mid in self.options.ignore or inst.standalone:
                continue
            (isolated if (self.options.isolate or inst.isolate) else inproc).append(mid)
        return inproc, isolated

    # -- run ------------------------------------------------------------------------------------
    async def run(self) -> int:
        endpoint = configured_endpoint(self.settings)
        if endpoint is None:
            self.broker = Mosquitto(runtime_dir())
            endpoint = await self.broker.start()
            log.info("started mosquitto on %s", endpoint)
        try:
            return await self._run(endpoint)
        finally:
            if self.broker is not None:
                await self.broker.stop()

    async def _run(self, endpoint: BrokerEndpoint) -> int:
        host: Host | None = None
        bus = Bus(endpoint, protocol=self.options.protocol, qos=self.options.qos, on_handler_error=lambda e: self._fail(host, e))
        await bus.connect()
        service = ConfigService(self.config, self.registry, bus, self.topics)
        service.start()
        service.publish_definitions()
        if self.options.on_bus is not None:
            self.options.on_bus(bus, self.topics)
        s = self.settings
        host = self.host = Host(
            bus,
            self.registry,
            prefix=s.mqtt_everest_prefix,
            external_prefix=s.mqtt_external_prefix,
            telemetry_prefix=s.telemetry_prefix,
            telemetry_enabled=s.telemetry_enabled,
            validate_schema=s.validate_schema,
        )
        waiting = self._awaited()
        standalone = {mid for mid in waiting if self.config.modules[mid].standalone}
        ready_seen: set[str] = set()

        def on_ready(topic: str, payload: bytes) -> None:
            mid = topic[len(self.topics.prefix) + len("modules/") : -len("/ready")]
            try:
                ok = json.loads(payload).get("data") is True
            except (ValueError, AttributeError):
                ok = False
            if not ok or mid not in waiting or mid in ready_seen:
                return
            ready_seen.add(mid)
            missing = waiting - ready_seen
            if not missing:
                self._write_status("ALL_MODULES_STARTED")
                if not self.options.retain_topics:
                    service.clear_retained()
                log.info("all modules are ready")
                bus.publish(self.topics.global_ready, wire.envelope(wire.GLOBAL_READY, True))
                _sd_notify("READY=1\nSTATUS=all modules ready")
                self.global_ready.set()
            elif missing <= standalone:
                self._write_status("WAITING_FOR_STANDALONE_MODULES")
                log.info("waiting for standalone module(s): %s", ", ".join(sorted(missing)))

        bus.subscribe(self.topics.all_ready, on_ready)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        inproc, isolated = self._split()
        supervisors = [loop.create_task(self._supervise(mid, endpoint)) for mid in isolated]
        starters = [host.spawn(host.add(mid), "start", mid) for mid in inproc]
        watchdog = loop.create_task(_watchdog())
        try:
            stop_wait: asyncio.Task[Any] = loop.create_task(self._stop.wait())
            fail_wait: asyncio.Task[Any] = loop.create_task(host.failed.wait())
            await asyncio.wait({stop_wait, fail_wait}, return_when=asyncio.FIRST_COMPLETED)
            for t in (stop_wait, fail_wait):
                t.cancel()
        finally:
            for t in starters:
                t.cancel()
            watchdog.cancel()
            failed = host.failure is not None
            host.safe_state()
            await self._stop_children()
            for t in supervisors:
                t.cancel()
            await host.stop()
            if not self.options.retain_topics:
                service.clear_retained()
            await bus.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if failed:
            log.error("stopped: %s", host.failure)
            return 1
        log.info("stopped")
        return 0

    def _fail(self, host: Host | None, err: BaseException) -> None:
        if host is not None:
            host.fail(f"a message handler failed: {err!r}", err)

    # -- isolated modules ----------------------------------------------------------------------
    def _child_env(self, mid: str, endpoint: BrokerEndpoint) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(endpoint.env())
        env.update(
            {
                "EV_MODULE": mid,
                "EV_MQTT_EVEREST_PREFIX": s.mqtt_everest_prefix,
                "EV_MQTT_EXTERNAL_PREFIX": s.mqtt_external_prefix,
                "EV_TELEMETRY_PREFIX": s.telemetry_prefix,
                "EV_TELEMETRY_ENABLED": "1" if s.telemetry_enabled else "0",
                "EV_MQTT_PROTOCOL": self.options.protocol,
                "EV_MQTT_QOS": str(self.options.qos),
                "EV_LOG_VERBOSITY": str(self.options.verbosity),
            }
        )
        if s.validate_schema:
            env["EV_VALIDATE_SCHEMA"] = "1"
        for key in ("modules_dir", "interfaces_dir", "types_dir", "errors_dir"):
            value = getattr(s, key)
            if value is not None:
                env[f"EVEREST_PY_{key.upper()}"] = str(value)
        return env

    async def _supervise(self, mid: str, endpoint: BrokerEndpoint) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "everest_py.framework.child",
            env=self._child_env(mid, endpoint),
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_set_pdeathsig,
        )
        self._children[mid] = proc
        code = await proc.wait()
        if not self._stop.is_set() and self.host is not None:
            self.host.fail(f"isolated module {mid} (pid {proc.pid}) exited with status {code}")

    async def _stop_children(self) -> None:
        procs = [p for p in self._children.values() if p.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        if procs:
            _, pending = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=KILL_GRACE_S)
            for p in procs:
                if p.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            for t in pending:
                await t

    def _write_status(self, line: str) -> None:
        path = self.options.status_fifo
        if path is None:
            return
        try:
            if path.exists() and stat.S_ISFIFO(path.stat().st_mode):
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as err:
            if err.errno != errno.ENXIO:  # a FIFO nobody reads
                log.warning("cannot write status to %s: %s", path, err.strerror)
            return
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
        s.connect(addr)
        s.sendall(message.encode())


async def _watchdog() -> None:
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return
    period = int(usec) / 2e6
    while True:
        _sd_notify("WATCHDOG=1")
        await asyncio.sleep(period)


def run_manager(config: RunConfig, registry: Registry, options: RunOptions) -> int:
    """Run until stopped; returns the exit status (0 stopped, 1 failure, 2 config/bus problem)."""
    manager = Manager(config, registry, options)
    try:
        return asyncio.run(manager.run())
    except (ConfigError, BusError) as err:
        for line in str(err).splitlines():
            log.error("%s", line)
        return 2
