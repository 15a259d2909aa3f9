# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Running modules: the EVerest handshake, commands, variables, errors, crash-only supervision.

A :class:`Host` runs any number of modules of one process on one :class:`Bus`; each module gets a
:class:`ModuleRuntime` that speaks for it on the wire under its own module id (origin).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from everest_py.errors import BusError, CommandError, ConfigError, HardwareError
from everest_py.framework import logs, wire
from everest_py.framework.bus import Bus
from everest_py.framework.contracts import CmdDef, InterfaceDef
from everest_py.framework.module import (
    Connection,
    ErrorCallback,
    Module,
    ModuleInfo,
    Requirement,
    Requirements,
    VarCallback,
)
from everest_py.framework.registry import Registry
from everest_py.framework.schema import SchemaProblem

log = logging.getLogger(__name__)

CONFIG_TIMEOUT_S = 5.0
CMD_TIMEOUT_S = 300.0
SWEEP_S = 0.25
SHUTDOWN_S = 2.0
_NO_ARGS: dict[str, Any] = {}


class ModuleLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Puts the module id on every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {})["module_id"] = self.extra["module_id"] if self.extra else "-"
        return msg, kwargs


class Serial:
    """Runs coroutines one after another in the order given (EVerest: one message per topic)."""

    def __init__(self, host: Host, name: str, module_id: str) -> None:
        self._host = host
        self._name = name
        self._module_id = module_id
        self._queue: deque[Coroutine[Any, Any, Any]] = deque()
        self._running = False

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._queue.append(coro)
        if not self._running:
            self._running = True
            self._host.spawn(self._drain(), self._name, self._module_id)

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._queue.popleft()
        finally:
            self._running = False
            while self._queue:  # stopped or failed: the rest never runs
                self._queue.popleft().close()


class Host:
    """The modules of one process, their shared bus and their common fate."""

    def __init__(
        self,
        bus: Bus,
        registry: Registry,
        *,
        prefix: str = "everest",
        external_prefix: str = "",
        telemetry_prefix: str = "everest-telemetry",
        telemetry_enabled: bool = False,
        validate_schema: bool = False,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.contracts = registry.contracts
        self.topics = wire.Topics(prefix)
        self.external_prefix = external_prefix
        self.telemetry_prefix = wire.normalize_prefix(telemetry_prefix)
        self.telemetry_enabled = telemetry_enabled
        self.validate_schema = validate_schema
        self.pending: dict[str, asyncio.Future[Any]] = {}
        # (deadline, call id, description) of calls in flight; one sweeper instead of a timer per call
        self._deadlines: dict[str, tuple[float, str]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.runtimes: dict[str, ModuleRuntime] = {}
        self.failed = asyncio.Event()
        self.failure: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._safe_done = False
        self.stopping = False

    def expect(self, call_id: str, timeout_s: float, what: str) -> asyncio.Future[Any]:
        """A future for the result of call ``call_id``; it fails with CmdTimeout after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.stopping:
            fut.set_exception(CommandError(wire.SHUTDOWN, f"{what}: the stack is stopping"))
            return fut
        self.pending[call_id] = fut
        self._deadlines[call_id] = (loop.time() + timeout_s, what)
        if self._sweeper is None or self._sweeper.when() > loop.time() + timeout_s:
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._sweeper = loop.call_later(min(timeout_s, SWEEP_S), self._sweep)
        return fut

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for call_id, (deadline, what) in list(self._deadlines.items()):
            fut = self.pending.get(call_id)
            if fut is None or fut.done():
                del self._deadlines[call_id]
            elif deadline <= now:
                del self._deadlines[call_id]
                fut.set_exception(CommandError(wire.CMD_TIMEOUT, f"{what}: no result in time"))
        if self._deadlines:
            soonest = min(d for d, _ in self._deadlines.values())
            self._sweeper = loop.call_later(min(SWEEP_S, max(0.0, soonest - now)), self._sweep)
        else:
            self._sweeper = None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, module_id: str) -> asyncio.Task[Any]:
        """Run ``coro``; an exception escaping it stops the stack."""
        context = contextvars.copy_context()
        context.run(logs.current_module.set, module_id)  # the task's log records name the module
        task = asyncio.get_running_loop().create_task(coro, name=f"{module_id}:{name}", context=context)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, module_id))
        return task

    def _task_done(self, task: asyncio.Task[Any], module_id: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            if isinstance(err, ConfigError):
                what = "; ".join(err.issues)
            elif isinstance(err, HardwareError | BusError):
                what = str(err)
            else:
                what = repr(err)
            self.fail(f"module {module_id}: task {task.get_name()} failed: {what}", err)

    def fail(self, reason: str, err: BaseException | None = None) -> None:
        """Crash-only: record the first failure, put every output into its safe state."""
        if self.failure is None:
            self.failure = reason
            if err is not None and not isinstance(err, ConfigError | BusError | HardwareError):
                log.error("%s", reason, exc_info=err, extra={"module_id": "host"})
            else:
                log.error("%s", reason, extra={"module_id": "host"})
            self.safe_state()
            self.failed.set()

    def safe_state(self) -> None:
        """Call every module's safe-state hook (once per failure/stop); never raises."""
        if self._safe_done:
            return
        self._safe_done = True
        for rt in self.runtimes.values():
            rt.apply_safe_state()

    async def add(self, module_id: str) -> ModuleRuntime:
        """Start one module: handshake, init, ready signal."""
        rt = ModuleRuntime(self, module_id)
        self.runtimes[module_id] = rt
        await rt.start()
        return rt

    async def stop(self) -> None:
        """Orderly stop: safe state, no more calls, cancel work, let modules release resources."""
        self.stopping = True
        self.safe_state()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(CommandError(wire.SHUTDOWN, "the stack is stopping"))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_S)
        for rt in self.runtimes.values():
            try:
                await asyncio.wait_for(rt.shutdown(), SHUTDOWN_S)
            except TimeoutError:
                rt.log.error("shutdown did not finish within %.0f s", SHUTDOWN_S)


class ModuleRuntime:
    """One module instance on the wire."""

    def __init__(self, host: Host, module_id: str) -> None:
        self.host = host
        self.bus = host.bus
        self.topics = host.topics
        self.id = module_id
        self.log = ModuleLogAdapter(logging.getLogger("everest_py.module"), {"module_id": module_id})
        self.module: Module | None = None
        self.errors: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._responses: set[str] = set()
        self._ready_called = False
        self._global_error_cbs: list[tuple[ErrorCallback, ErrorCallback]] = []
        self._impl_ifaces: dict[str, InterfaceDef] = {}
        self.config_module: dict[str, Any] = {}
        self.config_impl: dict[str, dict[str, Any]] = {}

    def _subscribe(
        self, topic: str, handler: Callable[[str, bytes], None], qos: int | None = None
    ) -> Callable[[], None]:
        """Subscribe a handler that runs module code: log records carry this module's id."""
        module_id = self.id

        def as_module(t: str, payload: bytes) -> None:
            token = logs.current_module.set(module_id)
            try:
                handler(t, payload)
            finally:
                logs.current_module.reset(token)

        return self.bus.subscribe(topic, as_module, qos)

    # -- start-up ---------------------------------------------------------------------------
    async def _request_config(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()

            def on_response(topic: str, payload: bytes, fut: asyncio.Future[dict[str, Any]] = fut) -> None:
                if not fut.done():
                    with contextlib.suppress(ValueError):
                        fut.set_result(wire.loads(payload))

            undo = self.bus.subscribe(self.topics.config_response(self.id), on_response)
            request = {"type": "Get", "origin": self.id, "request": {"type": "Module"}}
            self.bus.publish(self.topics.config_request, wire.envelope(wire.GET_CONFIG, request))
            try:
                async with asyncio.timeout(CONFIG_TIMEOUT_S):
                    msg = await fut
            except TimeoutError:
                self.log.warning("no config response (attempt %d)", attempt + 1)
                continue
            finally:
                undo()
            data = msg.get("data", {})
            if data.get("status") != "Ok":
                raise ConfigError([f"{self.id}: the manager refused the config: {data.get('status_info', '')}"])
            response: dict[str, Any] = data["response"]["data"]
            return response
        raise BusError(f"{self.id}: the manager did not answer the config request")

    async def start(self) -> None:
        response = await self._request_config()
        mc = response["module_config"]
        self.name = mc["module_name"]
        manifest = self.host.registry.manifest(self.name)
        if manifest is None:
            raise ConfigError([f"{self.id}: no module named '{self.name}' in everest-py"])
        self.manifest = manifest
        params = mc.get("configuration_parameters", {})
        self.config_module = {p["name"]: p["value"] for p in params.get("!module", [])}
        self.config_impl = {
            impl_id: {p["name"]: p["value"] for p in params.get(impl_id, [])} for impl_id in manifest.provides
        }
        mapping = mc.get("mapping") or {}
        telemetry = mc.get("telemetry_config") if mc.get("telemetry_enabled") else None
        self.info = ModuleInfo(self.id, self.name, mapping, telemetry.get("id") if telemetry else None)
        contracts = self.host.contracts
        self._impl_ifaces = {i: contracts.interface(p.interface) for i, p in manifest.provides.items()}
        mappings = response.get("mappings") or {}

        def tier(module_id: str, impl_id: str) -> dict[str, int] | None:
            m = mappings.get(module_id) or {}
            found = (m.get("implementations") or {}).get(impl_id) or m.get("module")
            return dict(found) if isinstance(found, dict) else None

        reqs: dict[str, Requirement] = {}
        for rid in manifest.requires:
            conns = [
                Connection(
                    self,
                    rid,
                    c["module_id"],
                    c["implementation_id"],
                    manifest.requires[rid].interface,
                    tier(c["module_id"], c["implementation_id"]),
                )
                for c in mc.get("connections", {}).get(rid, [])
            ]
            reqs[rid] = Requirement(rid, conns)
        self.requirements = Requirements(reqs)

        cls = self.host.registry.implementation(self.name)
        self.module = cls(self)
        self._register_commands(cls)
        for rid, req in reqs.items():
            if not manifest.requires[rid].ignore_errors:
                for conn in req:
                    self._subscribe_requirement_errors(conn)
        if manifest.enable_global_errors:
            self._subscribe(self.topics.all_errors, self._on_global_error)
        self._subscribe(self.topics.global_ready, self._on_global_ready)
        metadata = {
            "module": self.name,
            "provides": {i: {"interface": p.interface} for i, p in manifest.provides.items()},
        }
        self.bus.publish(self.topics.metadata(self.id), wire.envelope(wire.GET_CONFIG_RESPONSE, metadata))
        self.apply_safe_state()
        await self.module.init()
        self.bus.publish(self.topics.ready(self.id), wire.envelope(wire.MODULE_READY, True))
        self.log.info("initialised")

    def _register_commands(self, cls: type[Module]) -> None:
        assert self.module is not None
        handled: set[tuple[str, str]] = set()
        for attr in dir(cls):
            fn = getattr(cls, attr, None)
            mark = getattr(fn, "__everest_command__", None)
            if mark is None:
                continue
            impl_id, name = mark
            iface = self._impl_ifaces.get(impl_id)
            if iface is None:
                raise ConfigError([f"{self.name}: command handler {attr} names unknown implementation '{impl_id}'"])
            cmd = iface.cmds.get(name)
            if cmd is None:
                raise ConfigError([f"{self.name}: interface {iface.name} has no command '{name}' (handler {attr})"])
            if (impl_id, name) in handled:
                raise ConfigError([f"{self.name}: command {impl_id}.{name} has two handlers"])
            handled.add((impl_id, name))
            bound = getattr(self.module, attr)
            self._provide(impl_id, iface, cmd, bound)
        missing = [
            f"{impl_id}.{c}"
            for impl_id, iface in self._impl_ifaces.items()
            for c in iface.cmds
            if (impl_id, c) not in handled
        ]
        if missing:
            raise ConfigError(
                [f"{self.name}: does not handle every command of its interfaces; missing: {', '.join(missing)}"]
            )

    def _provide(self, impl_id: str, iface: InterfaceDef, cmd: CmdDef, handler: Callable[..., Any]) -> None:
        topic = self.topics.cmd(self.id, impl_id, cmd.name)
        is_async = inspect.iscoroutinefunction(handler)
        validate = self.host.validate_schema
        contracts = self.host.contracts
        key = (iface.name, cmd.name)
        arg_names = set(cmd.arguments)

        def respond(origin: str, call_id: Any, retval: Any, error: dict[str, str] | None = None) -> None:
            data: dict[str, Any] = {"id": call_id, "retval": retval, "origin": self.id}
            if error is not None:
                data["error"] = error
            try:
                payload = wire.envelope(wire.CMD_RESULT, {"type": "result", "data": data})
            except TypeError as err:
                self.log.error("the result of %s is not JSON data: %s", cmd.name, err)
                data = {"id": call_id, "retval": None, "origin": self.id}
                data["error"] = wire.error_result(wire.HANDLER_EXCEPTION, f"the result is not JSON data: {err}")
                payload = wire.envelope(wire.CMD_RESULT, {"type": "result", "data": data})
            self.bus.publish(f"{topic}/response/{origin}", payload)

        def finish(origin: str, call_id: Any, result: Any) -> None:
            if validate and cmd.result is not None:
                try:
                    contracts.validator((*key, "result"), cmd.result)(result)
                except SchemaProblem as err:
                    self.log.error("%s returned a result that breaks its schema: %s", cmd.name, err)
                    respond(origin, call_id, None, wire.error_result(wire.SCHEMA_VALIDATION_ERROR, f"result: {err}"))
                    return
            respond(origin, call_id, None if cmd.result is None else result)

        def failed(origin: str, call_id: Any, err: BaseException) -> None:
            self.log.error("command %s.%s failed: %r", impl_id, cmd.name, err)
            respond(origin, call_id, None, wire.error_result(wire.HANDLER_EXCEPTION, f"{type(err).__name__}: {err}"))

        async def run_async(origin: str, call_id: Any, args: dict[str, Any]) -> None:
            try:
                result = await handler(**args)
            except Exception as err:  # noqa: BLE001 - becomes the caller's error result
                failed(origin, call_id, err)
                return
            finish(origin, call_id, result)

        serial = Serial(self.host, cmd.name, self.id)

        def on_call(topic_: str, payload: bytes) -> None:
            try:
                msg = wire.loads(payload)
            except ValueError:
                self.log.warning("dropped a call on %s: payload is not JSON", topic_)
                return
            data = msg.get("data") if isinstance(msg, dict) else None
            origin = data.get("origin") if isinstance(data, dict) else None
            if not isinstance(origin, str) or not origin or "/" in origin or "+" in origin or "#" in origin:
                self.log.warning("dropped a call on %s: no usable origin to answer to", topic_)
                return
            assert isinstance(data, dict)
            call_id = data.get("id")
            problem = None
            args = data.get("args", _NO_ARGS)
            if msg.get("msg_type") != wire.CMD:
                problem = f"msg_type must be {wire.CMD!r}, not {msg.get('msg_type')!r}"
            elif not isinstance(call_id, str):
                problem = "the call has no string id"
            elif not isinstance(args, dict):
                problem = "args must be an object"
            if problem is not None:
                self.log.warning("call of %s from %s: %s", cmd.name, origin, problem)
                respond(origin, call_id, None, wire.error_result(wire.MESSAGE_PARSING_ERROR, problem))
                return
            if args.keys() != arg_names:
                unknown = sorted(set(args) - arg_names)
                missing = sorted(arg_names - set(args))
                problem = f"arguments do not match {iface.name}.{cmd.name}: unknown {unknown}, missing {missing}"
            elif validate:
                for name, value in args.items():
                    try:
                        contracts.validator((*key, name), cmd.arguments[name])(value)
                    except SchemaProblem as err:
                        problem = f"argument {name}: {str(err).removeprefix('data ')}"
                        break
            if problem is not None:
                self.log.warning("call of %s from %s: %s", cmd.name, origin, problem)
                respond(origin, call_id, None, wire.error_result(wire.SCHEMA_VALIDATION_ERROR, problem))
                return
            if is_async:
                serial.submit(run_async(origin, call_id, args))
                return
            try:
                result = handler(**args)
            except Exception as err:  # noqa: BLE001 - becomes the caller's error result
                failed(origin, call_id, err)
                return
            finish(origin, call_id, result)

        self._subscribe(topic, on_call)

    # -- lifecycle ------------------------------------------------------------------------------
    def _on_global_ready(self, topic: str, payload: bytes) -> None:
        try:
            msg = wire.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict) or msg.get("data") is not True:
            return
        if self._ready_called:
            self.log.warning("global ready received again, ignored")
            return
        self._ready_called = True
        assert self.module is not None
        self.host.spawn(self.module.ready(), "ready", self.id)

    def apply_safe_state(self) -> None:
        if self.module is None:
            return
        try:
            self.module.safe_state()
        except Exception:
            self.log.exception("safe_state failed")

    async def shutdown(self) -> None:
        if self.module is None:
            return
        try:
            await self.module.shutdown()
        except Exception:
            self.log.exception("shutdown failed")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.host.spawn(coro, name, self.id)

    # -- calls ------------------------------------------------------------------------------------
    def _on_result(self, topic: str, payload: bytes) -> None:
        try:
            msg = wire.loads(payload)
            data = msg["data"]["data"]
            call_id = data["id"]
        except (ValueError, KeyError, TypeError, IndexError):
            self.log.warning("dropped an unusable command result on %s", topic)
            return
        fut = self.host.pending.get(call_id) if isinstance(call_id, str) else None
        if fut is None or fut.done():
            return
        error = data.get("error")
        if isinstance(error, dict):
            fut.set_exception(
                CommandError(str(error.get(wire.ERROR_TYPE_KEY, "")), str(error.get(wire.ERROR_MSG_KEY, "")))
            )
        elif error is not None:
            fut.set_exception(CommandError(wire.MESSAGE_PARSING_ERROR, f"unusable error result: {error!r}"))
        else:
            fut.set_result(data.get("retval"))

    async def call(self, conn: Connection, name: str, args: dict[str, Any], timeout_s: float | None) -> Any:
        iface = self.host.contracts.interface(conn.interface)
        cmd = iface.cmds.get(name)
        if cmd is None:
            raise CommandError(wire.SCHEMA_VALIDATION_ERROR, f"interface {iface.name} has no command '{name}'")
        validate = self.host.validate_schema
        if validate:
            if args.keys() != cmd.arguments.keys():
                raise CommandError(
                    wire.SCHEMA_VALIDATION_ERROR,
                    f"{name}: arguments {sorted(args)} do not match {sorted(cmd.arguments)}",
                )
            for arg, value in args.items():
                try:
                    self.host.contracts.validator((iface.name, name, arg), cmd.arguments[arg])(value)
                except SchemaProblem as err:
                    raise CommandError(wire.SCHEMA_VALIDATION_ERROR, f"{name}: argument {arg}: {err}") from None
        topic = self.topics.cmd(conn.module_id, conn.impl_id, name)
        response = f"{topic}/response/{self.id}"
        if response not in self._responses:
            self._responses.add(response)
            self._subscribe(response, self._on_result)
        call_id = wire.new_id()
        fut = self.host.expect(call_id, timeout_s or CMD_TIMEOUT_S, f"{conn.module_id}.{conn.impl_id}.{name}")
        self.bus.publish(topic, wire.envelope(wire.CMD, {"id": call_id, "args": args, "origin": self.id}))
        try:
            result = await fut
        finally:
            self.host.pending.pop(call_id, None)
        if validate and cmd.result is not None:
            try:
                self.host.contracts.validator((iface.name, name, "result"), cmd.result)(result)
            except SchemaProblem as err:
                raise CommandError(wire.SCHEMA_VALIDATION_ERROR, f"{name}: result: {err}") from None
        return result

    # -- variables -------------------------------------------------------------------------------
    def publish_var(self, impl_id: str, var: str, value: Any) -> None:
        iface = self._impl_ifaces.get(impl_id)
        if iface is None or var not in iface.vars:
            raise KeyError(f"{self.name}: implementation '{impl_id}' has no variable '{var}'")
        if self.host.validate_schema:
            try:
                self.host.contracts.validator((iface.name, "var", var), iface.vars[var])(value)
            except SchemaProblem as err:
                raise ValueError(f"{impl_id}.{var}: value breaks the interface schema: {err}") from None
        self.bus.publish(self.topics.var(self.id, impl_id, var), wire.envelope(wire.VAR, {"data": value}))

    def subscribe_var(self, conn: Connection, var: str, callback: VarCallback) -> Callable[[], None]:
        iface = self.host.contracts.interface(conn.interface)
        if var not in iface.vars:
            raise KeyError(f"interface {iface.name} has no variable '{var}'")
        check = (
            self.host.contracts.validator((iface.name, "var", var), iface.vars[var])
            if self.host.validate_schema
            else None
        )

        serial = Serial(self.host, f"var {var}", self.id)

        def on_var(topic: str, payload: bytes) -> None:
            try:
                value = wire.loads(payload)["data"]["data"]
            except (ValueError, KeyError, TypeError):
                self.log.warning("dropped an unusable value on %s", topic)
                return
            if check is not None:
                try:
                    check(value)
                except SchemaProblem as err:
                    self.log.warning("dropped a value of %s that breaks its schema: %s", var, err)
                    return
            result = callback(value)
            if inspect.isawaitable(result):
                serial.submit(_await(result))

        return self._subscribe(self.topics.var(conn.module_id, conn.impl_id, var), on_var)

    # -- errors -----------------------------------------------------------------------------------
    def raise_error(self, impl_id: str, error_type: str, sub_type: str, message: str, severity: str) -> bool:
        iface = self._impl_ifaces.get(impl_id)
        if iface is None or error_type not in iface.errors:
            self.log.error("may not raise %s on %s (not in its interface)", error_type, impl_id)
            return False
        key = (impl_id, error_type, sub_type)
        if key in self.errors:
            return False
        decl = self.host.contracts.error_decl(error_type)
        origin: dict[str, Any] = {"module_id": self.id, "implementation_id": impl_id}
        tier = (self.info.mapping or {}).get("implementations", {}).get(impl_id) or (self.info.mapping or {}).get(
            "module"
        )
        if tier:
            origin["mapping"] = tier
        error = {
            "type": error_type,
            "sub_type": sub_type,
            "description": decl.description if decl else "",
            "message": message,
            "origin": origin,
            "severity": severity,
            "timestamp": wire.timestamp(),
            "uuid": wire.new_id(),
            "state": "Active",
            "vendor_id": "everest",
        }
        self.errors[key] = error
        self.bus.publish(self.topics.error(self.id, impl_id, error_type), wire.envelope(wire.RAISE_ERROR, error))
        return True

    def clear_error(self, impl_id: str, error_type: str, sub_type: str) -> bool:
        error = self.errors.pop((impl_id, error_type, sub_type), None)
        if error is None:
            return False
        cleared = dict(error, state="ClearedByModule")
        self.bus.publish(self.topics.error(self.id, impl_id, error_type), wire.envelope(wire.CLEAR_ERROR, cleared))
        return True

    def clear_all(self, impl_id: str, error_type: str | None) -> int:
        keys = [k for k in self.errors if k[0] == impl_id and (error_type is None or k[1] == error_type)]
        for k in keys:
            self.clear_error(*k)
        return len(keys)

    def active_errors(self, impl_id: str) -> list[dict[str, Any]]:
        return [e for k, e in self.errors.items() if k[0] == impl_id]

    @staticmethod
    def _decode_error(payload: bytes) -> tuple[str, dict[str, Any]] | None:
        try:
            msg = wire.loads(payload)
            kind, error = msg["msg_type"], msg["data"]
        except (ValueError, KeyError, TypeError):
            return None
        if kind not in (wire.RAISE_ERROR, wire.CLEAR_ERROR) or not isinstance(error, dict):
            return None
        if not isinstance(error.get("type"), str):
            return None
        return kind, error

    def _subscribe_requirement_errors(self, conn: Connection) -> None:
        allowed = set(self.host.contracts.interface(conn.interface).errors)
        if not allowed:
            return

        def on_error(topic: str, payload: bytes) -> None:
            decoded = self._decode_error(payload)
            if decoded is None:
                self.log.warning("dropped an unusable error message on %s", topic)
                return
            kind, error = decoded
            etype = error["type"]
            if etype not in allowed:
                return
            key = (etype, str(error.get("sub_type", "")))
            if kind == wire.RAISE_ERROR:
                conn.errors[key] = error
            else:
                conn.errors.pop(key, None)
            for wanted, on_raise, on_clear in tuple(conn.error_callbacks):
                if wanted is None or wanted == etype:
                    (on_raise if kind == wire.RAISE_ERROR else on_clear)(error)

        self._subscribe(f"{self.topics.impl(conn.module_id, conn.impl_id)}/error/#", on_error)

    def subscribe_global_errors(self, on_raise: ErrorCallback, on_clear: ErrorCallback) -> None:
        if not self.manifest.enable_global_errors:
            raise PermissionError(f"{self.name}: global errors need enable_global_errors in the manifest")
        self._global_error_cbs.append((on_raise, on_clear))

    def _on_global_error(self, topic: str, payload: bytes) -> None:
        decoded = self._decode_error(payload)
        if decoded is None:
            self.log.warning("dropped an unusable error message on %s", topic)
            return
        kind, error = decoded
        for on_raise, on_clear in tuple(self._global_error_cbs):
            (on_raise if kind == wire.RAISE_ERROR else on_clear)(error)

    # -- external MQTT and telemetry -------------------------------------------------------------------
    def _check_external(self) -> None:
        if not self.manifest.enable_external_mqtt:
            raise PermissionError(f"{self.name}: external MQTT needs enable_external_mqtt in the manifest")

    def external_publish(self, topic: str, payload: str | bytes | bool | int | float, retain: bool) -> None:
        self._check_external()
        if isinstance(payload, bool):
            data: str | bytes = "true" if payload else "false"
        elif isinstance(payload, float):
            data = f"{payload:.5f}"
        elif isinstance(payload, int):
            data = str(payload)
        else:
            data = payload
        self.bus.publish(self.host.external_prefix + topic, data, qos=0, retain=retain)

    def external_subscribe(self, topic: str, callback: Callable[[str, str], None]) -> Callable[[], None]:
        self._check_external()
        prefix = self.host.external_prefix

        def on_message(full_topic: str, payload: bytes) -> None:
            callback(full_topic.removeprefix(prefix), payload.decode(errors="replace"))

        return self._subscribe(prefix + topic, on_message, qos=0)

    def telemetry_publish(self, category: str, subcategory: str, type_: str, data: Mapping[str, Any]) -> None:
        tid = self.info.telemetry_id
        if not self.host.telemetry_enabled or tid is None:
            return
        body = {"timestamp": wire.timestamp(), "connector_id": tid, "type": type_, **data}
        self.bus.publish(f"{self.host.telemetry_prefix}{category}/{tid}/{subcategory}", wire.dumps(body))


async def _await(awaitable: Any) -> None:
    await awaitable
