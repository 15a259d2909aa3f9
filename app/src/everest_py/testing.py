# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Test helpers shipped with the package: a private broker, a stack runner and a probe module.

- :class:`Broker` starts mosquitto on a unix socket and a loopback TCP port and stops it again.
- :class:`Stack` runs ``everest-py run`` on a config in a subprocess against that broker, with a
  prefix of its own, and waits for EVerest's status line ``ALL_MODULES_STARTED``.
- :class:`Probe` plays EVerest's ``ProbeModule``: a standalone module that takes part in the
  handshake, calls commands of its connections, implements commands others call, and records
  variables and errors.  It speaks the wire format directly (what another language would do).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from everest_py.errors import BusError, CommandError
from everest_py.framework import wire
from everest_py.framework.bus import BrokerEndpoint, Bus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    """A mosquitto for tests: unix socket plus 127.0.0.1:<free port>, TCP_NODELAY on."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = Path(directory or tempfile.mkdtemp(prefix="evpy-broker-"))
        self.socket = self.dir / "mqtt.sock"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def unix(self) -> BrokerEndpoint:
        return BrokerEndpoint(socket_path=str(self.socket))

    @property
    def tcp(self) -> BrokerEndpoint:
        return BrokerEndpoint(host="127.0.0.1", port=self.port)

    def start(self) -> Broker:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener 0 {self.socket}\n"
            f"listener {self.port} 127.0.0.1\nset_tcp_nodelay true\n"
            "allow_anonymous true\npersistence false\n"
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            "max_queued_messages 100000\nmax_inflight_messages 0\n"
            "log_dest stderr\nlog_type error\n"
        )
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log = (self.dir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise BusError("test broker did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def localize_paths(raw: dict[str, Any], data_dir: Path, repo: Path) -> dict[str, Any]:
    """Make a repository config's relative paths absolute: ``.run/…`` into ``data_dir``,
    ``config/…`` into ``repo``. Changes and returns ``raw``."""
    for entry in raw["active_modules"].values():
        for section in [entry.get("config_module") or {}, *(entry.get("config_implementation") or {}).values()]:
            for key, value in section.items():
                if isinstance(value, str) and value.startswith(".run/"):
                    section[key] = str(data_dir / value.removeprefix(".run/"))
                elif isinstance(value, str) and value.startswith("config/"):
                    section[key] = str(repo / value)
    return raw


def write_config(
    path: Path,
    config: dict[str, Any],
    broker: Broker,
    *,
    prefix: str | None = None,
    validate_schema: bool = True,
) -> str:
    """Write ``config`` with settings that point at ``broker`` under a fresh prefix."""
    prefix = prefix or f"everest_{uuid.uuid4().hex[:8]}"
    settings = dict(config.get("settings") or {})
    settings.setdefault("mqtt_broker_socket_path", str(broker.socket))
    settings.setdefault("mqtt_everest_prefix", prefix)
    settings.setdefault("mqtt_external_prefix", f"ext_{prefix}/")
    settings.setdefault("validate_schema", validate_schema)
    path.write_text(yaml.safe_dump({**config, "settings": settings}, sort_keys=False))
    return prefix


class Stack:
    """``everest-py run CONFIG`` in a subprocess; stop() ends it and returns its exit status."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("EVEREST_PY_RUNTIME_DIR", str(config.parent / "run"))
        self.fifo = config.parent / f"status-{uuid.uuid4().hex[:6]}"
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = config.parent / f"{config.stem}.log"

    def start(self, wait: bool = True, timeout_s: float = 30.0, expect: str = "ALL_MODULES_STARTED") -> Stack:
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "everest_py", "run", str(self.config), "--status-fifo", str(self.fifo), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            text=True,
        )
        log.close()
        if not wait:
            os.close(reader)
            return self
        try:
            self._wait_status(reader, expect, timeout_s)
        finally:
            os.close(reader)
        return self

    def _wait_status(self, fd: int, expect: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        buf = b""
        while time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                buf += os.read(fd, 4096)
            if expect.encode() in buf:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"stack exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.01)
        raise AssertionError(f"stack did not report {expect} within {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait(self, timeout_s: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.fifo.unlink(missing_ok=True)

    def children(self) -> list[int]:
        """PIDs of the stack's direct child processes (broker excluded)."""
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.pid:
                out.append(int(entry.name))
        return out


Handler = Callable[..., Any | Awaitable[Any]]


class Probe:
    """A standalone module at wire level, for tests (EVerest's ProbeModule)."""

    def __init__(self, endpoint: BrokerEndpoint, prefix: str, module_id: str = "probe", protocol: str = "5") -> None:
        self.endpoint = endpoint
        self.topics = wire.Topics(prefix)
        self.id = module_id
        self.protocol = protocol
        self.bus: Bus | None = None
        self.config: dict[str, Any] = {}
        self.connections: dict[str, list[dict[str, Any]]] = {}
        self.global_ready = asyncio.Event()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._responses: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    async def connect(self) -> None:
        self.bus = Bus(self.endpoint, protocol=self.protocol)
        await self.bus.connect()
        self.bus.subscribe(self.topics.global_ready, lambda t, p: self.global_ready.set())

    async def join(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Ask for the config, as any EVerest module does; returns the module config."""
        data = await self.config_request("Get", {"type": "Module"}, timeout_s)
        self.config = data["response"]["data"]["module_config"]
        self.connections = self.config["connections"]
        return self.config

    async def config_request(self, kind: str, request: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        """Any config-service request (``kind`` Get or Set); returns the whole response data."""
        assert self.bus is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_response(topic: str, payload: bytes) -> None:
            if not fut.done():
                fut.set_result(json.loads(payload))

        undo = self.bus.subscribe(self.topics.config_response(self.id), on_response)
        self.bus.publish(
            self.topics.config_request,
            wire.envelope(wire.GET_CONFIG, {"type": kind, "origin": self.id, "request": request}),
        )
        try:
            async with asyncio.timeout(timeout_s):
                msg = await fut
        finally:
            undo()
        data: dict[str, Any] = msg["data"]
        return data

    def ready(self) -> None:
        assert self.bus is not None
        self.bus.publish(self.topics.ready(self.id), wire.envelope(wire.MODULE_READY, True))

    async def start(self, timeout_s: float = 10.0) -> None:
        await self.connect()
        await self.join(timeout_s)
        self.ready()
        async with asyncio.timeout(timeout_s):
            await self.global_ready.wait()

    def _target(self, requirement: str, index: int) -> tuple[str, str]:
        c = self.connections[requirement][index]
        return c["module_id"], c["implementation_id"]

    async def call(
        self, requirement: str, cmd: str, args: dict[str, Any] | None = None, index: int = 0, timeout_s: float = 10.0
    ) -> Any:
        module_id, impl_id = self._target(requirement, index)
        return await self.call_raw(module_id, impl_id, cmd, args or {}, timeout_s)

    async def call_raw(
        self, module_id: str, impl_id: str, cmd: str, args: dict[str, Any], timeout_s: float = 10.0
    ) -> Any:
        assert self.bus is not None
        topic = self.topics.cmd(module_id, impl_id, cmd)
        response = f"{topic}/response/{self.id}"
        if response not in self._responses:
            self._responses.add(response)
            self.bus.subscribe(response, self._on_result)
        call_id = wire.new_id()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = fut
        self.bus.publish(topic, wire.envelope(wire.CMD, {"id": call_id, "args": args, "origin": self.id}))
        try:
            async with asyncio.timeout(timeout_s):
                data = await fut
        finally:
            self._pending.pop(call_id, None)
        if "error" in data:
            e = data["error"]
            raise CommandError(e[wire.ERROR_TYPE_KEY], e[wire.ERROR_MSG_KEY])
        return data.get("retval")

    def _on_result(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)["data"]["data"]
        fut = self._pending.get(data.get("id"))
        if fut is not None and not fut.done():
            fut.set_result(data)

    def implement(self, impl_id: str, cmd: str, handler: Callable[..., Any]) -> None:
        """Answer calls of ``cmd`` on the probe's own implementation ``impl_id``."""
        assert self.bus is not None
        bus = self.bus
        topic = self.topics.cmd(self.id, impl_id, cmd)

        def reply(data: dict[str, Any], result: Any, error: BaseException | None) -> None:
            answer: dict[str, Any] = {"id": data["id"], "retval": result, "origin": self.id}
            if error is not None:
                answer["error"] = wire.error_result(wire.HANDLER_EXCEPTION, f"{type(error).__name__}: {error}")
            payload = wire.envelope(wire.CMD_RESULT, {"type": "result", "data": answer})
            bus.publish(f"{topic}/response/{data['origin']}", payload)

        async def finish(data: dict[str, Any], pending: Awaitable[Any]) -> None:
            try:
                reply(data, await pending, None)
            except Exception as err:  # noqa: BLE001 - the caller gets an error result
                reply(data, None, err)

        def on_call(_: str, payload: bytes) -> None:
            data = json.loads(payload)["data"]
            try:
                result = handler(**data["args"])
            except Exception as err:  # noqa: BLE001 - the caller gets an error result
                reply(data, None, err)
                return
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(finish(data, result))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                reply(data, result, None)

        bus.subscribe(topic, on_call)

    def subscribe_var(self, requirement: str, var: str, index: int = 0) -> asyncio.Queue[Any]:
        assert self.bus is not None
        module_id, impl_id = self._target(requirement, index)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.bus.subscribe(
            self.topics.var(module_id, impl_id, var), lambda t, p: queue.put_nowait(json.loads(p)["data"]["data"])
        )
        return queue

    def publish_var(self, impl_id: str, var: str, value: Any) -> None:
        assert self.bus is not None
        self.bus.publish(self.topics.var(self.id, impl_id, var), wire.envelope(wire.VAR, {"data": value}))

    def raise_error(
        self, impl_id: str, error_type: str, sub_type: str = "", message: str = "", severity: str = "Low"
    ) -> dict[str, Any]:
        assert self.bus is not None
        error = {
            "type": error_type,
            "sub_type": sub_type,
            "description": "",
            "message": message,
            "origin": {"module_id": self.id, "implementation_id": impl_id},
            "severity": severity,
            "timestamp": wire.timestamp(),
            "uuid": wire.new_id(),
            "state": "Active",
            "vendor_id": "everest",
        }
        self.bus.publish(self.topics.error(self.id, impl_id, error_type), wire.envelope(wire.RAISE_ERROR, error))
        return error

    def clear_error(self, error: dict[str, Any]) -> None:
        assert self.bus is not None
        cleared = dict(error, state="ClearedByModule")
        topic = self.topics.error(self.id, error["origin"]["implementation_id"], error["type"])
        self.bus.publish(topic, wire.envelope(wire.CLEAR_ERROR, cleared))

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """Start ``stack`` and always stop it."""
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
