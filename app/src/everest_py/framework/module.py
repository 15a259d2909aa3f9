# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The module API: what a module class sees of the framework.

A module is a subclass of :class:`Module` in a package beside its ``manifest.yaml``::

    class PersistentStore(Module):
        @dataclass(frozen=True)
        class Config:
            sqlite_db_file_path: str

        config: Config

        @command("main")
        def store(self, key: str, value: Json) -> None: ...

        async def init(self) -> None:   # before the global ready barrier; commands may
                                        # already arrive while it runs (as in EVerest)
        async def ready(self) -> None:  # after it: publish and call from here on
        def safe_state(self) -> None:   # outputs to their safe values; no awaiting, no bus

Requirements are ``self.r.<requirement_id>``: ``await self.r.kvs.call.load(key="x")``,
``self.r.bsp.subscribe("event", callback)``; a requirement with several connections is a
sequence of connections (``self.r.evse_manager[1]``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from everest_py.framework.runtime import ModuleRuntime

Json = Any
VarCallback = Callable[[Json], Awaitable[None] | None]
ErrorCallback = Callable[[dict[str, Any]], None]
F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


def command(impl_id: str, name: str | None = None) -> Callable[[F], F]:
    """Mark a method as the handler of command ``name`` (default: the method's name) of ``impl_id``."""

    def mark(fn: F) -> F:
        fn.__everest_command__ = (impl_id, name or fn.__name__)  # type: ignore[attr-defined]
        return fn

    return mark


def field_name(key: str) -> str:
    """Config keys may contain '.' and '-'; dataclass fields use '_' instead."""
    return key.replace(".", "_").replace("-", "_")


def make_config(cls: type[C] | None, values: Mapping[str, Any]) -> Any:
    """Build the frozen config dataclass ``cls`` from validated values (all keys present)."""
    if cls is None:
        return _Namespace({field_name(k): v for k, v in values.items()})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given = {field_name(k): v for k, v in values.items()}
    if names != set(given):
        missing = sorted(set(given) - names)
        extra = sorted(names - set(given))
        raise TypeError(f"{cls.__qualname__} does not match the manifest (missing {missing}, unknown {extra})")
    return cls(**given)


class _Namespace:
    """A read-only attribute view of config values for modules that declare no dataclass."""

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(name)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


class ErrorHandle:
    """Raise and clear the errors of one implementation (EVerest's error factory + manager)."""

    def __init__(self, runtime: ModuleRuntime, impl_id: str) -> None:
        self._rt = runtime
        self.impl_id = impl_id

    def raise_error(self, error_type: str, sub_type: str = "", message: str = "", severity: str = "Low") -> bool:
        """Raise ``error_type``; False if that (type, sub_type) is already active or not allowed."""
        return self._rt.raise_error(self.impl_id, error_type, sub_type, message, severity)

    def clear_error(self, error_type: str, sub_type: str = "") -> bool:
        """Clear one active error; False if it was not active."""
        return self._rt.clear_error(self.impl_id, error_type, sub_type)

    def clear_all(self, error_type: str | None = None) -> int:
        """Clear every active error of this implementation (of one type if given)."""
        return self._rt.clear_all(self.impl_id, error_type)

    def active(self) -> list[dict[str, Any]]:
        return self._rt.active_errors(self.impl_id)

    def is_active(self, error_type: str, sub_type: str = "") -> bool:
        return (self.impl_id, error_type, sub_type) in self._rt.errors


class _CallProxy:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Json]]:
        conn = self._conn

        def call(**args: Any) -> Coroutine[Any, Any, Json]:
            return conn.call_cmd(name, args)

        return call


class Connection:
    """One connection of a requirement to ``module_id.impl_id``."""

    def __init__(
        self,
        runtime: ModuleRuntime,
        requirement_id: str,
        module_id: str,
        impl_id: str,
        interface: str,
        mapping: Mapping[str, int] | None = None,
    ) -> None:
        self._rt = runtime
        self.requirement_id = requirement_id
        self.module_id = module_id
        self.impl_id = impl_id
        self.interface = interface
        # the 3-tier mapping ({"evse": n[, "connector": m]}) of the connected implementation, if any
        self.mapping = mapping
        self.call = _CallProxy(self)
        self.errors: dict[tuple[str, str], dict[str, Any]] = {}
        self.error_callbacks: list[tuple[str | None, ErrorCallback, ErrorCallback]] = []

    def __repr__(self) -> str:
        return f"<Connection {self.requirement_id} -> {self.module_id}.{self.impl_id} ({self.interface})>"

    async def call_cmd(self, name: str, args: Mapping[str, Any] | None = None, timeout_s: float | None = None) -> Json:
        return await self._rt.call(self, name, dict(args or {}), timeout_s)

    def subscribe(self, var: str, callback: VarCallback) -> Callable[[], None]:
        """Call ``callback(value)`` for every value of ``var`` published after this call."""
        return self._rt.subscribe_var(self, var, callback)

    def subscribe_error(self, error_type: str | None, on_raise: ErrorCallback, on_clear: ErrorCallback) -> None:
        """Be told when ``error_type`` (None: any error of the interface) is raised or cleared."""
        self.error_callbacks.append((error_type, on_raise, on_clear))

    def active_errors(self) -> list[dict[str, Any]]:
        return list(self.errors.values())


class Requirement(Sequence[Connection]):
    """All connections of one requirement; call/subscribe go to the first."""

    def __init__(self, requirement_id: str, connections: list[Connection]) -> None:
        self.requirement_id = requirement_id
        self._connections = connections

    def __len__(self) -> int:
        return len(self._connections)

    def __getitem__(self, index: int) -> Connection:  # type: ignore[override]
        return self._connections[index]

    def __iter__(self) -> Iterator[Connection]:
        return iter(self._connections)

    def _first(self) -> Connection:
        if not self._connections:
            raise LookupError(f"requirement '{self.requirement_id}' has no connection")
        return self._connections[0]

    @property
    def call(self) -> _CallProxy:
        return self._first().call

    async def call_cmd(self, name: str, args: Mapping[str, Any] | None = None, timeout_s: float | None = None) -> Json:
        return await self._first().call_cmd(name, args, timeout_s)

    def subscribe(self, var: str, callback: VarCallback) -> Callable[[], None]:
        return self._first().subscribe(var, callback)

    def subscribe_error(self, error_type: str | None, on_raise: ErrorCallback, on_clear: ErrorCallback) -> None:
        for c in self._connections:
            c.subscribe_error(error_type, on_raise, on_clear)


class Requirements:
    """``self.r``: requirements by id."""

    def __init__(self, reqs: dict[str, Requirement]) -> None:
        self._reqs = reqs

    def __getattr__(self, name: str) -> Requirement:
        try:
            return self._reqs[name]
        except KeyError:
            raise AttributeError(f"no requirement '{name}' in the manifest") from None

    def __getitem__(self, name: str) -> Requirement:
        return self._reqs[name]

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self._reqs.values())


class ExternalMqtt:
    """Raw MQTT on the external prefix, for modules with ``enable_external_mqtt``."""

    def __init__(self, runtime: ModuleRuntime) -> None:
        self._rt = runtime

    def publish(self, topic: str, payload: str | bytes | bool | int | float, retain: bool = False) -> None:
        self._rt.external_publish(topic, payload, retain)

    def subscribe(self, topic: str, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """``callback(topic_without_prefix, payload)`` for every message on ``topic`` (wildcards allowed)."""
        return self._rt.external_subscribe(topic, callback)


@dataclasses.dataclass(frozen=True)
class ModuleInfo:
    id: str
    name: str
    mapping: Mapping[str, Any] | None
    telemetry_id: int | None


class Module:
    """Base class of every everest-py module."""

    Config: ClassVar[type | None] = None
    ImplConfigs: ClassVar[dict[str, type]] = {}

    def __init__(self, runtime: ModuleRuntime) -> None:
        self._rt = runtime
        self.info: ModuleInfo = runtime.info
        self.log: logging.LoggerAdapter[logging.Logger] = runtime.log
        self.config: Any = make_config(self.Config, runtime.config_module)
        self.impl_config: dict[str, Any] = {
            impl_id: make_config(self.ImplConfigs.get(impl_id), values)
            for impl_id, values in runtime.config_impl.items()
        }
        self.r = runtime.requirements
        self.mqtt = ExternalMqtt(runtime)

    # -- lifecycle hooks ------------------------------------------------------------------------
    async def init(self) -> None:
        """Set up; requirements may be called, but peers may not be ready yet."""

    async def ready(self) -> None:
        """All modules are up (EVerest's global ready)."""

    def safe_state(self) -> None:
        """Put every output into its safe state. Runs on start, stop and crash; must not block."""

    async def shutdown(self) -> None:
        """Release resources on an orderly stop (after safe_state)."""

    # -- services -----------------------------------------------------------------------------
    def publish(self, impl_id: str, var: str, value: Json) -> None:
        self._rt.publish_var(impl_id, var, value)

    def errors(self, impl_id: str) -> ErrorHandle:
        return ErrorHandle(self._rt, impl_id)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str = "") -> None:
        """Run ``coro`` supervised: if it raises, the whole stack stops (crash-only)."""
        self._rt.spawn(coro, name)

    def subscribe_global_errors(self, on_raise: ErrorCallback, on_clear: ErrorCallback) -> None:
        """Every error raised or cleared by any module (needs ``enable_global_errors``)."""
        self._rt.subscribe_global_errors(on_raise, on_clear)

    def telemetry(self, category: str, subcategory: str, type_: str, data: Mapping[str, Any]) -> None:
        self._rt.telemetry_publish(category, subcategory, type_, data)
