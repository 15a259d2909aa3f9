# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""RpcApi: the bus adapter that feeds the JSON-RPC model from the EVSE managers and makes the calls methods need."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from everest_py.errors import BusError, CommandError, ConfigError
from everest_py.framework.module import Connection, Module
from everest_py.modules.api.module import connection_mappings, guarded, tier
from everest_py.modules.api.session import utc_now
from everest_py.modules.rpc_api.jsonrpc import Auth, Dispatcher
from everest_py.modules.rpc_api.methods import ControlError, Methods
from everest_py.modules.rpc_api.model import ChargerModel, EvseModel
from everest_py.modules.rpc_api.netif import listen_address
from everest_py.modules.rpc_api.server import RpcServer, tls_context

CALL_TIMEOUT_S = 30.0  # calls made for a client request
START_TIMEOUT_S = 10.0  # calls made before the server starts
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class RpcApiConfig:
    websocket_enabled: bool
    websocket_port: int
    websocket_interface: str
    websocket_tls_enabled: bool
    authentication_required: bool
    max_decimal_places_other: int
    websocket_tls_certificate_file: str
    websocket_tls_private_key_file: str
    authentication_token: str


def _everest_version() -> str:
    try:
        return f"everest-py {metadata.version('everest-py')}"
    except metadata.PackageNotFoundError:
        return "everest-py"


class _BusControl:
    """:class:`methods.Control` over the bus: EVSE manager and energy sink calls per EVSE index."""

    def __init__(self, evses: dict[int, Connection], sinks: dict[int, Connection]) -> None:
        self.evses = evses
        self.sinks = sinks

    async def _call(self, conn: Connection, cmd: str, args: dict[str, Any]) -> Any:
        try:
            return await conn.call_cmd(cmd, args, timeout_s=CALL_TIMEOUT_S)
        except BusError as err:
            raise ControlError(f"{cmd} on {conn.module_id}.{conn.impl_id} failed: {err}") from None

    async def enable_disable(self, evse: EvseModel, connector_id: int, source: dict[str, Any]) -> bool:
        args = {"connector_id": connector_id, "cmd_source": source}
        return bool(await self._call(self.evses[evse.index], "enable_disable", args))

    async def pause_charging(self, evse: EvseModel) -> bool:
        return bool(await self._call(self.evses[evse.index], "pause_charging", {}))

    async def resume_charging(self, evse: EvseModel) -> bool:
        return bool(await self._call(self.evses[evse.index], "resume_charging", {}))

    async def set_external_limits(self, evse: EvseModel, limits: dict[str, Any]) -> bool:
        sink = self.sinks.get(evse.index)
        if sink is None:
            return False
        await self._call(sink, "set_external_limits", {"value": limits})
        return True


class RpcApi(Module):
    Config = RpcApiConfig
    config: RpcApiConfig

    _server: RpcServer | None = None

    def _check_config(self) -> tuple[str, ssl.SSLContext | None, Auth]:
        cfg = self.config
        problems: list[str] = []
        if not cfg.websocket_enabled:
            problems.append("websocket_enabled is false, but the WebSocket server is the only transport")
        host = ""
        try:
            host = listen_address(cfg.websocket_interface)
        except ValueError as err:
            problems.append(str(err))
        context = None
        if cfg.websocket_tls_enabled:
            if not cfg.websocket_tls_certificate_file or not cfg.websocket_tls_private_key_file:
                problems.append("websocket_tls_enabled needs websocket_tls_certificate_file and ..._private_key_file")
            else:
                try:
                    context = tls_context(cfg.websocket_tls_certificate_file, cfg.websocket_tls_private_key_file)
                except (OSError, ssl.SSLError) as err:
                    problems.append(f"cannot load the TLS certificate or key: {err}")
        if cfg.authentication_required and len(cfg.authentication_token) < MIN_TOKEN_LENGTH:
            problems.append(f"authentication_required needs an authentication_token of {MIN_TOKEN_LENGTH}+ characters")
        if problems:
            raise ConfigError([f"{self.info.id}: {p}" for p in problems])
        return host, context, Auth(cfg.authentication_required, cfg.authentication_token)

    async def init(self) -> None:
        host, context, auth = self._check_config()
        self.model = ChargerModel(self._notify)
        mappings = await connection_mappings(self)
        evse_conns: dict[int, Connection] = {}
        self._evse_of: list[tuple[EvseModel, Connection]] = []
        for position, conn in enumerate(self.r.evse_manager):
            t = tier(mappings, conn)
            if t is None:
                self.log.warning("%s has no evse mapping; it gets index %d", conn.module_id, position + 1)
            index = int(t["evse"]) if t is not None else position + 1
            if index in evse_conns:
                raise ConfigError([f"{self.info.id}: two evse_manager connections have EVSE index {index}"])
            evse = EvseModel(index, int(t.get("connector", 1)) if t is not None else 1, utc_now, self._notify)
            evse_conns[index] = conn
            self.model.evses.append(evse)
            self._evse_of.append((evse, conn))
            self._subscribe(evse, conn)
        sinks = self._match_sinks(mappings, [e for e, _ in self._evse_of])
        self.control = _BusControl(evse_conns, sinks)
        self.methods = Methods(
            self.model, self.control, utc_now, auth=auth, everest_version=_everest_version(), log=self.log
        )
        dispatcher = Dispatcher(self.methods.table(), auth, self.config.max_decimal_places_other, log=self.log)
        self._server = RpcServer(dispatcher, host, self.config.websocket_port, ssl_context=context, log=self.log)
        self.subscribe_global_errors(
            guarded(self, "raised error", self.model.error_raised),
            guarded(self, "cleared error", self.model.error_cleared),
        )

    def _match_sinks(self, mappings: dict[str, Any], evses: list[EvseModel]) -> dict[int, Connection]:
        """Energy sinks by the EVSE index their mapping names; by position if none has a mapping."""
        sinks = list(self.r.evse_energy_sink)
        tiers = [tier(mappings, s) for s in sinks]
        if sinks and all(t is None for t in tiers) and len(sinks) == len(evses):
            self.log.warning("no evse_energy_sink has a mapping; sinks are paired with EVSEs by position")
            return {e.index: s for e, s in zip(evses, sinks, strict=True)}
        out: dict[int, Connection] = {}
        for sink, t in zip(sinks, tiers, strict=True):
            if t is None:
                self.log.warning("evse_energy_sink %s has no evse mapping; it is not used", sink.module_id)
            else:
                out.setdefault(int(t["evse"]), sink)
        for e in evses:
            if e.index not in out:
                self.log.warning("EVSE %d has no energy sink: its limits cannot be set", e.index)
        return out

    def _subscribe(self, evse: EvseModel, conn: Connection) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "session_event": evse.session_event,
            "powermeter": evse.powermeter,
            "hw_capabilities": evse.hw_capabilities,
            "evse_id": lambda v: evse.set_evse_id(str(v)),
            "selected_protocol": lambda v: evse.selected_protocol(str(v)),
            "enforced_limits": evse.enforced_limits,
            "supported_energy_transfer_modes": evse.supported_energy_transfer_modes,
            "ev_info": evse.ev_info,
        }
        for var, handler in handlers.items():
            conn.subscribe(var, guarded(self, f"{conn.module_id} {var}", handler))

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        if self._server is not None:
            self._server.notify(method, params)

    async def ready(self) -> None:
        await asyncio.gather(
            self._fetch_charger_information(), *(self._fetch_connector(e, c) for e, c in self._evse_of)
        )
        assert self._server is not None
        try:
            await self._server.start()
        except OSError as err:
            raise ConfigError(
                [f"{self.info.id}: cannot listen on {self._server.host}:{self._server.port}: {err.strerror or err}"]
            ) from None

    async def _fetch_charger_information(self) -> None:
        if len(self.r.charger_information) == 0:
            return
        try:
            info = await self.r.charger_information[0].call_cmd("get_charger_information", {}, START_TIMEOUT_S)
        except CommandError as err:
            self.log.error("get_charger_information failed: %s", err)
            return
        if isinstance(info, dict):
            self.model.set_charger_information(info)

    async def _fetch_connector(self, evse: EvseModel, conn: Connection) -> None:
        """The connector type of the EVSE's first connector."""
        try:
            reply = await conn.call_cmd("get_evse", {}, START_TIMEOUT_S)
        except CommandError as err:
            self.log.warning("get_evse of %s failed: %s", conn.module_id, err)
            return
        connectors = reply.get("connectors") if isinstance(reply, dict) else None
        if connectors:
            evse.set_connector_type(connectors[0].get("type"))

    async def shutdown(self) -> None:
        if self._server is not None:
            await self._server.stop()
