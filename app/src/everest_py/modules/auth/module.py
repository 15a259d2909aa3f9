# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Auth: tokens, session events and commands in; calls to the EvseManagers and status vars out."""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from typing import Any

from everest_py.errors import CommandError, ConfigError
from everest_py.framework.module import Connection, Module, command
from everest_py.modules.auth.evse import Connector
from everest_py.modules.auth.reservations import ACCEPTED, CANCELLED, REJECTED, reservation_evse_id
from everest_py.modules.auth.station import AuthHandler
from everest_py.modules.auth.timers import AsyncioTimers
from everest_py.modules.auth.tokens import SELECTION_ALGORITHMS, AuthConfig, Token, Validator

EVSE_CALL_TIMEOUT_S = 30.0
UNKNOWN = {"authorization_status": "Unknown", "tariff_messages": []}


@dataclass(frozen=True)
class AuthModuleConfig:
    selection_algorithm: str
    connection_timeout: int
    master_pass_group_id: str
    prioritize_authorization_over_stopping_transaction: bool
    ignore_connector_faults: bool
    plug_in_timeout_enabled: bool


class Auth(Module):
    Config = AuthModuleConfig

    handler: AuthHandler

    async def init(self) -> None:
        cfg: AuthModuleConfig = self.config
        if cfg.selection_algorithm not in SELECTION_ALGORITHMS:
            raise ConfigError([f"{self.info.id}: selection_algorithm must be one of {', '.join(SELECTION_ALGORITHMS)}"])
        if cfg.selection_algorithm == "UserInput":
            self.log.warning("selection_algorithm UserInput needs a user interface; FindFirst is used instead")
        auth_cfg = AuthConfig(
            selection_algorithm=cfg.selection_algorithm,
            connection_timeout_s=cfg.connection_timeout,
            master_pass_group_id=cfg.master_pass_group_id,
            prioritize_authorization_over_stopping_transaction=cfg.prioritize_authorization_over_stopping_transaction,
            ignore_connector_faults=cfg.ignore_connector_faults,
            plug_in_timeout_enabled=cfg.plug_in_timeout_enabled,
        )
        validators = [self._validator(c) for c in self.r.token_validator]
        self.handler = AuthHandler(auth_cfg, AsyncioTimers(), self, validators, self)
        self._started = asyncio.Event()
        self._early: list[tuple[int, str, Any]] = []  # EVSE reports and tokens that came before ready()
        self._outboxes = [asyncio.Queue[tuple[str, dict[str, Any]]]() for _ in self.r.evse_manager]
        self._store_queue = asyncio.Queue[list[dict[str, Any]]]()
        self._kvs_key = "reservation_" + re.sub(r"[^A-Za-z0-9_.]", "_", self.info.id)
        for provider in self.r.token_provider:
            provider.subscribe("provided_token", self._on_token)
        for validator in self.r.token_validator:
            validator.subscribe("validate_result_update", self._on_validation_update)
        for index, evse in enumerate(self.r.evse_manager):
            evse.subscribe("session_event", functools.partial(self._on_evse_report, index, "session_event"))
            evse.subscribe_error(
                "evse_manager/Inoperative",
                functools.partial(self._on_evse_report, index, "raised"),
                functools.partial(self._on_evse_report, index, "cleared"),
            )

    async def ready(self) -> None:
        for index, conn in enumerate(self.r.evse_manager):
            evse_id, connectors = await self._get_evse(index, conn)
            self.handler.add_evse(evse_id, index, connectors)
            self.spawn(self._deliver(index, conn), f"calls to {conn.module_id}")
        if len(self.r.kvs):
            self.spawn(self._store_forever(self.r.kvs[0]), "reservation store")
        stored = None
        if len(self.r.kvs):
            try:
                stored = await self.r.kvs[0].call_cmd("load", {"key": self._kvs_key})
            except CommandError as err:
                self.log.error("stored reservations not loaded: %s", err)
        self.handler.reservations.load(stored)
        self._started.set()
        for index, kind, value in self._early:
            if kind == "token":
                self._on_token(value)
            else:
                self._on_evse_report(index, kind, value)
        self._early.clear()
        self.log.info("managing EVSEs %s with %s", sorted(self.handler.evses), self.config.selection_algorithm)

    async def _get_evse(self, index: int, conn: Connection) -> tuple[int, list[Connector]]:
        try:
            evse = await conn.call_cmd("get_evse", timeout_s=EVSE_CALL_TIMEOUT_S)
            return int(evse["id"]), [Connector(int(c["id"]), str(c.get("type", "Unknown"))) for c in evse["connectors"]]
        except (CommandError, KeyError, TypeError, ValueError) as err:
            # EVerest requires the connections in EVSE id order: the position is the best guess
            self.log.error(
                "get_evse of %s failed (%s): taken as EVSE %d with connector 1", conn.module_id, err, index + 1
            )
            return index + 1, [Connector(1)]

    # -- reports from the EVSEs, tokens, validators --------------------------------------------------
    def _on_evse_report(self, index: int, kind: str, value: Any) -> None:
        if not self._started.is_set():
            self._early.append((index, kind, value))
            return
        evse = self.handler.evse_by_index(index)
        if evse is None:
            return
        try:
            if kind == "session_event":
                self.handler.on_session_event(evse.evse_id, value)
            else:
                self.handler.on_fault(evse.evse_id, raised=kind == "raised")
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            self.log.error("unusable %s of EVSE %d ignored: %r (%s)", kind, evse.evse_id, value, err)

    def _on_token(self, token: Token) -> None:
        if not self._started.is_set():
            self._early.append((-1, "token", token))
            return
        self.spawn(self._handle_token(token), "token")

    async def _handle_token(self, token: Token) -> None:
        try:
            await self.handler.on_token(token)
        except Exception:  # one broken token must not stop the station
            self.log.exception("handling of token %s failed", token.get("id_token", {}).get("value"))

    def _on_validation_update(self, update: dict[str, Any]) -> None:
        if not self._started.is_set():
            return
        try:
            self.handler.on_validation_update(update)
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            self.log.error("unusable validate_result_update ignored: %r (%s)", update, err)

    def _validator(self, conn: Connection) -> Validator:
        async def validate(token: Token) -> dict[str, Any]:
            try:
                result = await conn.call_cmd("validate_token", {"provided_token": token})
            except CommandError as err:
                self.log.warning("validator %s failed: %s", conn.module_id, err)
                return dict(UNKNOWN)
            if not isinstance(result, dict) or "authorization_status" not in result:
                self.log.warning("validator %s gave no usable result: %r", conn.module_id, result)
                return dict(UNKNOWN)
            return result

        return validate

    # -- AuthPeers and ReservationPeers: what the logic wants done -----------------------------------
    def authorize(self, evse_index: int, token: Token, result: dict[str, Any]) -> None:
        self._outboxes[evse_index].put_nowait(
            ("authorize_response", {"provided_token": token, "validation_result": result})
        )

    def withdraw(self, evse_index: int) -> None:
        self._outboxes[evse_index].put_nowait(("withdraw_authorization", {}))

    def stop_transaction(self, evse_index: int, request: dict[str, Any]) -> None:
        self._outboxes[evse_index].put_nowait(("stop_transaction", {"request": request}))

    def cancel_on_evse(self, evse_id: int) -> None:
        evse = self.handler.evses.get(evse_id)
        if evse is not None:
            self._outboxes[evse.index].put_nowait(("cancel_reservation", {}))

    def reserve_on_evse(self, evse_id: int, reservation_id: int) -> None:
        evse = self.handler.evses.get(evse_id)
        if evse is not None:
            self._outboxes[evse.index].put_nowait(("reserve", {"reservation_id": reservation_id}))

    def publish_status(self, token: Token, status: str, messages: list[Any]) -> None:
        self._publish("main", "token_validation_status", {"token": token, "status": status, "messages": messages})

    def publish_update(self, reservation_id: int, status: str) -> None:
        self._publish(
            "reservation", "reservation_update", {"reservation_id": reservation_id, "reservation_status": status}
        )

    def store(self, reservations: list[dict[str, Any]]) -> None:
        if len(self.r.kvs):
            self._store_queue.put_nowait(reservations)

    def _publish(self, impl: str, var: str, value: Any) -> None:
        try:
            self.publish(impl, var, value)
        except ValueError as err:
            self.log.error("%s not published: %s", var, err)

    async def _deliver(self, index: int, conn: Connection) -> None:
        """Calls to one EVSE, one at a time, in the order the logic made them."""
        queue = self._outboxes[index]
        while True:
            name, args = await queue.get()
            try:
                await conn.call_cmd(name, args, timeout_s=EVSE_CALL_TIMEOUT_S)
            except CommandError as err:
                self.log.warning("%s on %s failed: %s", name, conn.module_id, err)

    async def _store_forever(self, kvs: Connection) -> None:
        while True:
            reservations = await self._store_queue.get()
            while not self._store_queue.empty():  # only the latest state matters
                reservations = self._store_queue.get_nowait()
            try:
                await kvs.call_cmd("store", {"key": self._kvs_key, "value": reservations})
            except CommandError as err:
                self.log.error("reservations not stored: %s", err)

    # -- commands -------------------------------------------------------------------------------------
    # Commands that need the EVSEs wait until ready() has asked them who they are.
    @command("main")
    def set_connection_timeout(self, connection_timeout: int) -> None:
        self.handler.set_connection_timeout(connection_timeout)

    @command("main")
    def set_master_pass_group_id(self, master_pass_group_id: str) -> None:
        self.handler.set_master_pass_group_id(master_pass_group_id)

    @command("main")
    async def withdraw_authorization(self, request: dict[str, Any]) -> str:
        await self._started.wait()
        return await self.handler.withdraw_authorization(request)

    @command("reservation")
    async def reserve_now(self, request: dict[str, Any]) -> str:
        await self._started.wait()
        result = self.handler.reserve_now(request)
        if result != ACCEPTED:
            return result
        rid = int(request["reservation_id"])
        evse_id = reservation_evse_id(request)
        if evse_id is not None:
            evse = self.handler.evses[evse_id]
            conn = self.r.evse_manager[evse.index]
            try:
                taken = await conn.call_cmd("reserve", {"reservation_id": rid}, timeout_s=EVSE_CALL_TIMEOUT_S)
            except CommandError as err:
                self.log.warning("reserve on %s failed: %s", conn.module_id, err)
                taken = False
            if taken is not True:
                self.log.warning("EVSE %d refused reservation %d", evse_id, rid)
                self.handler.reservations.cancel(rid, CANCELLED, notify=False)
                return REJECTED
        self.handler.reservation_placed(rid)
        return ACCEPTED

    @command("reservation")
    async def cancel_reservation(self, reservation_id: int) -> bool:
        await self._started.wait()
        return self.handler.cancel_reservation(reservation_id)

    @command("reservation")
    async def exists_reservation(self, request: dict[str, Any]) -> str:
        await self._started.wait()
        return self.handler.exists_reservation(request)
