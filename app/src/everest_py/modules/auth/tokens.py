# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The token flow: validate a token, pick an EVSE for it or stop a transaction with it."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from everest_py.modules.auth.evse import Connector, Evse, Identifier, same_token
from everest_py.modules.auth.reservations import ReservationPeers, Reservations
from everest_py.modules.auth.timers import Timer, Timers

log = logging.getLogger(__name__)

Token = dict[str, Any]
Validator = Callable[[Token], Awaitable[dict[str, Any]]]

# How the handling of one token ended (EVerest's TokenHandlingResult)
ALREADY_IN_PROCESS = "AlreadyInProcess"
NO_CONNECTOR = "NoConnectorAvailable"
REJECTED = "Rejected"
TIMEOUT = "Timeout"
USED_TO_START = "UsedToStart"
USED_TO_STOP = "UsedToStop"
WITHDRAWN = "Withdrawn"
# ... and the token_validation_status published for it
STATUS_OF_RESULT = {
    NO_CONNECTOR: "Rejected",
    REJECTED: "Rejected",
    TIMEOUT: "TimedOut",
    USED_TO_START: "UsedToStart",
    USED_TO_STOP: "UsedToStop",
    WITHDRAWN: "Withdrawn",
}
SELECTION_ALGORITHMS = ("FindFirst", "PlugEvents", "UserInput")


@dataclass
class AuthConfig:
    selection_algorithm: str = "FindFirst"
    connection_timeout_s: float = 10.0
    master_pass_group_id: str = ""
    prioritize_authorization_over_stopping_transaction: bool = True
    ignore_connector_faults: bool = False
    plug_in_timeout_enabled: bool = False


class AuthPeers(Protocol):
    """What the token flow does outside the logic: calls to the EVSEs and token_validation_status."""

    def authorize(self, evse_index: int, token: Token, result: dict[str, Any]) -> None: ...
    def withdraw(self, evse_index: int) -> None: ...
    def stop_transaction(self, evse_index: int, request: dict[str, Any]) -> None: ...
    def publish_status(self, token: Token, status: str, messages: list[Any]) -> None: ...


def accepted(result: dict[str, Any]) -> bool:
    return result.get("authorization_status") == "Accepted"


def token_value(token: Token) -> str:
    return str(token.get("id_token", {}).get("value", ""))


def same_id_token(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return a is not None and b is not None and same_token(a.get("value"), b.get("value")) and a["type"] == b["type"]


def most_telling(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The result to report when no validator accepted: the first that is not Unknown."""
    known = [r for r in results if r.get("authorization_status") != "Unknown"]
    return known[0] if known else (results[-1] if results else {"authorization_status": "Unknown"})


def withdraw_matches(request: dict[str, Any], evse_ids: Iterable[int], id_token: dict[str, Any]) -> bool:
    """Whether a WithdrawAuthorizationRequest covers a token offered for ``evse_ids``."""
    token_ok = "id_token" not in request or same_id_token(request["id_token"], id_token)
    return token_ok and ("evse_id" not in request or request["evse_id"] in set(evse_ids))


class TokenFlow:
    """Tokens in; authorizations and stops out. The state of the EVSEs lives here; no I/O.

    :class:`~everest_py.modules.auth.station.AuthHandler` adds what the EVSEs report and the commands.
    """

    def __init__(
        self,
        cfg: AuthConfig,
        timers: Timers,
        peers: AuthPeers,
        validators: Sequence[Validator],
        reservation_peers: ReservationPeers,
    ) -> None:
        self.cfg = cfg
        self.timers = timers
        self.peers = peers
        self.validators = list(validators)
        self.evses: dict[int, Evse] = {}
        self.reservations = Reservations(self.evses, timers, reservation_peers)
        self.plug_queue: list[int] = []  # EVSEs with a car waiting for a token, in plug-in order
        self.in_process: dict[str, Token] = {}
        self._timers: dict[int, Timer] = {}
        self._wakers: set[asyncio.Event] = set()
        self._withdraw: dict[str, Any] | None = None

    # -- setup ----------------------------------------------------------------------------------------
    def add_evse(self, evse_id: int, index: int, connectors: Sequence[Connector]) -> None:
        self.evses[evse_id] = Evse(evse_id, index, list(connectors))

    def evse_by_index(self, index: int) -> Evse | None:
        return next((e for e in self.evses.values() if e.index == index), None)

    @property
    def master_pass_group_id(self) -> str | None:
        return self.cfg.master_pass_group_id or None

    # -- waiting --------------------------------------------------------------------------------------
    def _wake_all(self) -> None:
        for waker in self._wakers:
            waker.set()

    async def _wait_for(self, condition: Callable[[], bool], timeout_s: float | None) -> bool:
        """Wait until ``condition`` holds (re-checked on every change); False on timeout."""
        waker = asyncio.Event()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            waker.set()

        timer = self.timers.call_later(timeout_s, expire) if timeout_s is not None else None
        self._wakers.add(waker)
        try:
            while not condition():
                if expired:
                    return False
                waker.clear()
                await waker.wait()
            return True
        finally:
            self._wakers.discard(waker)
            if timer is not None:
                timer.cancel()

    def _start_timer(self, evse: Evse, callback: Callable[[], None]) -> None:
        self._stop_timer(evse)
        self._timers[evse.evse_id] = self.timers.call_later(self.cfg.connection_timeout_s, callback)

    def _stop_timer(self, evse: Evse) -> None:
        timer = self._timers.pop(evse.evse_id, None)
        if timer is not None:
            timer.cancel()

    # -- tokens ---------------------------------------------------------------------------------------
    def referenced(self, token: Token) -> list[int]:
        """The EVSEs a token may be used at: those it names, or all; never the unavailable ones."""
        named = token.get("connectors")
        if named is None:
            return [e for e in sorted(self.evses) if not self.evses[e].unavailable]
        unknown = [e for e in named if e not in self.evses]
        if unknown:
            log.warning("token %s names unknown EVSEs %s", token_value(token), unknown)
        return [e for e in named if e in self.evses and not self.evses[e].unavailable]

    def _already_authorized(self, token: Token, refs: Sequence[int]) -> bool:
        """The token already authorizes one of ``refs`` that has no transaction yet."""
        return any(
            self.evses[e].identifier is not None
            and same_id_token(self.evses[e].identifier.id_token, token["id_token"])  # type: ignore[union-attr]
            and not self.evses[e].transaction_active
            for e in refs
        )

    async def on_token(self, token: Token) -> str:
        """Handle one offered token to its end; returns how it ended (one of the result constants)."""
        key = json.dumps(token, sort_keys=True)
        refs = self.referenced(token)
        if key in self.in_process or self._already_authorized(token, refs):
            log.info("token %s is already being handled", token_value(token))
            return ALREADY_IN_PROCESS
        self.in_process[key] = token
        work = copy.deepcopy(token)
        self.peers.publish_status(token, "Processing", [])
        try:
            result = await self._handle(work, refs)
        finally:
            del self.in_process[key]
            self._wake_all()
        status = STATUS_OF_RESULT.get(result)
        if status is not None:
            self.peers.publish_status(work, status, [])
        log.info("token %s: %s", token_value(token), result)
        return result

    async def _handle(self, token: Token, refs: list[int]) -> str:
        value = token_value(token)
        # 1. An RFID card that authorized a running transaction stops it.
        if token.get("authorization_type") == "RFID":
            evse = self._used_for_transaction(refs, value)
            if evse is not None:
                self.peers.stop_transaction(evse.index, {"reason": "Local", "id_tag": copy.deepcopy(token)})
                assert evse.identifier is not None
                if evse.identifier.parent_id_token is not None:
                    token["parent_id_token"] = evse.identifier.parent_id_token
                token["connectors"] = [evse.evse_id]
                return USED_TO_STOP
        # 2. Not worth validating: nothing free, nothing a parent token or a master pass could stop...
        if not self._any_available(refs) and not self._any_parent(refs) and self.master_pass_group_id is None:
            return NO_CONNECTOR
        # ... or every EVSE is reserved for somebody else.
        if not any(self._reservation_allows(e, value) for e in refs):
            return NO_CONNECTOR
        # 3. Validation.
        if token.get("prevalidated") is True:
            results = [{"authorization_status": "Accepted", "tariff_messages": []}]
            if "parent_id_token" in token:
                results[0]["parent_id_token"] = token["parent_id_token"]
        else:
            results = await self._validate(token)
        # 4. Stopping with the parent token (group) or a master pass.
        stopped = self._stop_with_parent(token, refs, results)
        if stopped is not None:
            return stopped
        # 5. Starting: choose an EVSE.
        if not self._any_available(refs):
            return NO_CONNECTOR
        return await self._start(token, [e for e in refs if self.evses[e].identifier is None], results)

    async def _validate(self, token: Token) -> list[dict[str, Any]]:
        """Ask the validators in order until one accepts."""
        results = []
        for validate in self.validators:
            result = await validate(token)
            results.append(result)
            if accepted(result):
                break
        return results

    def _stop_with_parent(self, token: Token, refs: list[int], results: list[dict[str, Any]]) -> str | None:
        """Stop transactions with the token's group: always for the master pass group, and for the
        group of a running transaction unless a free EVSE is to be preferred."""
        by_parent = not self.cfg.prioritize_authorization_over_stopping_transaction or not self._any_available(refs)
        for result in results:
            parent = result.get("parent_id_token")
            if not accepted(result) or parent is None:
                continue
            if self._is_master(parent):
                stopped = [e for e in refs if self.evses[e].transaction_active]
                for e in stopped:
                    request = {"reason": "MasterPass", "id_tag": copy.deepcopy(token)}
                    self.peers.stop_transaction(self.evses[e].index, request)
                token["parent_id_token"] = parent
                token["connectors"] = stopped
                log.info("master pass %s stopped the transactions of EVSEs %s", token_value(token), stopped)
                return USED_TO_STOP if stopped else REJECTED
            evse = self._used_for_transaction(refs, str(parent.get("value"))) if by_parent else None
            if evse is not None:
                token["connectors"] = [evse.evse_id]
                if not evse.transaction_active:
                    return ALREADY_IN_PROCESS
                self.peers.stop_transaction(evse.index, {"reason": "Local", "id_tag": copy.deepcopy(token)})
                token["parent_id_token"] = parent
                return USED_TO_STOP
        return None

    async def _start(self, token: Token, candidates: list[int], results: list[dict[str, Any]]) -> str:
        verdict = most_telling(results)
        for result in results:
            if not candidates:
                break
            if not accepted(result):
                continue
            parent = result.get("parent_id_token")
            if parent is not None:
                token["parent_id_token"] = parent
            self.peers.publish_status(token, "Accepted", list(result.get("tariff_messages") or []))
            # EVSEs a reserved car needs are no choice for others (unless nothing else is left)
            parent_value = parent.get("value") if parent else None
            usable = [
                e
                for e in candidates
                if self.reservations.matches(token_value(token), e, parent_value) is not None
                or self.reservations.charging_possible(e)
            ]
            selected = await self._select(usable or candidates, token["id_token"])
            if isinstance(selected, str):
                return selected  # TIMEOUT or WITHDRAWN
            verdict = self._check_selected(token, selected, candidates, result)
            self._notify_evse(selected, token, verdict)
            if accepted(verdict):
                return USED_TO_START
        # Tell the named EVSEs, so e.g. ISO 15118 can leave its authorization loop.
        for e in token.get("connectors") or []:
            if e in self.evses:
                self._notify_evse(e, token, verdict)
        return REJECTED

    def _check_selected(
        self, token: Token, evse_id: int, candidates: list[int], result: dict[str, Any]
    ) -> dict[str, Any]:
        """The validator's verdict, narrowed by where the token is valid and by reservations."""
        verdict = copy.deepcopy(result)
        parent = result.get("parent_id_token")
        rid = self.reservations.matches(token_value(token), evse_id, parent.get("value") if parent else None)
        valid_at = result.get("evse_ids")
        if valid_at is not None and not set(valid_at) & set(candidates):
            verdict["authorization_status"] = "NotAtThisLocation"
        elif rid is None and not self.reservations.charging_possible(evse_id):
            verdict["authorization_status"] = "NotAtThisTime"  # a reserved car needs this EVSE
        elif rid is None:
            token["connectors"] = [evse_id]
        else:
            self.reservations.used(rid)
            verdict["reservation_id"] = rid
            token["connectors"] = [evse_id]
        return verdict

    async def _select(self, candidates: list[int], id_token: dict[str, Any]) -> int | str:
        """The EVSE for an accepted token by the selection algorithm, or TIMEOUT / WITHDRAWN."""
        if len(candidates) == 1:
            return candidates[0]
        if self.cfg.selection_algorithm == "PlugEvents":
            # the EVSE where a car waits longest; if none, wait for a plug-in
            found = await self._wait_for(
                lambda: self._first_plugged(candidates) is not None or self._withdrawn(candidates, id_token),
                self.cfg.connection_timeout_s,
            )
            if not found:
                return TIMEOUT
            if self._withdrawn(candidates, id_token):
                return WITHDRAWN
            plugged = self._first_plugged(candidates)
            assert plugged is not None
            return plugged
        # FindFirst (and UserInput, which has no user interface to ask): a waiting car first,
        # else the first free EVSE
        plugged = self._first_plugged(candidates)
        if plugged is not None and not self.evses[plugged].transaction_active:
            return plugged
        return next((e for e in candidates if self.evses[e].available), TIMEOUT)

    def _notify_evse(self, evse_id: int, token: Token, verdict: dict[str, Any]) -> None:
        evse = self.evses[evse_id]
        if accepted(verdict):
            evse.identifier = Identifier(
                id_token=dict(token["id_token"]),
                authorization_type=str(token.get("authorization_type")),
                status=verdict["authorization_status"],
                expiry_time=verdict.get("expiry_time"),
                parent_id_token=verdict.get("parent_id_token"),
            )
            shown = copy.deepcopy(token)
            # no transaction within connection_timeout: the authorization is taken back
            self._start_timer(evse, lambda: self._authorization_timed_out(evse, shown))
            self._unqueue(evse_id)
        self.peers.authorize(evse.index, copy.deepcopy(token), verdict)

    def _authorization_timed_out(self, evse: Evse, token: Token) -> None:
        log.info(
            "EVSE %d: no transaction within %s s, authorization withdrawn", evse.evse_id, self.cfg.connection_timeout_s
        )
        self._timers.pop(evse.evse_id, None)
        evse.identifier = None
        self.peers.withdraw(evse.index)
        self.peers.publish_status(token, "TimedOut", [])
        self._wake_all()

    # -- small questions ------------------------------------------------------------------------------
    def _used_for_transaction(self, refs: Iterable[int], value: str) -> Evse | None:
        return next((self.evses[e] for e in refs if self.evses[e].token_matches(value)), None)

    def _any_available(self, refs: Iterable[int]) -> bool:
        return any(self.evses[e].available for e in refs)

    def _any_parent(self, refs: Iterable[int]) -> bool:
        return any((i := self.evses[e].identifier) is not None and i.parent_id_token is not None for e in refs)

    def _is_master(self, parent: dict[str, Any] | None) -> bool:
        return parent is not None and same_token(parent.get("value"), self.master_pass_group_id)

    def _reservation_allows(self, evse_id: int, value: str) -> bool:
        r = self.reservations
        return (
            (not r.is_reserved(evse_id) and r.charging_possible(evse_id))
            or r.matches(value, evse_id, None) is not None
            or r.has_parent(evse_id)
        )

    def _first_plugged(self, candidates: Sequence[int]) -> int | None:
        return next((e for e in self.plug_queue if e in candidates), None)

    def _withdrawn(self, candidates: Sequence[int], id_token: dict[str, Any]) -> bool:
        return self._withdraw is not None and withdraw_matches(self._withdraw, candidates, id_token)

    def _unqueue(self, evse_id: int) -> None:
        self.plug_queue = [e for e in self.plug_queue if e != evse_id]
