# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The manager: broker, definitions, config service, module start, ready barrier, supervision."""

from __future__ import annotations

import asyncio
import contextlib
import errno
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
from everest_py.framework.broker import Mosquitto, configured_endpoint, runtime_dir, set_pdeathsig
from everest_py.framework.bus import BrokerEndpoint, Bus
from everest_py.framework.config import RunConfig
from everest_py.framework.config_service import ConfigService
from everest_py.framework.registry import Registry
from everest_py.framework.runtime import Host

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
        self._stopping = False
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
        bus = Bus(
            endpoint,
            protocol=self.options.protocol,
            qos=self.options.qos,
            on_handler_error=lambda e: self._fail(host, e),
        )
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
                ok = wire.loads(payload).get("data") is True
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
        if self.broker is not None:
            supervisors.append(loop.create_task(self._watch_broker(self.broker, host)))
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
            self._stopping = True
            _sd_notify("STOPPING=1\nSTATUS=" + (f"failed: {host.failure}" if failed else "stopping"))
            host.safe_state()
            await host.stop()  # in-process modules first: their shutdown may still call isolated ones
            for t in supervisors:
                t.cancel()
            await self._stop_children()
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

    async def _watch_broker(self, broker: Mosquitto, host: Host) -> None:
        code = await broker.wait()
        if not self._stopping:
            host.fail(f"the MQTT broker (mosquitto) exited with status {code}")

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
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "everest_py.framework.child",
                env=self._child_env(mid, endpoint),
                stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=set_pdeathsig,
            )
        except OSError as err:
            if self.host is not None:
                self.host.fail(f"cannot start isolated module {mid}: {err}")
            return
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
        except OSError as err:  # a reader that went away, a full FIFO: not our problem
            log.warning("cannot write status to %s: %s", path, err.strerror)
        finally:
            os.close(fd)


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd.

    The datagram is sent without blocking: a notify socket that is full or gone costs this one
    message, never the event loop that calls this.
    """
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
        s.setblocking(False)
        s.sendto(message.encode(), addr)


def _watchdog_period() -> float | None:
    """Half of systemd's watchdog interval, when it asks this process (not a child) for pings."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


async def _watchdog() -> None:
    """Ping systemd's watchdog while the event loop runs: a loop that hangs stops the pings."""
    period = _watchdog_period()
    if period is None:
        return
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
