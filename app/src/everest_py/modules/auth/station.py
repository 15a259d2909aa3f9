# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""What the EVSEs report (session events, faults), and Auth's commands: withdraw, reservations."""

from __future__ import annotations

import logging
from typing import Any

from everest_py.modules.auth.evse import ConnectorEvent, Evse, Identifier
from everest_py.modules.auth.reservations import CANCELLED
from everest_py.modules.auth.tokens import TokenFlow, withdraw_matches

log = logging.getLogger(__name__)

# Session events after which reservations for any EVSE may need other EVSEs blocked or released
RESERVATION_RELEVANT = ("TransactionStarted", "SessionFinished", "Enabled", "Disabled")


class AuthHandler(TokenFlow):
    """The whole Auth logic: the token flow plus the EVSEs' reports and the commands."""

    # -- what the EVSEs report ------------------------------------------------------------------------
    def on_session_event(self, evse_id: int, event: dict[str, Any]) -> None:
        evse = self.evses.get(evse_id)
        connector_id = event.get("connector_id", 1)
        if evse is None:
            log.warning("session event of unknown EVSE %d ignored", evse_id)
            return
        kind = event.get("event")
        if kind == "SessionStarted":
            reason = (event.get("session_started") or {}).get("reason", "EVConnected")
            if reason == "EVConnected":
                self._plugged_in(evse)
        elif kind == "TransactionStarted":
            evse.plugged_in = True
            evse.transaction_active = True
            self._connector_event(evse, connector_id, ConnectorEvent.TRANSACTION_STARTED)
            self._stop_timer(evse)
            self._adopt_transaction_token(evse, event)
        elif kind == "TransactionFinished":
            evse.transaction_active = False
            evse.identifier = None
        elif kind == "SessionFinished":
            evse.plugged_in = False
            evse.plug_in_timeout = False
            evse.identifier = None
            self._connector_event(evse, connector_id, ConnectorEvent.SESSION_FINISHED)
            self._stop_timer(evse)
            self._unqueue(evse_id)
        elif kind == "Disabled":
            self._connector_event(evse, connector_id, ConnectorEvent.DISABLE)
        elif kind == "Enabled":
            self._connector_event(evse, connector_id, ConnectorEvent.ENABLE)
        elif kind == "Deauthorized":
            evse.identifier = None
            self._stop_timer(evse)
        elif kind == "ReservationEnd" and self.reservations.is_reserved(evse_id):
            rid = self.reservations.by_evse[evse_id]["reservation_id"]
            self.reservations.cancel(int(rid), CANCELLED, notify=True)
        if kind in RESERVATION_RELEVANT:
            self.reservations.update_blocked_evses()
        self._wake_all()

    def _plugged_in(self, evse: Evse) -> None:
        self.plug_queue.append(evse.evse_id)
        evse.plugged_in = True
        log.info("EVSE %d: car plugged in", evse.evse_id)
        if len(self.evses) > 1 and self.cfg.plug_in_timeout_enabled:
            # With one reader for several EVSEs, a car that waits too long is no longer a
            # candidate for the next token; it must be replugged.
            self._start_timer(evse, lambda: self._plug_in_timed_out(evse))

    def _plug_in_timed_out(self, evse: Evse) -> None:
        log.info(
            "EVSE %d: no token within %s s of the plug-in; replug needed", evse.evse_id, self.cfg.connection_timeout_s
        )
        self._timers.pop(evse.evse_id, None)
        self.peers.withdraw(evse.index)
        self._unqueue(evse.evse_id)
        evse.plug_in_timeout = True
        self._wake_all()

    def _adopt_transaction_token(self, evse: Evse, event: dict[str, Any]) -> None:
        """A transaction Auth did not authorize (e.g. begun before a restart) still gets its token,
        so that the same card can stop it."""
        id_tag = (event.get("transaction_started") or {}).get("id_tag")
        if evse.identifier is None and isinstance(id_tag, dict) and isinstance(id_tag.get("id_token"), dict):
            evse.identifier = Identifier(
                id_token=dict(id_tag["id_token"]),
                authorization_type=str(id_tag.get("authorization_type", "RFID")),
                status="Accepted",
                parent_id_token=id_tag.get("parent_id_token"),
            )

    def _connector_event(self, evse: Evse, connector_id: int, event: ConnectorEvent) -> None:
        connector = evse.connector(connector_id)
        if connector is None:
            log.warning("EVSE %d has no connector %d", evse.evse_id, connector_id)
            return
        connector.submit(event)
        self.reservations.on_connector_changed(evse.evse_id, connector_id)

    def on_fault(self, evse_id: int, raised: bool, connector_id: int = 1) -> None:
        """The EVSE became inoperative (evse_manager/Inoperative raised) or operative again."""
        evse = self.evses.get(evse_id)
        if evse is None or self.cfg.ignore_connector_faults:
            return
        self._connector_event(evse, connector_id, ConnectorEvent.FAULTED if raised else ConnectorEvent.ERROR_CLEARED)
        self._wake_all()

    def on_validation_update(self, update: dict[str, Any]) -> None:
        """A validator changed its verdict on the token of an EVSE (validate_result_update)."""
        evse_id = update.get("connector_id")
        evse = self.evses.get(evse_id) if isinstance(evse_id, int) else None
        if evse is None or evse.identifier is None:
            log.error("validation update for EVSE %s, which has no token", evse_id)
            return
        result = update.get("validation_result") or {}
        evse.identifier.status = result.get("authorization_status")
        evse.identifier.parent_id_token = result.get("parent_id_token")
        token: dict[str, Any] = {
            "id_token": dict(evse.identifier.id_token),
            "authorization_type": evse.identifier.authorization_type,
            "connectors": [evse.evse_id],
        }
        if evse.identifier.parent_id_token is not None:
            token["parent_id_token"] = evse.identifier.parent_id_token
        self.peers.publish_status(token, "Accepted", list(result.get("tariff_messages") or []))

    # -- commands -------------------------------------------------------------------------------------
    def set_connection_timeout(self, seconds: float) -> None:
        self.cfg.connection_timeout_s = seconds

    def set_master_pass_group_id(self, group_id: str) -> None:
        self.cfg.master_pass_group_id = group_id

    async def withdraw_authorization(self, request: dict[str, Any]) -> str:
        """Take back authorizations: of tokens being handled and of EVSEs already authorized.

        An authorized EVSE without a transaction is told to withdraw; one with a transaction has it
        stopped (DeAuthorized). /authorization#/WithdrawAuthorizationResult.
        """
        evse_id = request.get("evse_id")
        if evse_id is not None and evse_id not in self.evses:
            return "EvseNotFound"
        result = "AuthorizationNotFound"

        def hits_a_token_in_process() -> bool:
            return any(withdraw_matches(request, self.referenced(t), t["id_token"]) for t in self.in_process.values())

        if hits_a_token_in_process():
            self._withdraw = request
            try:
                self._wake_all()  # a token waiting for a plug-in gives up
                await self._wait_for(lambda: not hits_a_token_in_process(), None)
            finally:
                self._withdraw = None
            result = "Accepted"
        id_token = request.get("id_token")
        for evse in list(self.evses.values()):
            ident = evse.identifier
            if ident is None or (evse_id is not None and evse.evse_id != evse_id):
                continue
            if id_token is not None and not withdraw_matches({"id_token": id_token}, [], ident.id_token):
                continue
            if evse.transaction_active:
                self.peers.stop_transaction(evse.index, {"reason": "DeAuthorized"})
            else:
                self.peers.withdraw(evse.index)
                evse.identifier = None
                self._stop_timer(evse)
            result = "Accepted"
        return result

    def reserve_now(self, reservation: dict[str, Any]) -> str:
        """Book a reservation; the caller tells the EVSE and then calls :meth:`reservation_placed`."""
        return self.reservations.make(reservation)

    def reservation_placed(self, reservation_id: int) -> None:
        self.reservations.peers.publish_update(reservation_id, "Placed")
        self.reservations.update_blocked_evses()

    def cancel_reservation(self, reservation_id: int) -> bool:
        """Cancel on request: the EVSE is told, no reservation_update is sent (OCPP does not want one)."""
        existed, evse_id = self.reservations.cancel(reservation_id, CANCELLED, notify=False)
        if existed:
            self.reservations.ended(reservation_id, evse_id, CANCELLED, send_update=False)
        return existed

    def exists_reservation(self, request: dict[str, Any]) -> str:
        evse_id = request.get("evse_id")
        return self.reservations.check(
            str(request["id_token"]),
            evse_id if isinstance(evse_id, int) and evse_id > 0 else None,
            request.get("group_id_token"),
        )
